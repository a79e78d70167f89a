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


def save(path, **state):
    """Write atomically: a run killed mid-save must leave the previous checkpoint intact."""
    tmp = f"{path}.tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def load(path, map_location="cpu") -> dict:
    # weights_only=False: the checkpoint holds RNG states and the run config, written by this trainer.
    return torch.load(path, map_location=map_location, weights_only=False)


def generator_from_checkpoint(state: dict):
    """Rebuild the eval-mode generator a checkpoint describes (used by export)."""
    from .nets import UnetGenerator

    net = UnetGenerator.from_config(state["generator_config"])
    net.load_state_dict(state["generator"])
    return net.eval()
