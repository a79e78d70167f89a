"""Warm start (--init-from) and the constants that travel from prepare to the exported model."""

import json
import os
import shutil

import numpy as np
import pytest
import torch

from terraform_plugin.core.model import TerraformModel
from training import checkpoint as ckpt
from training.export import main as export
from training.nets import build_generator
from training.train import main as train
from training.warm_start import load_generator_weights


def _fresh_like(state):
    cfg = state["generator_config"]
    return build_generator(cfg["ngf"], cfg["max_channels"], dropout=cfg["dropout"], upsample=cfg["upsample"],
                           norm=cfg["norm"], padding=cfg["padding"]).eval()


def test_init_from_an_exported_onnx_reproduces_the_model(exported):
    """Every weight and BatchNorm statistic comes back from the ONNX: the torch net then computes what it does."""
    path, _, out = exported
    generator = _fresh_like(ckpt.load(os.path.join(out, "checkpoints", "last.pt")))
    report = load_generator_weights(generator, path)
    assert report["parameters"] == report["of_parameters"]
    x = np.random.default_rng(1).uniform(-1, 1, (2, 3, 256, 256)).astype(np.float32)
    with torch.no_grad():
        got = generator(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, TerraformModel(path, use_gpu=False).run(x), atol=1e-4)


def test_init_from_another_architecture_takes_what_matches(exported):
    path, _, _ = exported
    wider = build_generator(8, upsample="transposed", norm="instance", padding="zeros")  # tiny run is ngf 4
    with pytest.raises(SystemExit, match="no tensor matches"):
        load_generator_weights(wider, path)


def test_init_from_a_corrupt_file_names_it(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07not a protobuf")
    with pytest.raises(SystemExit, match="broken.onnx: cannot read weights"):
        load_generator_weights(build_generator(4), str(bad))


def test_warm_started_run_and_prepare_resolution_reach_the_model(pairs_dir, exported, tmp_path, tiny_flags):
    """Fine-tuning on 30 m chips, interrupted and resumed: the run starts from the model, and the export says
    so and says 30 m, not the seed's 200."""
    data = tmp_path / "data"
    shutil.copytree(pairs_dir, data)
    (data / "manifest.json").write_text(json.dumps({"regions": {"ALPHA": {"resolution_m": 30.0},
                                                                 "BETA": {"resolution_m": 30.0}}}))
    out = tmp_path / "run"
    run = ["--data", str(data), "--out", str(out), "--max-steps", "2", "--checkpoint-every", "1", "--val-regions",
           "BETA", "--init-from", exported[0], *tiny_flags]
    train([*run, "--stop-after", "1"])
    train([*run, "--resume"])  # the resumed run's checkpoint and model still say where it started
    state = ckpt.load(str(out / "checkpoints" / "last.pt"))
    assert state["step"] == 2
    assert state["warm_start"]["source"] == os.path.basename(exported[0])
    assert state["resolution_m"] == 30.0
    model_path = str(tmp_path / "fine.onnx")
    export(["--checkpoint", str(out / "checkpoints" / "last.pt"), "--output", model_path])
    model = TerraformModel(model_path, use_gpu=False)
    assert model.metadata.resolution_m == 30.0
    assert model.metadata.extra["architecture"]["norm"].startswith("BatchNorm")
    assert model.metadata.extra["warm_start"]["source"] == os.path.basename(exported[0])


def test_mixed_resolutions_are_refused(pairs_dir, tmp_path, tiny_flags):
    data = tmp_path / "data"
    shutil.copytree(pairs_dir, data)
    (data / "manifest.json").write_text(json.dumps({"regions": {"ALPHA": {"resolution_m": 30.0},
                                                                 "BETA": {"resolution_m": 200.0}}}))
    with pytest.raises(SystemExit, match="mixes chip resolutions"):
        train(["--data", str(data), "--out", str(tmp_path / "run"), "--max-steps", "1", *tiny_flags])
