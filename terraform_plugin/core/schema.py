"""The model contract's metadata: what a Terraform ONNX declares in ``metadata_props``.

Each value is JSON. The trainer writes it with ``build_metadata`` / ``build_metadata_v2`` and the plugin reads
it with ``parse_metadata``, so the two cannot drift apart.

Schema 1 (every model up to 0.3.0): one input ``[N, 3, tile_size, tile_size]`` (the ramp's RGB), one output of
the same shape. The engine blends overlapping chips.

Schema 2 (tiling-independent, conditioned generators): any tile height and width that are multiples of
``tile_alignment`` (A); every output pixel depends only on the input within ``receptive_radius`` (R) pixels,
so tiles whose margins are at least R and whose origins sit on multiples of A from the raster's origin give
the same pixels wherever they fall. ``inputs`` lists the model's named input planes in the ONNX's own input
names; the engine fills each by its ``kind``. The DEM's colours come at full resolution; every other plane
(the conditioning) at 1/``plane_stride`` of it: plane pixel (i, j) stands for the ``plane_stride`` ×
``plane_stride`` block of processing pixels starting at (i, j) × ``plane_stride``, valued at the block's
centre (latitude) or averaged over it (guide). Conditioning carries palette, not texture, and full-resolution
planes would cost most of a forward pass.

- ``ramp_rgb`` (3 channels, exactly one): the DEM through ``ramp``, scaled to ``input_range``.
- ``latitude`` (1 channel): the pixel's latitude in degrees on its body (geodetic on Earth, areographic on
  Mars), made absolute when ``absolute`` is true, clamped to ``range_deg`` (what the model was trained on),
  times ``scale``.
- ``look`` (one channel per entry of ``looks``, in that order): one-hot for the chosen look, all zero for
  "auto" (no look: latitude and elevation decide).
- ``guide_rgb`` (3 channels): a true-colour guide layer, area-averaged over cells of ``coarse_px`` processing
  pixels (cells on multiples of ``coarse_px`` from the raster's origin), interpolated bilinearly between cell
  centres and scaled to ``input_range`` (0 where ``guide_mask`` is 0); ``guide_mask`` (1 channel) is 1 where
  the guide has data, 0 elsewhere (and everywhere when no guide is given).

The output (one tensor, 3 channels, the input planes' height and width) is satellite RGB in ``output_range``.
"""

import json
import math
from dataclasses import dataclass, field

from .errors import ModelError
from .ramp import Ramp

SCHEMA_VERSION = 1  # what build_metadata writes
SCHEMA_V2 = 2
SCHEMAS = (SCHEMA_VERSION, SCHEMA_V2)
# What every model this project trains takes and gives: RGB 0-255 scaled linearly onto this range.
MODEL_RANGE = (-1.0, 1.0)
REQUIRED_KEYS = ("terraform_schema", "tile_size", "resolution_m", "ramp", "input_range", "output_range")
REQUIRED_KEYS_V2 = ("terraform_schema", "resolution_m", "ramp", "input_range", "output_range", "tile_alignment",
                    "receptive_radius", "plane_stride", "inputs")
V2_KEYS = REQUIRED_KEYS_V2 + ("looks",)
# Plane kinds a schema-2 model may ask for, with their channel counts (None: one per declared look).
PLANE_KINDS = {"ramp_rgb": 3, "latitude": 1, "look": None, "guide_rgb": 3, "guide_mask": 1}
MAX_ALIGNMENT = 128


@dataclass(frozen=True)
class InputPlane:
    """One named model input and how the engine fills it."""

    name: str  # the ONNX input's name
    kind: str  # one of PLANE_KINDS
    channels: int
    options: dict = field(default_factory=dict, compare=False)  # kind-specific: absolute/scale/range_deg, coarse_px


@dataclass(frozen=True)
class Look:
    id: str  # what LOOK takes and the output's metadata records, e.g. "ANDES"
    label: str  # what a user reads, e.g. "Bolivian Altiplano - arid high plateau"
    info: dict = field(default_factory=dict, compare=False)  # e.g. latitude_deg of the training region


@dataclass(frozen=True, eq=False)
class ModelMetadata:
    tile_size: int  # schema 1: the fixed chip side; schema 2: 0 (any multiple of ``alignment``)
    resolution_m: float
    ramp: Ramp
    input_range: tuple
    output_range: tuple
    extra: dict = field(default_factory=dict)  # name, version, data, licence, metrics...
    schema: int = SCHEMA_VERSION
    alignment: int = 1  # schema 2: tile origins and sides are multiples of this (2 ** downsamplings)
    receptive_radius: int = 0  # schema 2: an output pixel depends on input within this many pixels
    plane_stride: int = 1  # schema 2: conditioning planes come at 1/plane_stride of the tile's resolution
    inputs: tuple = ()  # schema 2: InputPlane, in the model's input order
    looks: tuple = ()  # schema 2: Look, in the look planes' channel order

    @property
    def name(self) -> str:
        return str(self.extra.get("name", "unnamed model"))

    @property
    def version(self) -> str:
        return str(self.extra.get("version", "?"))

    @property
    def tiling_independent(self) -> bool:
        return self.schema >= SCHEMA_V2

    def plane(self, kind):
        """The first declared input of ``kind``, or None."""
        return next((p for p in self.inputs if p.kind == kind), None)

    def look(self, look_id):
        """The Look called ``look_id`` (case-insensitive), or None."""
        wanted = str(look_id).strip().lower()
        return next((lk for lk in self.looks if lk.id.lower() == wanted), None)


