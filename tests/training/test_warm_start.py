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
from training.nets import UnetGenerator, build_generator, init_weights
from training.train import main as train
from training.warm_start import load_generator_weights, source_looks


def _fresh_like(state, **changes):
    return init_weights(UnetGenerator.from_config({**state["generator_config"], **changes})).eval()


def _inputs(looks, n=2, side=256, seed=1):
    """An input batch, the planes by kind (one-hot of the first look), and the same as the trainer's cond tensor."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 3, side, side)).astype(np.float32)
    h = side // 8
    planes = {"latitude": rng.uniform(0, 0.5, (n, 1, h, h)), "guide_rgb": rng.uniform(-1, 1, (n, 3, h, h)),
              "guide_mask": np.ones((n, 1, h, h)), "look": np.zeros((n, looks, h, h))}
    planes["look"][:, 0] = 1.0
    planes = {k: v.astype(np.float32) for k, v in planes.items()}
    cond = np.concatenate([planes[k] for k in ("latitude", "guide_rgb", "guide_mask", "look")], axis=1)
    return x, planes, cond


def test_init_from_an_exported_onnx_reproduces_the_model(exported):
    """Every weight and BatchNorm statistic comes back from the ONNX: the torch net then computes what it does."""
    path, _, out = exported
    generator = _fresh_like(ckpt.load(os.path.join(out, "checkpoints", "last.pt")))
    report = load_generator_weights(generator, path)
    assert report["parameters"] == report["of_parameters"] and report["widened"] == 0
    x, planes, cond = _inputs(looks=1)
    with torch.no_grad():
        got = generator(torch.from_numpy(x), torch.from_numpy(cond)).numpy()
    np.testing.assert_allclose(got, TerraformModel(path, use_gpu=False).run(x, planes), atol=1e-4)


def test_a_new_look_widens_the_conditioned_layers_and_keeps_the_old_looks(exported):
    """Fine-tuning adds a look: its channel comes after the model's own, with zero weights, so until training
    moves them the widened net paints the old looks exactly as the model does."""
    path, _, out = exported
    state = ckpt.load(os.path.join(out, "checkpoints", "last.pt"))
    assert source_looks(path) == ["ALPHA"]
    cond_nc = state["generator_config"]["cond_nc"]
    widened = _fresh_like(state, cond_nc=cond_nc + 1)
    report = load_generator_weights(widened, path)
    assert report["widened"] == 2  # the two encoder levels at 1/8 and 1/16 see the planes (cond_stride 8)
    assert report["parameters"] < report["of_parameters"]  # the new look's weights stayed fresh (zeros)
    x, planes, cond = _inputs(looks=1)
    x2, _, cond2 = _inputs(looks=2)  # same draws; a second, unused look channel
    np.testing.assert_array_equal(cond2[:, :cond_nc], cond)
    with torch.no_grad():
        got = widened(torch.from_numpy(x2), torch.from_numpy(cond2)).numpy()
    np.testing.assert_allclose(got, TerraformModel(path, use_gpu=False).run(x, planes), atol=1e-4)


def test_init_from_another_architecture_takes_what_matches(exported):
    path, _, _ = exported
    wider = build_generator(8, upsample="transposed", norm="instance", padding="zeros", num_downs=5)  # tiny run: ngf 4
    with pytest.raises(SystemExit, match="no tensor matches"):
        load_generator_weights(wider, path)


def test_init_from_a_corrupt_file_names_it(tmp_path):
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"\x08\x07not a protobuf")
    with pytest.raises(SystemExit, match="broken.onnx: cannot read weights"):
        load_generator_weights(build_generator(4), str(bad))


def _set_resolutions(data, **resolutions):
    """What training.prepare --resolution records, written into the test data's manifest (regions keep their place)."""
    manifest = json.loads((data / "manifest.json").read_text())
    for region, metres in resolutions.items():
        manifest["regions"][region]["resolution_m"] = metres
    (data / "manifest.json").write_text(json.dumps(manifest))


def test_warm_started_run_and_prepare_resolution_reach_the_model(pairs_dir, exported, tmp_path, tiny_flags):
    """Fine-tuning on 30 m chips, interrupted and resumed: the run starts from the model, and the export says
    so and says 30 m, not the seed's 200."""
    data = tmp_path / "data"
    shutil.copytree(pairs_dir, data)
    _set_resolutions(data, ALPHA=30.0, BETA=30.0)
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
    _set_resolutions(data, ALPHA=30.0, BETA=200.0)
    with pytest.raises(SystemExit, match="mixes chip resolutions"):
        train(["--data", str(data), "--out", str(tmp_path / "run"), "--max-steps", "1", *tiny_flags])
