"""The texture levers (training.levers): what each term rewards, the augmentation keeping pairs aligned, a
trainer run with every lever on, recorded with the weights, the exported model and a fine-tune; and the
anti-aliased downsampling (training.nets.BlurDown), a lever against the alignment-period pattern."""

import csv
import json
import os

import onnx
import pytest
import torch
import torch.nn.functional as F

from training import export, finetune, levers, trainable
from terraform_plugin.core.model import TerraformModel
from training.nets import build_discriminator, build_generator
from training.train import main


def relief_image(seed=0, size=64):
    g = torch.Generator().manual_seed(seed)
    noise = torch.rand(1, 3, size, size, generator=g) * 2 - 1
    return F.avg_pool2d(F.pad(noise, (1, 1, 1, 1), mode="circular"), 3, 1)  # texture at several scales


def test_the_spectrum_loss_ignores_where_texture_lies_but_not_how_much_there_is():
    real = relief_image()
    shifted = torch.roll(real, shifts=(17, -9), dims=(2, 3))  # the same texture elsewhere: phase only
    smooth = F.avg_pool2d(F.pad(real, (2, 2, 2, 2), mode="circular"), 5, 1)  # the texture averaged away
    assert levers.spectrum_loss(shifted, real).item() < 1e-4
    assert torch.mean(torch.abs(shifted - real)).item() > 0.1  # while L1 on pixels punishes the shift
    assert levers.spectrum_loss(smooth, real).item() > 0.3
    # and L1 on pixels prefers the smooth picture to the shifted one: the bias the spectrum term corrects
    assert torch.mean(torch.abs(smooth - real)) < torch.mean(torch.abs(shifted - real))


@pytest.mark.parametrize("kind", levers.GAN_LOSSES)
def test_each_gan_loss_rewards_a_discriminator_that_tells_real_from_generated(kind):
    real, fake = (1.0, 0.0) if kind == "lsgan" else (4.0, -4.0)  # LSGAN scores are targets, the rest logits
    score = {s: torch.full((2, 1, 8, 8), s) for s in (real, fake, (real + fake) / 2)}
    separated = levers.d_loss(kind, score[real], score[fake])[0]
    confused = levers.d_loss(kind, score[(real + fake) / 2], score[(real + fake) / 2])[0]
    fooled = levers.d_loss(kind, score[fake], score[real])[0]
    assert separated < confused < fooled
    # the generator's loss falls as its pairs are scored more real
    g = [levers.g_loss(kind, score[s]) for s in (real, (real + fake) / 2, fake)]
    assert g[0] < g[1] < g[2]


def test_diff_augment_moves_and_cuts_each_pair_the_same_way():
    condition = relief_image(1)
    condition = condition.repeat(4, 1, 1, 1) + torch.arange(4).view(4, 1, 1, 1) * 0.01
    image = condition.clone().requires_grad_(True)
    x, real, fake = levers.diff_augment(condition, condition, image, generator=torch.Generator().manual_seed(0))
    assert x.shape == real.shape == fake.shape == condition.shape
    assert torch.equal(x, real) and torch.equal(x, fake)  # one draw per sample for all its halves
    zeros = (x == 0).all(1).float().mean((1, 2))
    assert (zeros >= 0.25 - 1e-6).all()  # a cutout of half the side, at least
    assert not torch.equal(x[0], x[1])  # each sample its own draw
    fake.sum().backward()  # differentiable: the generator learns through it
    assert image.grad is not None and (image.grad == 0).any() and (image.grad == 1).any()


def test_the_discriminators_features_end_with_its_logits():
    d = build_discriminator(8)
    x, y = relief_image(2), relief_image(3)
    features = d.features(x, y)
    assert len(features) == 5  # after each of the 4 LeakyReLUs, then the logits
    assert torch.equal(features[-1], d(x, y))