def _range(key, value):
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
        and value[0] < value[1]
    )
    if not ok:
        raise ModelError(f"metadata {key} must be [low, high] with low < high, got {value!r}")
    return (float(value[0]), float(value[1]))


def _positive_int(key, value, low, high):
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise ModelError(f"model metadata {key} must be an integer {low}-{high}, got {value!r}")
    return value


def _decode(props, required):
    missing = [k for k in required if k not in props]
    if missing:
        raise ModelError(
            "this ONNX file is not a Terraform DEM model: its metadata lacks "
            + ", ".join(missing)
            + " (export models with `python -m training.export`)"
        )
    values = {}
    for key, text in props.items():
        try:
            values[key] = json.loads(text)
        except (TypeError, ValueError):
            if key in required:
                raise ModelError(f"model metadata {key} is not valid JSON: {text!r}") from None
            values[key] = text  # free-form extras may be plain strings
    return values


def _resolution(values):
    res = values["resolution_m"]
    if not isinstance(res, (int, float)) or isinstance(res, bool) or not math.isfinite(res) or res <= 0:
        raise ModelError(f"model metadata resolution_m must be a positive number of metres, got {res!r}")
    return float(res)


def _looks(values):
    looks = values.get("looks", [])
    if not isinstance(looks, list):
        raise ModelError(f"model metadata looks must be a list of {{\"id\", \"label\"}}, got {looks!r}")
    parsed, seen = [], set()
    for entry in looks:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str) or not entry["id"].strip():
            raise ModelError(f"model metadata looks: each look needs a non-empty \"id\", got {entry!r}")
        look_id = entry["id"].strip()
        if look_id.lower() in seen or look_id.lower() == "auto":
            raise ModelError(f"model metadata looks: look id {look_id!r} is repeated or reserved (\"auto\")")
        seen.add(look_id.lower())
        label = entry.get("label", look_id)
        if not isinstance(label, str) or not label.strip():
            raise ModelError(f"model metadata looks: look {look_id!r} has no usable \"label\"")
        info = {k: v for k, v in entry.items() if k not in ("id", "label")}
        parsed.append(Look(look_id, label.strip(), info))
    return tuple(parsed)


def _plane(entry, looks):
    if not isinstance(entry, dict):
        raise ModelError(f"model metadata inputs: each input must be an object, got {entry!r}")
    name, kind = entry.get("name"), entry.get("kind")
    if not isinstance(name, str) or not name:
        raise ModelError(f"model metadata inputs: an input has no \"name\" (the ONNX input's name): {entry!r}")
    if kind not in PLANE_KINDS:
        raise ModelError(
            f"model metadata inputs: {name!r} has kind {kind!r}, which this plugin does not know "
            f"(known: {', '.join(PLANE_KINDS)}); update the plugin"
        )
    expected = PLANE_KINDS[kind] if PLANE_KINDS[kind] is not None else len(looks)
    channels = entry.get("channels")
    if channels != expected or isinstance(channels, bool):
        why = f"one per declared look ({len(looks)})" if kind == "look" else str(expected)
        raise ModelError(f"model metadata inputs: {name!r} ({kind}) must have {why} channels, got {channels!r}")
    options = {k: v for k, v in entry.items() if k not in ("name", "kind", "channels")}
    if kind == "latitude":
        if not isinstance(options.get("absolute", False), bool):
            raise ModelError(f"model metadata inputs: {name!r} absolute must be true or false")
        scale = options.get("scale", 1.0)
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale) or scale == 0:
            raise ModelError(f"model metadata inputs: {name!r} scale must be a non-zero number, got {scale!r}")
        low, high = _range(f"inputs {name!r} range_deg", options.get("range_deg"))
        if not (-90.0 <= low and high <= 90.0):
            raise ModelError(f"model metadata inputs: {name!r} range_deg must lie within -90..90, got {[low, high]}")
        options = {"absolute": bool(options.get("absolute", False)), "scale": float(scale), "range_deg": (low, high)}
    elif kind == "guide_rgb":
        options["coarse_px"] = _positive_int(f"inputs {name!r} coarse_px", options.get("coarse_px"), 1, 4096)
    return InputPlane(name, kind, channels, options)


