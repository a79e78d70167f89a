"""The model contract's metadata: written by the trainer, refused by the plugin when wrong."""

import json

import pytest

from terraform_plugin.core.errors import ModelError
from terraform_plugin.core.ramp import training_ramp
from terraform_plugin.core.schema import REQUIRED_KEYS, build_metadata, parse_metadata


def props(**changes):
    p = build_metadata(training_ramp(), name="t", version="1.2")
    for key, value in changes.items():
        if value is None:
            del p[key]
        else:
            p[key] = value if isinstance(value, str) else json.dumps(value)
    return p


def test_build_then_parse_round_trips():
    meta = parse_metadata(props())
    assert meta.tile_size == 256 and meta.resolution_m == 200.0
    assert meta.input_range == (-1.0, 1.0) and meta.output_range == (-1.0, 1.0)
    assert meta.name == "t" and meta.version == "1.2"
    assert meta.ramp.to_dict() == training_ramp().to_dict()
    assert all(json.loads(v) is not None for v in props().values())  # every value is JSON


@pytest.mark.parametrize("key", REQUIRED_KEYS)
def test_each_missing_key_is_named(key):
    with pytest.raises(ModelError, match=key):
        parse_metadata(props(**{key: None}))


@pytest.mark.parametrize(
    "change, words",
    [
        ({"terraform_schema": 3}, "schema 3"),
        ({"tile_size": 255.5}, "tile_size"),
        ({"tile_size": True}, "tile_size"),
        ({"resolution_m": -5}, "resolution_m"),
        ({"resolution_m": json.dumps("200")}, "resolution_m"),
        ({"input_range": [1, -1]}, "input_range"),
        ({"output_range": [0]}, "output_range"),
        ({"ramp": {"stops": []}}, "below"),
        ({"resolution_m": "{not json"}, "not valid JSON"),
    ],
)
def test_invalid_values_are_refused_with_the_key(change, words):
    with pytest.raises(ModelError, match=words):
        parse_metadata(props(**change))


def test_extra_keys_are_kept_even_when_not_json():
    meta = parse_metadata({**props(), "licence": "CC BY-NC-SA 4.0"})
    assert meta.extra["licence"] == "CC BY-NC-SA 4.0"
