"""The conditioning planes a contract-2 model takes beside the DEM's colours: latitude, look, colour guide.

Each plane comes at 1/``plane_stride`` of the tile's resolution (``core.schema``). The planes of a tile are a
function of the grid position of its pixels alone (the latitude of each block's centre, one look for the whole
run), so they stay as tiling-independent as the model: any tile, stripe or part gives a pixel the same planes.

The choices (which look, which latitude) are checked once, when the run is planned, against what the model
declares; a contract-1 model takes none and refuses them with the reason.
"""

import math
from typing import Optional

import numpy as np

from .errors import InputError
from .request import AUTO_LOOK

LATITUDE_HINT = "set LATITUDE (an advanced parameter; --latitude on the command line) to terraform as if there"


class Conditioning:
    """The planes of a run's tiles: ``batch(xs, y0, width, height)`` -> {kind: (n, channels, h, w) float32}.

    Pickled with the plan (Dask ships it to the workers); the latitude field is rebuilt where it is used.
    """

    def __init__(self, planes, stride, grid, look_index=None, latitude=None):
        self.planes = tuple(planes)  # InputPlane, the model's inputs other than the ramp's colours
        self.stride = stride
        self.grid = grid
        self.look_index = look_index  # channel of the chosen look; None: auto (all zero)
        self.latitude = latitude  # the LATITUDE override in degrees, or None: from the georeference
        self.summary = {}  # what the output's metadata records: look, latitude source and span
        self._field = None

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_field"] = None
        return state

    def field(self):
        """The latitude field (``core.latitude``) of the grid, or the override's constant one."""
        if self._field is None:
            from .latitude import LatitudeField

            self._field = (LatitudeField.constant(self.latitude) if self.latitude is not None
                           else LatitudeField.from_grid(self.grid))
        return self._field

    def plane(self, spec, x0, y0, width, height) -> np.ndarray:
        """(channels, height / stride, width / stride) float32: one plane of the tile at (x0, y0)."""
        s = self.stride
        shape = (height // s, width // s)
        if spec.kind == "latitude":
            lat = self.field().plane(x0, y0, width, height, s)
            return latitude_values(lat, spec.options)[None]
        out = np.zeros((spec.channels,) + shape, dtype=np.float32)
        if spec.kind == "look" and self.look_index is not None:
            out[self.look_index] = 1.0
        # guide_rgb / guide_mask: no guide yet - colours 0 and a mask of 0 everywhere ("no guide here").
        return out

    def batch(self, xs, y0, width, height) -> dict:
        """{kind: (len(xs), channels, h, w) float32}: the planes of the tiles at columns ``xs`` of row ``y0``."""
        return {
            spec.kind: np.stack([self.plane(spec, x0, y0, width, height) for x0 in xs])
            for spec in self.planes
        }


def latitude_values(lat, options) -> np.ndarray:
    """Degrees -> the model's latitude plane: |lat| if ``absolute``, clamped to ``range_deg``, times ``scale``."""
    lat = np.asarray(lat, dtype=np.float64)
    if options.get("absolute"):
        lat = np.abs(lat)
    low, high = options["range_deg"]
    return (np.clip(lat, low, high) * options.get("scale", 1.0)).astype(np.float32)


def _look_list(metadata) -> str:
    return ", ".join([AUTO_LOOK] + [f"{lk.id} ({lk.label})" for lk in metadata.looks])


def _refuse_for_contract_1(request, metadata):
    look = (request.look or AUTO_LOOK).strip()
    if look.lower() != AUTO_LOOK:
        raise InputError(
            f"look {look!r}: {metadata.name} is a contract-1 model, which has no looks (leave LOOK at auto, or "
            "choose a model of contract 2, such as the bundled 0.4.0)"
        )
    if request.latitude is not None:
        raise InputError(
            f"latitude {request.latitude:g}: {metadata.name} is a contract-1 model, which takes no latitude (leave "
            "LATITUDE empty, or choose a model of contract 2, such as the bundled 0.4.0)"
        )


def resolve_look(look, metadata):
    """(channel index or None for auto, id) of the requested look; InputError naming the model's looks."""
    wanted = (look or AUTO_LOOK).strip()
    if wanted.lower() == AUTO_LOOK:
        return None, AUTO_LOOK
    found = metadata.look(wanted)
    if found is None or metadata.plane("look") is None:
        raise InputError(f"look {wanted!r} is not one of {metadata.name}'s looks: {_look_list(metadata)}")
    return metadata.looks.index(found), found.id


def _span_text(low, high) -> str:
    return f"{low:.4g}" if math.isclose(low, high, abs_tol=1e-9) else f"{low:.4g}..{high:.4g}"


def _model_span(low, high, options):
    """The span of the values the model is given before clamping: |lat| when it takes absolute latitudes."""
    if options.get("absolute"):
        ends = sorted((abs(low), abs(high)))
        return (0.0 if low <= 0.0 <= high else ends[0]), ends[1]
    return low, high


def make_conditioning(request, metadata, grid, log) -> Optional[Conditioning]:
    """The run's Conditioning (None for a contract-1 model or one with only the DEM's colours), checked against
    the model's declarations; logs the latitude used and says when it is clamped to the model's range."""
    if not metadata.tiling_independent:
        _refuse_for_contract_1(request, metadata)
        return None
    planes = [p for p in metadata.inputs if p.kind != "ramp_rgb"]
    look_index, look_id = resolve_look(request.look, metadata)
    spec = metadata.plane("latitude")
    if spec is None and request.latitude is not None:
        raise InputError(f"latitude {request.latitude:g}: {metadata.name} takes no latitude (leave LATITUDE empty)")
    conditioning = Conditioning(planes, metadata.plane_stride, grid, look_index, request.latitude)
    if metadata.looks:
        conditioning.summary["look"] = look_id
    if spec is not None:
        try:
            low, high = conditioning.field().span()
        except InputError as exc:
            raise InputError(f"{exc}; {LATITUDE_HINT}") from None
        source = "LATITUDE" if request.latitude is not None else "georeference"
        given_low, given_high = _model_span(low, high, spec.options)
        range_low, range_high = spec.options["range_deg"]
        clamped = given_low < range_low or given_high > range_high
        which = "|latitude|" if spec.options.get("absolute") else "latitude"
        log(f"Latitude {_span_text(low, high)}° (from the {source})"
            + (f"; clamped to the model's trained range, {which} {range_low:g}..{range_high:g}°" if clamped else ""))
        conditioning.summary.update(
            latitude=source + (", clamped" if clamped else ""), latitude_deg=_span_text(low, high),
            latitude_range_deg=f"{range_low:g}..{range_high:g}" + (" (absolute)" if spec.options.get("absolute") else ""),
        )
    if metadata.looks:
        log(f"Look: {look_id}" + ("" if look_index is None else f" ({metadata.looks[look_index].label})"))
    return conditioning
