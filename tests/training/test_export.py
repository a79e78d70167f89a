import json
import os

import numpy as np
import onnx
import torch

from terraform_plugin.core.model import TerraformModel
from terraform_plugin.core.ramp import training_ramp
from training import checkpoint as ckpt
from training.export import main as export


def _planes(rng, n, h, w, looks, stride=8):
    """Conditioning planes by kind, as the engine fills them, and the trainer's cond tensor made of the same."""
    planes = {"latitude": rng.uniform(0, 0.5, (n, 1, h // stride, w // stride)),
              "guide_rgb": rng.uniform(-1, 1, (n, 3, h // stride, w // stride)),
              "guide_mask": (rng.random((n, 1, h // stride, w // stride)) > 0.3),
              "look": np.eye(looks)[rng.integers(0, looks, n)][:, :, None, None] * np.ones((1, 1, h // stride, w // stride))}
    planes = {k: v.astype(np.float32) for k, v in planes.items()}
    cond = np.concatenate([planes[k] for k in ("latitude", "guide_rgb", "guide_mask", "look")], axis=1)
    return planes, cond


def test_onnxruntime_matches_torch(exported):
    path, report, out = exported
    assert report["max_abs_diff"] < 1e-3
    assert report["shift_diff"] <= 1e-4  # the tile cut elsewhere gave the same pixels (export's own check)
    # Independently of export's own check: a fresh batch of 3 (dynamic batch), a tile neither square nor 256 px,
    # through the plugin's loader, the planes fed by kind as the engine feeds them.
    g = ckpt.generator_from_checkpoint(ckpt.load(os.path.join(out, "checkpoints", "last.pt")))
    rng = np.random.default_rng(5)
    x = rng.uniform(-1, 1, (3, 3, 320, 192)).astype(np.float32)
    planes, cond = _planes(rng, 3, 320, 192, looks=1)
    with torch.no_grad():
        expected = g(torch.from_numpy(x), torch.from_numpy(cond)).numpy()
    np.testing.assert_allclose(TerraformModel(path, use_gpu=False).run(x, planes), expected, atol=1e-3)


def test_contract_metadata_and_single_file(exported):
    path, _, _ = exported
    assert os.listdir(os.path.dirname(path)) == ["model.onnx"]  # no external-data files, no leftovers
    model = onnx.load(path, load_external_data=False)
    assert all(t.data_location != onnx.TensorProto.EXTERNAL for t in model.graph.initializer)
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in model.graph.input] == ["dem_rgb", "latitude", "guide_rgb", "guide_mask", "look"]
    loaded = TerraformModel(path, use_gpu=False)
    assert loaded.fixed_batch is None  # dynamic N
    meta = loaded.metadata
    assert meta.ramp.to_dict() == training_ramp().to_dict()
    assert (meta.schema, meta.resolution_m, meta.input_range, meta.output_range) == (2, 200.0, (-1, 1), (-1, 1))
    # The tiny run's 5-level U-Net: alignment 2**5, its radius measured at export (the shipped width's is 124 -> 128).
    assert (meta.alignment, meta.plane_stride) == (32, 8) and 96 <= meta.receptive_radius <= 160
    assert [lk.id for lk in meta.looks] == ["ALPHA"] and meta.looks[0].label == "Alpha land"
    latitude = meta.plane("latitude").options
    assert latitude["absolute"] and latitude["range_deg"] == (44.0, 45.0)  # ALPHA spans 44-45 N (conftest)
    assert meta.plane("guide_rgb").options["coarse_px"] == 32
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
