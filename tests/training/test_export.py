import json
import os

import numpy as np
import onnx
import torch

from terraform_plugin.core.model import TerraformModel
from terraform_plugin.core.ramp import training_ramp
from training import checkpoint as ckpt
from training.export import main as export


def test_onnxruntime_matches_torch(exported):
    path, report, out = exported
    assert report["max_abs_diff"] < 1e-3
    # Independently of export's own check: a fresh batch of 3 (dynamic batch) through the plugin's loader.
    g = ckpt.generator_from_checkpoint(ckpt.load(os.path.join(out, "checkpoints", "last.pt")))
    x = np.random.default_rng(5).uniform(-1, 1, (3, 3, 256, 256)).astype(np.float32)
    with torch.no_grad():
        expected = g(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(TerraformModel(path, use_gpu=False).run(x), expected, atol=1e-3)


def test_contract_metadata_and_single_file(exported):
    path, _, _ = exported
    assert os.listdir(os.path.dirname(path)) == ["model.onnx"]  # no external-data files, no leftovers
    model = onnx.load(path, load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in model.graph.input] == ["dem_rgb"]
    loaded = TerraformModel(path, use_gpu=False)
    assert loaded.fixed_batch is None  # dynamic N
    meta = loaded.metadata
    assert meta.ramp.to_dict() == training_ramp().to_dict()
    assert (meta.tile_size, meta.resolution_m, meta.input_range, meta.output_range) == (256, 200.0, (-1, 1), (-1, 1))
    extra = meta.extra
    assert extra["name"] == "tiny" and extra["version"] == "9.9.9" and extra["ngf"] == 4 and extra["steps"] == 3
    assert "CC BY-NC-SA 4.0" in extra["licence"] and "EOX" in extra["licence"] and "SRTM" in extra["licence"]
    assert extra["data"]["train_regions"] == ["ALPHA"] and extra["git_commit"]
    json.dumps(extra)


def test_fp16_weights_keep_float32_io(tiny_run, exported, tmp_path):
    out, _ = tiny_run
    path = str(tmp_path / "half.onnx")
    report = export(["--checkpoint", os.path.join(out, "checkpoints", "last.pt"), "--output", path, "--fp16"])
    assert report["max_abs_diff"] < 3e-2
    assert os.path.getsize(path) < 0.7 * os.path.getsize(exported[0])
    model = TerraformModel(path, use_gpu=False)
    assert model.session.get_inputs()[0].type == model.session.get_outputs()[0].type == "tensor(float)"
