"""Issue 11, training side: a run killed at any moment - also while a checkpoint is being written - leaves a
loadable last checkpoint, and --resume from a damaged one names it and falls back to the previous one."""

import os
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from training import checkpoint as ckpt
from training.train import main
from killing import reaped, sigkill

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

SAVER = textwrap.dedent("""
    import sys
    import torch
    from training import checkpoint as ckpt
    path = sys.argv[1]
    step = 0
    while True:
        step += 1
        # 24 MB, every value the step: a checkpoint mixing two saves would show
        ckpt.save(path, step=step, generator={"w": torch.full((6_000_000,), float(step))})
        print(step, flush=True)
""")


def test_sigkill_at_any_moment_of_saving_leaves_a_loadable_checkpoint(tmp_path):
    path = str(tmp_path / "last.pt")
    env = dict(os.environ, PYTHONPATH=ROOT)
    mid_write = []
    for delay in (0.05, 0.13, 0.29, 0.41):  # different moments of a save; a save takes a good fraction of a second
        child = subprocess.Popen([sys.executable, "-c", SAVER, path], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                 text=True)
        with reaped(child):
            first = int(child.stdout.readline())  # at least one save of this child completed
            time.sleep(delay)
            sigkill(child)
        state = ckpt.load(path)
        assert state["step"] >= first
        assert bool((state["generator"]["w"] == state["step"]).all())
        mid_write.append(os.path.exists(path + ".tmp"))
        if os.path.exists(ckpt.previous_path(path)):
            assert ckpt.load(ckpt.previous_path(path))["step"] <= state["step"]  # equal: killed between the renames
    print(f"killed while a .tmp was being written: {mid_write}")


def test_previous_checkpoint_is_kept(tmp_path):
    path = str(tmp_path / "last.pt")
    for step in (1, 2, 3):
        ckpt.save(path, step=step, generator={})
    assert ckpt.load(path)["step"] == 3
    assert ckpt.load(ckpt.previous_path(path))["step"] == 2
    assert sorted(os.listdir(tmp_path)) == ["last.prev.pt", "last.pt"]  # no .tmp left


def test_a_truncated_checkpoint_is_named_and_the_previous_one_used(tmp_path):
    path = str(tmp_path / "last.pt")
    ckpt.save(path, step=1, generator={"w": torch.ones(1000)})
    ckpt.save(path, step=2, generator={"w": torch.ones(1000)})
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) // 2)
    with pytest.raises(ckpt.CheckpointError, match=r"last\.pt is truncated or corrupt"):
        ckpt.load(path)
    warnings = []
    state, source = ckpt.load_latest(path, warn=warnings.append)
    assert state["step"] == 1 and source == ckpt.previous_path(path)
    assert "last.pt" in warnings[0] and "falling back" in warnings[0]
    with open(ckpt.previous_path(path), "wb") as f:
        f.write(b"garbage")
    with pytest.raises(ckpt.CheckpointError, match=r"last\.pt is truncated.*last\.prev\.pt is truncated"):
        ckpt.load_latest(path)


def _run_args(pairs_dir, out, tiny_flags, steps):
    return ["--data", pairs_dir, "--out", out, "--max-steps", str(steps), "--checkpoint-every", "1",
            "--val-regions", "BETA", *tiny_flags]  # tiny_flags pin --precision fp32


def test_sigkilled_training_resumes(pairs_dir, tmp_path, tiny_flags, capsys):
    """A real `python -m training.train` killed with SIGKILL after a few checkpoints; --resume continues."""
    out = str(tmp_path / "run")
    args = _run_args(pairs_dir, out, tiny_flags, 500)
    child = subprocess.Popen([sys.executable, "-m", "training.train", *args], cwd=ROOT,
                             env=dict(os.environ, PYTHONPATH=ROOT), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    last = os.path.join(out, "checkpoints", "last.pt")
    with reaped(child):
        deadline = time.monotonic() + 600
        while child.poll() is None and time.monotonic() < deadline and not os.path.exists(ckpt.previous_path(last)):
            time.sleep(0.02)
        assert child.poll() is None, f"training ended early (exit {child.returncode})"
        time.sleep(0.3)
        sigkill(child)
    step = ckpt.load(last)["step"]
    assert step >= 2
    # The last checkpoint damaged too (a copy cut short): resume names it and starts from the previous one.
    with open(last, "r+b") as f:
        f.truncate(100)
    previous = ckpt.load(ckpt.previous_path(last))["step"]
    summary = main(["--resume", *_run_args(pairs_dir, out, tiny_flags, previous + 2)])
    err = capsys.readouterr()
    assert "last.pt is truncated or corrupt" in err.err and "falling back" in err.err
    assert f"resumed from {ckpt.previous_path(last)} at step {previous}" in err.out
    assert summary["steps"] == previous + 2 and ckpt.load(last)["step"] == previous + 2


def test_resume_with_no_loadable_checkpoint_says_which_file(pairs_dir, tmp_path, tiny_flags):
    out = str(tmp_path / "run")
    os.makedirs(os.path.join(out, "checkpoints"))
    with open(os.path.join(out, "checkpoints", "last.pt"), "wb") as f:
        f.write(b"PK\x03\x04 cut short")
    with pytest.raises(SystemExit) as caught:
        main(["--resume", *_run_args(pairs_dir, out, tiny_flags, 3)])
    message = str(caught.value)
    assert "last.pt is truncated or corrupt" in message and "no previous checkpoint" in message


def test_export_from_a_damaged_checkpoint_names_it_and_writes_nothing(tmp_path):
    from training.export import main as export

    damaged = tmp_path / "last.pt"
    damaged.write_bytes(b"PK\x03\x04" + b"\0" * 200)
    out = tmp_path / "model.onnx"
    with pytest.raises(ckpt.CheckpointError, match=r"last\.pt is truncated or corrupt"):
        export(["--checkpoint", str(damaged), "--output", str(out)])
    assert sorted(os.listdir(tmp_path)) == ["last.pt"]
