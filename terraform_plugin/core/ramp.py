"""The ramp: elevation (metres) -> uint8 RGB, the model's input colouring.

One implementation for the plugin and the trainer. A model declares its ramp in its metadata
(``{"stops": [[elevation_m, r, g, b], ...], "below": [r, g, b]}``); colours are linear between
stops, ``below`` under the first stop and wherever the caller marks sea, and the last stop's colour
above the last stop (relief beyond the training range saturates rather than wrapping).
"""

import math
from dataclasses import dataclass
from functools import cached_property

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

        Through a lookup table on elevation bins (``_ColourTable``), bit-identical to the interpolation
        (``_interpolate``): pixels in the few bins where the rounded colour changes are interpolated.
        """
        z = np.asarray(z, dtype=np.float32)
        table = self._table
        if table is None:
            out = self._interpolate(z)
            under = ~(z >= self.elevations[0])  # also catches NaN
            if sea is not None:
                under |= sea
            out[under] = self.below
            return out
        return table.colourise(z, sea, self)

    def colourise_planes(self, z, sea=None, levels=None, out=None) -> np.ndarray:
        """Channel-first colours (3, H, W), each 0-255 value mapped through ``levels`` when given.

        ``levels`` (256 values, any dtype) lets a caller get what it needs in one pass - the pipeline gets the
        model's input directly, ``levels[v] = v * scale + offset`` - instead of colours it converts after.
        Equal, value for value, to ``levels[colourise(z, sea)].transpose(2, 0, 1)``; written into ``out``
        (3, H, W) of ``levels``' dtype when given.
        """
        z = np.asarray(z, dtype=np.float32)
        levels = np.arange(256, dtype=np.uint8) if levels is None else np.asarray(levels)
        if out is None:
            out = np.empty((3,) + z.shape, dtype=levels.dtype)
        table = self._table
        if table is None:
            out[...] = levels[self.colourise(z, sea)].transpose(2, 0, 1)
            return out
        return table.planes(z, sea, self, levels, out)

    def _interpolate(self, z: np.ndarray) -> np.ndarray:
        """float32 elevations -> uint8 RGB: linear between stops, rounded; the first stop's colour below it."""
        out = np.empty(z.shape + (3,), dtype=np.uint8)
        for c in range(3):
            # float32 interpolation is plenty for 8-bit colours and halves memory traffic.
            channel = np.interp(z, self.elevations, self.colours[:, c]).astype(np.float32)
            np.rint(channel, out=channel)
            with np.errstate(invalid="ignore"):  # NaN (no data) is overwritten with `below` next
                out[..., c] = channel
        return out

    @cached_property
    def _table(self):
        return _ColourTable.build(self)


