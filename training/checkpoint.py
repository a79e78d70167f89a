"""Checkpoints: everything a run needs to continue bit for bit (nets, optimisers, scaler, step, RNGs)."""

import os
import random

import numpy as np
import torch


def rng_state() -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class CheckpointError(Exception):
    """A checkpoint file that cannot be loaded (truncated, corrupt, not a checkpoint); the message names it."""


def previous_path(path) -> str:
    """Where the checkpoint before the last one is kept: last.pt -> last.prev.pt."""
    root, ext = os.path.splitext(os.fspath(path))
    return f"{root}.prev{ext}"


def _fsync_folder(folder):
    try:
        fd = os.open(folder or ".", os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def save(path, **state):
    """Write atomically and keep the previous checkpoint: a run killed at any moment (also mid-save) leaves a
    complete ``path``, and a second, older one at ``previous_path(path)`` once two saves have happened.

    The new state goes to ``path.tmp`` (flushed to disk), the current ``path`` is hard-linked to the previous
    name, then ``path.tmp`` is renamed over ``path``: ``path`` always names a whole file, old or new.
    """
    path = os.fspath(path)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    if os.path.exists(path):
        previous = previous_path(path)
        link = f"{previous}.tmp"
        if os.path.lexists(link):
            os.remove(link)
        try:
            os.link(path, link)
        except OSError:  # a filesystem without hard links: a copy does the same job, slower
            import shutil

            shutil.copyfile(path, link)
        os.replace(link, previous)
    os.replace(tmp, path)
    _fsync_folder(os.path.dirname(path))


def load(path, map_location="cpu") -> dict:
    """The checkpoint at ``path``; CheckpointError naming the file when it is truncated or corrupt."""
    path = os.fspath(path)
    try:
        # weights_only=False: the checkpoint holds RNG states and the run config, written by this trainer.
        state = torch.load(path, map_location=map_location, weights_only=False)
    except FileNotFoundError:
        raise
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError... for a damaged file
        raise CheckpointError(
            f"checkpoint {path} is truncated or corrupt and cannot be loaded "
            f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else 'no detail'})"
        ) from None
    if not isinstance(state, dict) or "generator" not in state:
        raise CheckpointError(f"{path} is not a training checkpoint (no generator weights in it)")
    return state


def load_latest(path, map_location="cpu", warn=None) -> tuple:
    """(state, the file it came from): ``path``, else the previous checkpoint when ``path`` is damaged.

    ``warn(message)`` hears about a damaged ``path``; CheckpointError when neither loads (both named).
    """
    try:
        return load(path, map_location), os.fspath(path)
    except (CheckpointError, FileNotFoundError) as exc:
        previous = previous_path(path)
        if not os.path.isfile(previous):
            raise CheckpointError(f"{exc}; no previous checkpoint ({previous}) to fall back to") from None
        if warn:
            warn(f"{exc}; falling back to the previous checkpoint {previous}")
        try:
            return load(previous, map_location), previous
        except CheckpointError as older:
            raise CheckpointError(f"{exc}; and {older}") from None


def generator_from_checkpoint(state: dict):
    """Rebuild the eval-mode generator a checkpoint describes (used by export)."""
    from .nets import UnetGenerator

    net = UnetGenerator.from_config(state["generator_config"])
    net.load_state_dict(state["generator"])
    return net.eval()
