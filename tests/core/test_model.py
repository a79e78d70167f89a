"""The onnxruntime wrapper: loads contract models, refuses the rest, scales RGB both ways."""

import json

import numpy as np
import pytest

from v1models import contract_metadata, write_model
from terraform_plugin.core.errors import ModelError
from terraform_plugin.core.model import TerraformModel
from terraform_plugin.core.ramp import training_ramp


def test_identity_model_returns_the_colours_it_was_given(tmp_path):
    model = TerraformModel(write_model(tmp_path / "m.onnx"))
    rgb = np.random.default_rng(0).integers(0, 256, (3, 256, 256, 3), dtype=np.uint8)
    out = model.predict(rgb)
    assert out.shape == rgb.shape and out.dtype == np.float32
    assert np.array_equal(np.rint(out).astype(np.uint8), rgb)
    assert model.provider == "CPUExecutionProvider"
    assert "test-identity" in model.describe() and "CPUExecutionProvider" in model.describe()
    assert model.ramp.to_dict() == training_ramp().to_dict()


def test_negate_model_inverts_colours(tmp_path):
    model = TerraformModel(write_model(tmp_path / "m.onnx", op="negate"))
    rgb = np.full((1, 256, 256, 3), 55, dtype=np.uint8)
    assert np.allclose(model.predict(rgb), 200.0, atol=1e-3)


def test_fixed_batch_model_runs_any_number_of_chips(tmp_path):
    model = TerraformModel(write_model(tmp_path / "m.onnx", batch=2))
    rgb = np.random.default_rng(1).integers(0, 256, (5, 256, 256, 3), dtype=np.uint8)
    assert np.array_equal(np.rint(model.predict(rgb)).astype(np.uint8), rgb)


def test_uses_the_ramp_the_model_declares(tmp_path):
    ramp = {"stops": [[0, 0, 0, 0], [10, 255, 255, 255]], "below": [0, 0, 255]}
    model = TerraformModel(write_model(tmp_path / "m.onnx", metadata=contract_metadata(ramp=ramp)))
    assert model.ramp.colourise(np.array([[5.0, -1.0]])).tolist() == [[[128, 128, 128], [0, 0, 255]]]


def test_missing_file(tmp_path):
    with pytest.raises(ModelError, match="not found"):
        TerraformModel(tmp_path / "absent.onnx")


def test_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"this is not protobuf" * 10)
    with pytest.raises(ModelError, match="cannot load"):
        TerraformModel(path)


def test_model_without_metadata(tmp_path):
    with pytest.raises(ModelError, match="not a Terraform DEM model"):
        TerraformModel(write_model(tmp_path / "m.onnx", metadata=None))


def test_model_with_invalid_metadata(tmp_path):
    bad = contract_metadata(resolution_m=json.dumps("far"))
    with pytest.raises(ModelError, match="resolution_m"):
        TerraformModel(write_model(tmp_path / "m.onnx", metadata=bad))


@pytest.mark.parametrize("kwargs", [{"channels": 1}, {"tile": 128}])
def test_wrong_input_shape(tmp_path, kwargs):
    with pytest.raises(ModelError, match=r"input must be float32 \[N, 3, 256, 256\]"):
        TerraformModel(write_model(tmp_path / "m.onnx", **kwargs))