class _ColourTable:
    """The ramp's colours on elevation bins of a power-of-two width (1/16 m for the training ramp).

    A float32 elevation times a power of two is exact, so ``floor(z / step)`` puts every elevation in exactly
    the bin it belongs to. Within a bin that holds no stop the interpolated colour is monotone, so a bin whose
    two edges get the same colour is that colour throughout: the table holds it. The other bins (a stop
    inside, or a colour step) are flagged, and their pixels are interpolated exactly - about 1 % of
    elevations for the training ramp. Two extra entries: everything above the last bin (the last stop's
    colour) and ``below`` (first-stop underflow, NaN, sea), chosen by index rather than by a masked write.
    """

    MAX_BINS = 1 << 18
    MAX_INDEX = 1 << 23  # bin numbers stay exact integers in float32

    def __init__(self, inv_step, k0, k1, packed, exact):
        self.inv_step, self.k0, self.k1, self.packed, self.exact = inv_step, k0, k1, packed, exact
        self.below_index = len(packed) - 1
        self._levels_cache = None  # (key, tables, flagged) of the last ``levels`` seen

    @classmethod
    def build(cls, ramp):
        e = ramp.elevations
        span = float(e[-1] - e[0])
        step = 2.0 ** math.floor(math.log2(span / (cls.MAX_BINS // 2)))
        k0, k1 = math.floor(e[0] / step), math.floor(e[-1] / step)  # bins k0..k1 hold the stops
        if max(abs(k0), abs(k1) + 2) >= cls.MAX_INDEX:
            return None  # stops far from 0 for their spacing: interpolate everything
        # Entries: bin k0-1 (below the first stop: always `below`), bins k0..k1, bin k1+1 and above, `below`.
        edges = (np.arange(k0, k1 + 2, dtype=np.float64) * step).astype(np.float32)  # exact
        colours = ramp._interpolate(edges)
        constant = np.all(colours[:-1] == colours[1:], axis=1)
        stop_bins = np.floor(e / step).astype(np.int64)
        stop_bins[e == stop_bins * step] -= 1  # a stop on a bin's left edge splits the bin before it
        constant[np.clip(stop_bins, k0, k1) - k0] = False
        rgb = np.concatenate([[ramp.below], colours[:-1], [ramp.colours[-1]], [ramp.below]])
        rgb = np.rint(rgb).astype(np.uint32)
        packed = rgb[:, 0] | rgb[:, 1] << 8 | rgb[:, 2] << 16
        if np.little_endian is False:  # the uint8 view below reads bytes in memory order
            packed = packed.byteswap()
        exact = np.concatenate([[False], ~constant, [False, False]])
        return cls(np.float32(1.0 / step), k0, k1, packed.astype(np.uint32), exact)

    def _index(self, z, sea, ramp):
        """Table index (intp: ``take`` converts anything else, a whole extra pass) of every elevation.

        Worked out in float32 (half the bytes of intp): after ``floor`` the bin numbers are whole, so shifting
        them to start at 0 is exact below 2**24, and anything beyond is clipped to the end entries anyway.
        """
        with np.errstate(over="ignore", invalid="ignore"):  # huge or infinite elevations: clipped next
            t = np.multiply(z, self.inv_step, dtype=np.float32)
            np.floor(t, out=t)
            t -= np.float32(self.k0 - 1)
            np.clip(t, np.float32(0), np.float32(self.k1 - self.k0 + 2), out=t)  # NaN stays NaN: `below` next
        under = z >= ramp.elevations[0]
        np.logical_not(under, out=under)  # also catches NaN
        if sea is not None:
            under |= sea
        np.copyto(t, np.float32(self.below_index), where=under)
        return t.astype(np.intp)

    def colourise(self, z, sea, ramp):
        index = self._index(z, sea, ramp)
        exact = np.flatnonzero(self.exact.take(index))
        out = np.ascontiguousarray(self.packed.take(index).view(np.uint8).reshape(z.shape + (4,))[..., :3])
        if len(exact):
            out.reshape(-1, 3)[exact] = ramp._interpolate(z.reshape(-1).take(exact))
        return out

    def _level_tables(self, levels):
        """(3, entries) of ``levels`` per channel; for float levels, NaN in channel 0 marks the bins to
        interpolate exactly (so finding them is one ``isnan`` over the output, not another gather)."""
        key = (levels.dtype.str, levels.tobytes())
        cached = self._levels_cache
        if cached is None or cached[0] != key:
            rgb = self.packed.view(np.uint8).reshape(-1, 4)
            tables = np.stack([levels[rgb[:, c]] for c in range(3)])
            flagged = tables.dtype.kind == "f"
            if flagged:
                tables[0, self.exact] = np.nan
            cached = self._levels_cache = (key, tables, flagged)
        return cached[1], cached[2]

    def planes(self, z, sea, ramp, levels, out):
        index = self._index(z, sea, ramp)
        tables, flagged = self._level_tables(levels)
        for c in range(3):  # "wrap" never wraps here (every index is in range) and gathers ~4x faster than "raise"
            tables[c].take(index, out=out[c], mode="wrap")
        if flagged:
            exact = np.flatnonzero(np.isnan(out[0]))
        else:
            exact = np.flatnonzero(self.exact.take(index))
        if len(exact):
            colours = ramp._interpolate(z.reshape(-1).take(exact))
            for c in range(3):
                out[c].put(exact, levels[colours[:, c]])  # flat positions, whatever out's strides
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
