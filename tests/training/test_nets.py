import pytest
import torch

from training.nets import (
    DEFAULT_NUM_DOWNS, NUM_DOWNS, REFERENCE, SEAMLESS, UnetGenerator, build_discriminator, build_generator, count_params,
)


def test_reference_parameter_counts():
    # The paper's networks: U-Net 256 at ngf 64 (~54.4 M) and the 70x70 PatchGAN (~2.77 M).
    assert count_params(build_generator(64, **REFERENCE)) == pytest.approx(54.4e6, rel=2e-3)
    assert count_params(build_discriminator(64)) == pytest.approx(2.77e6, rel=2e-3)


def test_channel_cap_shrinks_only_the_wide_layers():
    capped = build_generator(32, max_channels=128, **REFERENCE)
    assert count_params(capped) < count_params(build_generator(32, **REFERENCE)) / 3
    widths = {m.out_channels for m in capped.modules() if isinstance(m, torch.nn.Conv2d)}
    assert max(widths) == 128 and 32 in widths


def test_shapes_and_output_range():
    g, d = build_generator(8, **REFERENCE).eval(), build_discriminator(8)
    x = torch.rand(2, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        y = g(x)
        logits = d(x, y)
    assert y.shape == x.shape and y.abs().max() <= 1.0
    assert logits.shape == (2, 1, 30, 30)  # one logit per 70 x 70 receptive field
    assert NUM_DOWNS == 8


def test_dropout_only_in_train_mode():
    torch.manual_seed(0)
    g = build_generator(8, **REFERENCE)  # the reference's dropout (the trainer's default has none)
    x = torch.rand(1, 3, 256, 256) * 2 - 1
    with torch.no_grad():
        g.train()
        assert not torch.equal(g(x), g(x))  # dropout is noise while training
        g.eval()
        assert torch.equal(g(x), g(x))  # the exported, validated network is deterministic


def test_init_is_normal_002():
    g = build_generator(16)
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.Conv2d)])
    assert abs(w.std().item() - 0.02) < 0.002 and abs(w.mean().item()) < 0.002


def test_the_default_build_is_the_trainers():
    """build_generator() with no options is what `training.train` builds with none (less the conditioning, which
    its data decides): the seamless contract-2 U-Net."""
    from training.train import DEFAULT_NUM_DOWNS as TRAINER_NUM_DOWNS, parse_args

    args = parse_args(["--data", "d", "--out", "o"])
    g = build_generator()
    assert DEFAULT_NUM_DOWNS == TRAINER_NUM_DOWNS == args.num_downs < NUM_DOWNS
    assert g.num_downs == args.num_downs and g.cond_nc == 0
    trainer = {"ngf": args.ngf, "max_channels": args.max_channels, "dropout": args.dropout,
               "upsample": args.upsample, "norm": args.norm, "padding": args.padding}
    assert {k: g.config[k] for k in trainer} == trainer == {"ngf": 64, "max_channels": None, **SEAMLESS}


def test_a_config_without_the_newer_keys_rebuilds_the_reference():
    """Checkpoints from before the build options (and U-Net 256 configs, which leave the depth out) rebuild as the
    reference pix2pix, whatever build_generator's defaults."""
    old = UnetGenerator.from_config({"ngf": 8, "max_channels": None})
    assert old.num_downs == NUM_DOWNS
    assert {k: old.config[k] for k in ("upsample", "norm", "padding", "dropout")} == {
        k: v for k, v in REFERENCE.items() if k != "num_downs"}
    assert count_params(old) == count_params(build_generator(8, **REFERENCE))
