"""The model contract's metadata: what a Terraform ONNX declares in ``metadata_props``.

Each value is JSON. The trainer writes it with ``build_metadata`` and the plugin reads it with
``parse_metadata``, so the two cannot drift apart.
"""

import json
import math
from dataclasses import dataclass, field

from .errors import ModelError
from .ramp import Ramp

SCHEMA_VERSION = 1
# What every model this project trains takes and gives: RGB 0-255 scaled linearly onto this range.
MODEL_RANGE = (-1.0, 1.0)
REQUIRED_KEYS = ("terraform_schema", "tile_size", "resolution_m", "ramp", "input_range", "output_range")


@dataclass(frozen=True, eq=False)
class ModelMetadata:
    tile_size: int
    resolution_m: float
    ramp: Ramp
    input_range: tuple
    output_range: tuple
    extra: dict = field(default_factory=dict)  # name, version, data, licence, metrics...

    @property
    def name(self) -> str:
        return str(self.extra.get("name", "unnamed model"))

    @property
    def version(self) -> str:
        return str(self.extra.get("version", "?"))


def _range(key, value):
    ok = (
        isinstance(value, list)
        and len(value) == 2
        and all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
        and value[0] < value[1]
    )
    if not ok:
        raise ModelError(f"metadata {key} must be [low, high] with low < high, got {value!r}")
    return (float(value[0]), float(value[1]))


def parse_metadata(props: dict) -> ModelMetadata:
    """Validate ``metadata_props`` (str -> JSON str); raise ModelError naming the bad key."""
    missing = [k for k in REQUIRED_KEYS if k not in props]
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
            if key in REQUIRED_KEYS:
                raise ModelError(f"model metadata {key} is not valid JSON: {text!r}") from None
            values[key] = text  # free-form extras may be plain strings
    if values["terraform_schema"] != SCHEMA_VERSION:
        raise ModelError(
            f"model metadata schema {values['terraform_schema']!r} is not supported "
            f"(this plugin reads schema {SCHEMA_VERSION}); update the plugin or re-export the model"
        )
    tile = values["tile_size"]
    if not isinstance(tile, int) or isinstance(tile, bool) or not 16 <= tile <= 4096:
        raise ModelError(f"model metadata tile_size must be an integer 16-4096, got {tile!r}")
    res = values["resolution_m"]
    if not isinstance(res, (int, float)) or isinstance(res, bool) or not math.isfinite(res) or res <= 0:
        raise ModelError(f"model metadata resolution_m must be a positive number of metres, got {res!r}")
    ramp = Ramp.from_dict(values["ramp"])
    extra = {k: v for k, v in values.items() if k not in REQUIRED_KEYS}
    return ModelMetadata(
        tile_size=tile,
        resolution_m=float(res),
        ramp=ramp,
        input_range=_range("input_range", values["input_range"]),
        output_range=_range("output_range", values["output_range"]),
        extra=extra,
    )


def build_metadata(ramp: Ramp, resolution_m=200.0, tile_size=256, **extra) -> dict:
    """The ``metadata_props`` of a model that follows the contract, each value JSON-encoded."""
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


def stamp(model, props: dict):
    """Replace an ONNX ``ModelProto``'s ``metadata_props`` with ``props`` (str -> str), in place."""
    del model.metadata_props[:]
    for key, value in props.items():
        model.metadata_props.add(key=key, value=value)
    return model
