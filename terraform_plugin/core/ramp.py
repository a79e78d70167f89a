"""The ramp: elevation (metres) -> uint8 RGB, the model's input colouring.

One implementation for the plugin and the trainer. A model declares its ramp in its metadata
(``{"stops": [[elevation_m, r, g, b], ...], "below": [r, g, b]}``); colours are linear between
stops, ``below`` under the first stop and wherever the caller marks sea, and the last stop's colour
above the last stop (relief beyond the training range saturates rather than wrapping).
"""

from dataclasses import dataclass

import numpy as np

from .errors import ModelError
from .turbo import TURBO_RGB

# The seed data: Turbo stretched over 0-9000 m, sea and no-data white.
TRAINING_MIN_M = 0.0
TRAINING_MAX_M = 9000.0
SEA_RGB = (255, 255, 255)


@dataclass(frozen=True, eq=False)
class Ramp:
    elevations: np.ndarray  # (K,) float64, strictly increasing
    colours: np.ndarray  # (K, 3) float64 in [0, 255]
    below: tuple

    @classmethod
    def from_dict(cls, spec) -> "Ramp":
        """Build from the metadata form; raises ModelError saying what is wrong."""
        if not isinstance(spec, dict) or "stops" not in spec or "below" not in spec:
            raise ModelError('ramp must be an object with "stops" and "below"')
        try:
            stops = np.asarray(spec["stops"], dtype=np.float64)
            below = np.asarray(spec["below"], dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ModelError(f"ramp stops/below must be numbers: {exc}") from None
        if stops.ndim != 2 or stops.shape[1] != 4 or len(stops) < 2:
            raise ModelError("ramp stops must be a list of at least two [elevation_m, r, g, b]")
        if below.shape != (3,):
            raise ModelError("ramp below must be [r, g, b]")
        if not np.all(np.isfinite(stops)) or not np.all(np.diff(stops[:, 0]) > 0):
            raise ModelError("ramp stop elevations must be finite and strictly increasing")
        for rgb in (stops[:, 1:], below):
            if np.any(rgb < 0) or np.any(rgb > 255):
                raise ModelError("ramp colours must lie in 0-255")
        return cls(stops[:, 0].copy(), stops[:, 1:].copy(), tuple(int(round(v)) for v in below))

    def to_dict(self) -> dict:
        stops = [[float(e), *(int(round(c)) for c in rgb)] for e, rgb in zip(self.elevations, self.colours)]
        return {"stops": stops, "below": list(self.below)}

    @property
    def top_m(self) -> float:
        """Elevation of the last stop: where the ramp saturates."""
        return float(self.elevations[-1])

    def colourise(self, z, sea=None) -> np.ndarray:
        """Elevation array (H, W) -> uint8 RGB (H, W, 3).

        ``below`` goes under the first stop, on NaN, and where the boolean ``sea`` mask is set.
        """
        z = np.asarray(z, dtype=np.float32)
        out = np.empty(z.shape + (3,), dtype=np.uint8)
        for c in range(3):
            # float32 interpolation is plenty for 8-bit colours and halves memory traffic.
            channel = np.interp(z, self.elevations, self.colours[:, c]).astype(np.float32)
            np.rint(channel, out=channel)
            with np.errstate(invalid="ignore"):  # NaN (no data) is overwritten with `below` next
                out[..., c] = channel
        under = ~(z >= self.elevations[0])  # also catches NaN
        if sea is not None:
            under |= sea
        out[under] = self.below
        return out


def is_sea(z, sea_level) -> np.ndarray:
    """The sea rule, one for training data and the plugin: at or below sea level (NaN is not sea).

    "At or below" because the seed chips render SRTM's 0 m sea white: a model fed Turbo's 0 m colour
    over an ocean of exact zeros sees something it never saw in training.
    """
    with np.errstate(invalid="ignore"):
        return np.asarray(z) <= sea_level


def training_ramp() -> Ramp:
    """The ramp of the seed data and of every model this project trains."""
    turbo = np.asarray(TURBO_RGB, dtype=np.float64)
    elevations = np.linspace(TRAINING_MIN_M, TRAINING_MAX_M, len(turbo))
    return Ramp(elevations, turbo, SEA_RGB)
