"""The shipped trainable weights (training.trainable): small, complete, and a warm start for both nets that counts
the images seen across runs."""

import os

import numpy as np
import pytest
import torch

from training import checkpoint as ckpt
from training.nets import UnetGenerator
from training.trainable import main as pack
from training.train import main as train
from training.warm_start import load_generator_weights


@pytest.fixture(scope="module")
def packed(tiny_run, tmp_path_factory):
    out, _ = tiny_run
    path = str(tmp_path_factory.mktemp("trainable") / "terraform_trainable.pt")
    report = pack(["--checkpoint", os.path.join(out, "checkpoints", "last.pt"), "--output", path, "--version", "9.9"])
    return path, report, out


def test_the_pack_is_small_half_precision_and_complete(packed):
    path, report, out = packed
    source = os.path.join(out, "checkpoints", "last.pt")
    # No optimiser moments, float16 weights: a sixth of the float32 checkpoint's size, give or take the record.
    assert os.path.getsize(path) < 0.3 * os.path.getsize(source)
    assert not [f for f in os.listdir(os.path.dirname(path)) if f.endswith(".tmp")]
    state, run = torch.load(path, weights_only=False), ckpt.load(source)
    for net in ("generator", "discriminator"):
        for name, tensor in state[net].items():
            if name.endswith(("running_mean", "running_var")):
                assert tensor.dtype == torch.float32, name
            elif tensor.is_floating_point():
                assert tensor.dtype == torch.float16, name
        assert set(state[net]) == set(run[net])
    assert state["generator_config"] == run["generator_config"]
    assert state["discriminator_config"] == {"ndf": 8}
    assert [lk["id"] for lk in state["conditioning"]["looks"]] == ["ALPHA"]
    assert state["conditioning"]["looks"][0]["label"] == "Alpha land"
    assert state["step"] == 3 and state["images_seen"] == 3 and report["images_seen"] == 3  # 3 steps of batch 1
    assert state["release"] == "9.9" and state["resolution_m"] == 200.0
    assert state["data"]["train_regions"] == ["ALPHA"] and state["recipe"]["lambda_l1"] == 100.0
    assert "opt_G" not in state and "rng" not in state


def test_warm_start_from_the_pack_takes_both_nets_and_adds_up_images(packed, pairs_dir, tmp_path, tiny_flags):
    path, _, out = packed
    # The generator it gives back computes what the run's own did, to float16's precision.
    run = ckpt.load(os.path.join(out, "checkpoints", "last.pt"))
    own = ckpt.generator_from_checkpoint(run)
    warm = UnetGenerator.from_config(run["generator_config"]).eval()
    report = load_generator_weights(warm, path)
    assert report["parameters"] == report["of_parameters"]
    x = torch.from_numpy(np.random.default_rng(2).uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32))
    cond = torch.rand(1, own.cond_nc, 8, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        a, b = own(x, cond), warm(x, cond)
    assert 0 < float((a - b).abs().max()) < 2e-2

    # A later run: both nets from the pack, 2 steps, killed after 1 and resumed; its count goes on from 3.
    run_dir = tmp_path / "later"
    flags = ["--data", pairs_dir, "--out", str(run_dir), "--max-steps", "2", "--checkpoint-every", "1",
             "--val-regions", "BETA", "--init-from", path, *tiny_flags]
    train([*flags, "--stop-after", "1"])
    assert ckpt.load(str(run_dir / "checkpoints" / "last.pt"))["images_seen"] == 4
    summary = train([*flags, "--resume"])
    state = ckpt.load(str(run_dir / "checkpoints" / "last.pt"))
    assert state["images_seen"] == summary["images_seen"] == 3 + 2
    assert state["warm_start"]["images_seen"] == 3
    d = state["warm_start"]["discriminator"]
    assert d["tensors"] == d["of_tensors"] and d["parameters"] == d["of_parameters"]


def test_a_pack_refuses_to_overwrite_its_checkpoint_and_counts_old_checkpoints(tiny_run, tmp_path):
    out, _ = tiny_run
    source = os.path.join(out, "checkpoints", "last.pt")
    before = os.path.getmtime(source)
    with pytest.raises(SystemExit, match="is the checkpoint itself"):
        pack(["--checkpoint", source, "--output", source])
    assert os.path.getmtime(source) == before
    # A checkpoint from before training.train counted images: its steps x batch, unless the total is given.
    state = ckpt.load(source)
    del state["images_seen"]
    old = tmp_path / "old.pt"
    torch.save(state, old)
    assert pack(["--checkpoint", str(old), "--output", str(tmp_path / "a.pt")])["images_seen_estimated"] is True
    report = pack(["--checkpoint", str(old), "--output", str(tmp_path / "b.pt"), "--images-seen", "80000"])
    assert report["images_seen"] == 80000 and not report["images_seen_estimated"]


def test_the_pack_exports_like_a_checkpoint_with_its_count(packed, tmp_path):
    """A release can be exported from the shipped weights alone (no run folder): the model the plugin loads
    carries the images seen and the looks."""
    from terraform_plugin.core.model import TerraformModel
    from training.export import main as export

    path, _, _ = packed
    onnx_path = str(tmp_path / "from_pack.onnx")
    export(["--checkpoint", path, "--output", onnx_path, "--version", "9.9"])
    meta = TerraformModel(onnx_path, use_gpu=False).metadata
    assert meta.extra["images_seen"] == 3 and meta.extra["steps"] == 3
    assert [(lk.id, lk.label) for lk in meta.looks] == [("ALPHA", "Alpha land")]
