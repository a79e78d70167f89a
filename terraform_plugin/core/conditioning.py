"""The conditioning planes a contract-2 model takes beside the DEM's colours: latitude, look, colour guide.

Each plane comes at 1/``plane_stride`` of the tile's resolution (``core.schema``). The planes of a tile are a
function of the grid position of its pixels alone (the latitude of each block's centre, one look for the whole
run, the guide's colours around each block's centre), so they stay as tiling-independent as the model: any
tile, stripe or part gives a pixel the same planes.

The choices (which look, which latitude, which guide) are checked once, when the run is planned, against what
the model declares; a contract-1 model takes none and refuses them with the reason. The guide is warped onto
the coarse grid of the whole processing grid once, then (``core.guide.GuidePlanes``) held in memory and
pickled with the plan: each Dask worker reads it once with the plan (``terraform_plugin.cluster``), never the
guide's own file.
"""

import math
import os
import re
from typing import Optional

import numpy as np

from .errors import InputError
from .request import AUTO_LOOK

LATITUDE_HINT = "set LATITUDE (an advanced parameter; --latitude on the command line) to terraform as if there"
GUIDE_KINDS = ("guide_rgb", "guide_mask")


class Conditioning:
    """The planes of a run's tiles: ``batch(xs, y0, width, height)`` -> {kind: (n, channels, h, w) float32}.

    Pickled with the plan (Dask ships it to the workers); the latitude field is rebuilt where it is used, the
    guide's coarse grid travels with it.
    """

    def __init__(self, planes, stride, grid, look_index=None, latitude=None, guide=None, guide_scaling=(1.0, 0.0)):
        self.planes = tuple(planes)  # InputPlane, the model's inputs other than the ramp's colours
        self.stride = stride
        self.grid = grid
        self.look_index = look_index  # channel of the chosen look; None: auto (all zero)
        self.latitude = latitude  # the LATITUDE override in degrees, or None: from the georeference
        self.guide = guide  # core.guide.GuidePlanes on the whole grid, or None: no guide (mask 0 everywhere)
        self.guide_scaling = guide_scaling  # (scale, offset): guide colour 0-255 -> the model's input range
        self.summary = {}  # what the output's metadata records: look, latitude source and span, guide
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

    def guide_planes(self, x0, y0, width, height) -> dict:
        """{"guide_rgb": (3, h, w), "guide_mask": (1, h, w)} float32 of the tile at (x0, y0): the guide's colours
        in the model's input range, 0 where the mask is 0; no guide: all 0."""
        s = self.stride
        shape = (height // s, width // s)
        if self.guide is None:
            return {"guide_rgb": np.zeros((3,) + shape, np.float32), "guide_mask": np.zeros((1,) + shape, np.float32)}
        rgb, mask = self.guide.planes(x0, y0, width, height, s)
        scale, offset = self.guide_scaling
        rgb = (rgb * np.float32(scale) + np.float32(offset)) * mask
        return {"guide_rgb": rgb.astype(np.float32), "guide_mask": mask[None].astype(np.float32)}

    def tile_planes(self, x0, y0, width, height) -> dict:
        """{kind: (channels, height / stride, width / stride) float32}: every plane of the tile at (x0, y0)."""
        s = self.stride
        shape = (height // s, width // s)
        out = {}
        for spec in self.planes:
            if spec.kind == "latitude":
                lat = self.field().plane(x0, y0, width, height, s)
                out[spec.kind] = latitude_values(lat, spec.options)[None]
            elif spec.kind in GUIDE_KINDS:
                if spec.kind not in out:
                    out.update(self.guide_planes(x0, y0, width, height))
            else:  # look: one-hot for the chosen look, all zero for auto
                look = np.zeros((spec.channels,) + shape, dtype=np.float32)
                if self.look_index is not None:
                    look[self.look_index] = 1.0
                out[spec.kind] = look
        return {spec.kind: out[spec.kind] for spec in self.planes}

    def batch(self, xs, y0, width, height) -> dict:
        """{kind: (len(xs), channels, h, w) float32}: the planes of the tiles at columns ``xs`` of row ``y0``."""
        tiles = [self.tile_planes(x0, y0, width, height) for x0 in xs]
        return {spec.kind: np.stack([t[spec.kind] for t in tiles]) for spec in self.planes}


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
    if request.guide_path is not None:
        raise InputError(
            f"colour guide {guide_label(request)}: {metadata.name} is a contract-1 model, which takes no colour guide "
            "(leave GUIDE empty, or choose a model of contract 2 trained with guides)"
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


def guide_label(request) -> str:
    """How the log and the output's metadata name the request's guide: ``guide_label``, else a file's name, else
    its GDAL source string on one line (a connection string, a web service's XML description)."""
    if request.guide_label:
        return str(request.guide_label)
    path = os.fspath(request.guide_path)
    if os.path.isfile(path):
        return os.path.basename(path)
    return re.sub(r">\s+<", "><", re.sub(r"\s+", " ", path.strip()))


def _input_kinds(metadata) -> str:
    return ", ".join(f"{p.name} ({p.kind})" for p in metadata.inputs)


def open_guide(request, metadata, grid, log, resolution_m=None):
    """The request's guide on the coarse grid of ``grid`` (the whole processing grid), with the summary the
    output's metadata records; InputError when the model takes no guide, or ``core.guide`` refuses it."""
    from .guide import GuidePlanes

    spec = metadata.plane("guide_rgb")
    label = guide_label(request)
    if spec is None:
        raise InputError(
            f"colour guide {label}: {metadata.name} takes no colour guide - it declares no guide_rgb and guide_mask "
            f"inputs (its inputs: {_input_kinds(metadata)}); leave GUIDE empty, or choose a model trained with guides"
        )
    coarse = spec.options["coarse_px"]
    try:
        guide = GuidePlanes.open(request.guide_path, grid, coarse)
    except InputError as exc:
        if request.guide_label:  # a rendering of the guide (a QGIS web layer): name the layer, not a temporary file
            raise InputError(str(exc).replace(os.fspath(request.guide_path), label)) from None
        raise
    # The share of the grid's coarse cells the mask calls guided: each cell's own value at stride = coarse_px.
    rows, cols = -(-grid.height // coarse), -(-grid.width // coarse)
    _, mask = guide.planes(0, 0, cols * coarse, rows * coarse, coarse)
    size = f" ({coarse * resolution_m / 1000.0:g} km)" if resolution_m else ""
    log(f"Colour guide {label}: averaged over cells of {coarse} px{size}; it colours {mask.mean():.0%} of the DEM"
        + ("" if mask.all() else " (the rest is painted without a guide)"))
    return guide, {"guide": label, "guide_coarse_px": coarse}


def make_conditioning(request, metadata, grid, log, resolution_m=None) -> Optional[Conditioning]:
    """The run's Conditioning (None for a contract-1 model), checked against the model's declarations; logs the
    latitude used (and when it is clamped to the model's range), the look and the guide."""
    if not metadata.tiling_independent:
        _refuse_for_contract_1(request, metadata)
        return None
    planes = [p for p in metadata.inputs if p.kind != "ramp_rgb"]
    look_index, look_id = resolve_look(request.look, metadata)
    spec = metadata.plane("latitude")
    if spec is None and request.latitude is not None:
        raise InputError(f"latitude {request.latitude:g}: {metadata.name} takes no latitude (leave LATITUDE empty)")
    low, high = metadata.input_range  # the guide's colours are scaled as the DEM's are (TerraformModel.input_scaling)
    conditioning = Conditioning(planes, metadata.plane_stride, grid, look_index, request.latitude,
                                guide_scaling=((high - low) / 255.0, low))
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
    # Last: the other choices are refused in a moment, the guide takes a warp of its whole extent.
    if request.guide_path is not None:
        conditioning.guide, summary = open_guide(request, metadata, grid, log, resolution_m)
        conditioning.summary.update(summary)
    elif metadata.plane("guide_rgb") is not None:
        conditioning.summary["guide"] = "none"
    return conditioning
