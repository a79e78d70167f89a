import os

import torch

from training import checkpoint as ckpt
from training.data import PairDataset, find_pairs
from training.train import Trainer, learning_rate, main, parse_args


def test_run_writes_logs_plots_and_checkpoint(tiny_run):
    out, summary = tiny_run
    for name in ("losses.csv", "val.csv", "loss_curve.png", "summary.json", "checkpoints/last.pt"):
        assert os.path.getsize(os.path.join(out, name)) > 0, name
    assert os.listdir(os.path.join(out, "grids"))
    with open(os.path.join(out, "losses.csv")) as f:
        assert len(f.read().strip().splitlines()) == 1 + 3
    assert summary["steps"] == 3 and summary["images_per_second"] > 0
    state = ckpt.load(os.path.join(out, "checkpoints", "last.pt"))
    assert state["step"] == 3 and state["val_regions"] == ["BETA"] and state["train_regions"] == ["ALPHA"]


def test_learning_rate_is_constant_then_linear_to_zero():
    assert learning_rate(0, 100, 2e-4, 0.5) == learning_rate(49, 100, 2e-4, 0.5) == 2e-4
    assert learning_rate(75, 100, 2e-4, 0.5) == 1e-4
    assert learning_rate(99, 100, 2e-4, 0.5) < 1e-5


def test_a_few_steps_lower_l1_on_a_tiny_set(pairs_dir, tmp_path):
    args = parse_args(["--data", pairs_dir, "--out", str(tmp_path), "--max-steps", "1", "--ngf", "8",
                       "--ndf", "8", "--device", "cpu", "--no-dropout", "--precision", "fp32"])
    trainer = Trainer(args)
    # The trainer's own conditioning (latitude, look, guide planes as held-out places get them), fixed here.
    dataset = PairDataset(find_pairs([pairs_dir]), conditioning=trainer.conditioning)
    x, y, cond = (torch.stack(t) for t in zip(*[dataset[i] for i in range(2)]))

    def l1():
        with torch.no_grad():
            return torch.mean(torch.abs(trainer.G.eval()(x, cond) - y)).item()

    before = l1()
    trainer.G.train()
    for _ in range(30):
        trainer.train_step(x, y, 2e-4, cond)
    after = l1()
    assert after < 0.85 * before, (before, after)


def _weights(out):
    state = ckpt.load(os.path.join(out, "checkpoints", "last.pt"))
    return state


def test_resume_ends_with_the_same_weights(pairs_dir, tmp_path, tiny_flags):
    # 3 training chips, batch 1: 5 steps cross an epoch boundary; the "kill" lands mid-epoch at step 2.
    common = ["--data", pairs_dir, "--max-steps", "5", "--checkpoint-every", "2", "--val-regions", "BETA",
              *tiny_flags]
    straight, killed = str(tmp_path / "straight"), str(tmp_path / "killed")
    main(["--out", straight, *common])
    main(["--out", killed, "--stop-after", "3", *common])  # dies after step 3; last checkpoint is step 2
    assert _weights(killed)["step"] == 2
    main(["--out", killed, "--resume", *common])
    a, b = _weights(straight), _weights(killed)
    assert a["step"] == b["step"] == 5
    for key in ("generator", "discriminator"):
        for name, tensor in a[key].items():
            assert torch.equal(tensor, b[key][name]), f"{key}.{name} differs after resume"
    for key in ("opt_G", "opt_D"):
        for idx, s in a[key]["state"].items():
            assert torch.equal(s["exp_avg_sq"], b[key]["state"][idx]["exp_avg_sq"])
    with open(os.path.join(straight, "losses.csv")) as f1, open(os.path.join(killed, "losses.csv")) as f2:
        strip = lambda rows: [r.rsplit(",", 1)[0] for r in rows]  # noqa: E731 - timings differ, losses must not
        assert strip(f1.read().splitlines()) == strip(f2.read().splitlines())


def test_resume_keeps_the_checkpoints_precision(pairs_dir, tmp_path, tiny_flags):
    """--precision auto on resume continues in the arithmetic the run started with, whatever a new timing says."""
    flags = [f for f in tiny_flags if f not in ("--precision", "fp32")]
    out = str(tmp_path / "run")
    main(["--data", pairs_dir, "--out", out, "--max-steps", "2", "--precision", "fp32", *flags])
    summary = main(["--data", pairs_dir, "--out", out, "--max-steps", "3", "--precision", "auto", "--resume", *flags])
    assert summary["cpu_precision"] == "fp32"