def test_a_run_with_every_lever_records_them_in_the_weights_the_model_and_a_fine_tune(pairs_dir, tmp_path,
                                                                                     tiny_flags):
    out = str(tmp_path / "run")
    flags = ["--gan-loss", "hinge", "--feature-matching", "10", "--spectrum-loss", "1", "--diff-augment",
             "--lr-d", "1e-4"]
    main(["--data", pairs_dir, "--out", out, "--max-steps", "4", "--val-regions", "BETA", *tiny_flags, *flags])
    with open(os.path.join(out, "losses.csv")) as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 4 and {"g_fm", "g_spectrum"} <= set(rows[0])
    assert all(float(r["g_fm"]) > 0 and float(r["g_spectrum"]) > 0 for r in rows)

    pack = str(tmp_path / "trainable.pt")
    trainable.main(["--checkpoint", os.path.join(out, "checkpoints", "last.pt"), "--output", pack])
    recipe = torch.load(pack, map_location="cpu", weights_only=False)["recipe"]
    assert {k: recipe[k] for k in levers.LEVERS} == {"gan_loss": "hinge", "feature_matching": 10.0,
                                                      "spectrum_loss": 1.0, "diff_augment": True, "lr_d": 1e-4}
    model = str(tmp_path / "model.onnx")
    export.main(["--checkpoint", pack, "--output", model])
    meta = {p.key: p.value for p in onnx.load(model).metadata_props}
    training = json.loads(meta["training"])
    assert training["gan_loss"] == "hinge" and training["diff_augment"] is True
    # a fine-tune goes on with the objective its discriminator learnt
    assert finetune.lever_flags(recipe) == ["--gan-loss", "hinge", "--feature-matching", "10.0",
                                            "--spectrum-loss", "1.0", "--lr-d", "0.0001", "--diff-augment"]
    assert finetune.lever_flags({}) == []  # weights from before the levers: the recipe's defaults


def _shift_error(generator, shift=1):
    """Mean |G(shift(x)) - shift(G(x))| over the interior: 0 for a shift-equivariant network."""
    gen = torch.Generator().manual_seed(1)
    x, cond = torch.randn(2, 3, 256, 256, generator=gen), torch.randn(2, 10, 32, 32, generator=gen)
    with torch.no_grad():
        moved = generator(torch.roll(x, (shift, shift), (2, 3)), cond)
        expected = torch.roll(generator(x, cond), (shift, shift), (2, 3))
    return torch.mean(torch.abs(moved - expected)[:, :, 64:192, 64:192]).item()


def test_antialiased_downsampling_makes_the_generator_closer_to_shift_equivariant_and_keeps_its_names():
    nets = {}
    for antialias in (False, True):
        torch.manual_seed(0)
        nets[antialias] = build_generator(16, 128, num_downs=5, cond_nc=10, antialias=antialias).eval()
    # the plain net behaves differently at even and odd positions of its strided levels; the blur evens that out
    assert _shift_error(nets[True]) < 0.5 * _shift_error(nets[False])
    # the same tensors by name: a warm start from plain weights carries every one
    plain, blurred = nets[False].state_dict(), nets[True].state_dict()
    assert plain.keys() == blurred.keys() and all(plain[k].shape == blurred[k].shape for k in plain)
    assert nets[True].config["antialias"] is True and "antialias" not in nets[False].config


def test_an_antialiased_run_exports_a_model_the_plugin_loads_with_its_wider_reach(pairs_dir, tmp_path, tiny_flags):
    radius = {}
    for antialias in (False, True):
        out = str(tmp_path / f"aa{antialias}")
        main(["--data", pairs_dir, "--out", out, "--max-steps", "2", *tiny_flags, "--no-recalibrate"]
             + (["--antialias"] if antialias else []))
        model = str(tmp_path / f"aa{antialias}.onnx")
        export.main(["--checkpoint", os.path.join(out, "checkpoints", "last.pt"), "--output", model])
        meta = TerraformModel(model, threads=1).metadata
        radius[antialias] = meta.receptive_radius
        assert ("downsampling" in meta.extra["architecture"]) == antialias
    assert radius[True] > radius[False]  # the blur reaches one pixel further at every level: wider margins