def _inputs(values, looks):
    entries = values["inputs"]
    if not isinstance(entries, list) or not entries:
        raise ModelError(f"model metadata inputs must be a non-empty list of planes, got {entries!r}")
    planes = tuple(_plane(e, looks) for e in entries)
    names = [p.name for p in planes]
    if len(set(names)) != len(names):
        raise ModelError(f"model metadata inputs: input names repeat ({', '.join(names)})")
    kinds = [p.kind for p in planes]
    for kind in PLANE_KINDS:
        if kinds.count(kind) > 1:
            raise ModelError(f"model metadata inputs: more than one {kind} input")
    if "ramp_rgb" not in kinds:
        raise ModelError("model metadata inputs: no ramp_rgb input (the DEM through the ramp)")
    if looks and "look" not in kinds:
        raise ModelError("model metadata declares looks but no look input to feed them")
    if ("guide_rgb" in kinds) != ("guide_mask" in kinds):
        raise ModelError("model metadata inputs: guide_rgb and guide_mask come together")
    return planes


def parse_metadata(props: dict) -> ModelMetadata:
    """Validate ``metadata_props`` (str -> JSON str); raise ModelError naming the bad key."""
    if "terraform_schema" not in props:
        _decode(props, REQUIRED_KEYS)  # names every missing key of the first schema
    try:
        schema = json.loads(props["terraform_schema"])
    except (TypeError, ValueError):
        raise ModelError(f"model metadata terraform_schema is not valid JSON: {props['terraform_schema']!r}") from None
    if schema not in SCHEMAS or isinstance(schema, bool):
        raise ModelError(
            f"model metadata schema {schema!r} is not supported "
            f"(this plugin reads schema {' and '.join(map(str, SCHEMAS))}); update the plugin or re-export the model"
        )
    if schema == SCHEMA_V2:
        return _parse_v2(props)
    values = _decode(props, REQUIRED_KEYS)
    tile = _positive_int("tile_size", values["tile_size"], 16, 4096)
    extra = {k: v for k, v in values.items() if k not in REQUIRED_KEYS}
    return ModelMetadata(
        tile_size=tile,
        resolution_m=_resolution(values),
        ramp=Ramp.from_dict(values["ramp"]),
        input_range=_range("input_range", values["input_range"]),
        output_range=_range("output_range", values["output_range"]),
        extra=extra,
    )


def _parse_v2(props):
    values = _decode(props, REQUIRED_KEYS_V2)
    alignment = _positive_int("tile_alignment", values["tile_alignment"], 1, MAX_ALIGNMENT)
    if alignment & (alignment - 1):
        raise ModelError(f"model metadata tile_alignment must be a power of two, got {alignment}")
    radius = _positive_int("receptive_radius", values["receptive_radius"], 0, 4096)
    stride = _positive_int("plane_stride", values["plane_stride"], 1, MAX_ALIGNMENT)
    if stride & (stride - 1) or alignment % stride:
        raise ModelError(f"model metadata plane_stride must be a power of two dividing tile_alignment "
                         f"({alignment}), got {stride}")
    looks = _looks(values)
    extra = {k: v for k, v in values.items() if k not in V2_KEYS and k != "tile_size"}
    return ModelMetadata(
        tile_size=0,
        resolution_m=_resolution(values),
        ramp=Ramp.from_dict(values["ramp"]),
        input_range=_range("input_range", values["input_range"]),
        output_range=_range("output_range", values["output_range"]),
        extra=extra,
        schema=SCHEMA_V2,
        alignment=alignment,
        receptive_radius=radius,
        plane_stride=stride,
        inputs=_inputs(values, looks),
        looks=looks,
    )


def build_metadata(ramp: Ramp, resolution_m=200.0, tile_size=256, **extra) -> dict:
    """The ``metadata_props`` of a schema-1 model, each value JSON-encoded."""
    values = {
        "terraform_schema": SCHEMA_VERSION,
        "tile_size": int(tile_size),
        "resolution_m": float(resolution_m),
        "ramp": ramp.to_dict(),
        "input_range": list(MODEL_RANGE),
        "output_range": list(MODEL_RANGE),
        **extra,
    }
    props = {k: json.dumps(v) for k, v in values.items()}
    parse_metadata(props)  # never write what the plugin would refuse
    return props


def build_metadata_v2(ramp: Ramp, alignment: int, receptive_radius: int, inputs: list, looks=(), plane_stride=1,
                      resolution_m=200.0, **extra) -> dict:
    """The ``metadata_props`` of a schema-2 model. ``inputs``: dicts {name, kind, channels, ...options};
    ``looks``: dicts {id, label, ...}."""
    values = {
        "terraform_schema": SCHEMA_V2,
        "resolution_m": float(resolution_m),
        "ramp": ramp.to_dict(),
        "input_range": list(MODEL_RANGE),
        "output_range": list(MODEL_RANGE),
        "tile_alignment": int(alignment),
        "receptive_radius": int(receptive_radius),
        "plane_stride": int(plane_stride),
        "inputs": list(inputs),
        "looks": list(looks),
        **extra,
    }
    props = {k: json.dumps(v) for k, v in values.items()}
    parse_metadata(props)  # never write what the plugin would refuse
    return props


def stamp(model, props: dict):
    """Replace an ONNX ``ModelProto``'s ``metadata_props`` with ``props`` (str -> str), in place."""
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    return model
