"""The shipped trainable weights: generator and discriminator in float16, with what a later run needs.

    python -m training.trainable --checkpoint runs/v2/checkpoints/last.pt --output models/terraform_trainable.pt \
        --version 0.4.0

A checkpoint lives in a run folder that no later machine has, and it is large (float32 nets plus Adam's two
moments). This file is what the repository keeps instead, beside the ONNX: both nets' weights in float16 (a
third of the float32 checkpoint's nets, a sixth of the checkpoint), BatchNorm statistics in float32 (a
variance below float16's normal range would lose digits; they are a few KB), and the record a warm start
reads: generator build, discriminator width, conditioning (looks with labels, latitude range), ground
resolution, steps and images seen in total, data and recipe. ``training.train --init-from`` this file
warm-starts both nets; ``training.finetune`` reads its build and recipe from it; ``training.export``
accepts it like a checkpoint. Adam's moments are left out: a warm start begins a new schedule anyway.
"""

import argparse
import datetime
import os
import sys

import torch

from . import checkpoint as ckpt
from .levers import LEVERS

FORMAT = "terraform-dem trainable weights"
# Run flags worth keeping: the recipe a later run repeats (paths and one-off switches are this machine's).
RECIPE = ("ngf", "max_channels", "ndf", "dropout", "upsample", "norm", "padding", "antialias", "num_downs", "lambda_l1", "lr",
          "decay_start", "batch_size", "seed", "recalibrate", "precision", "amp", *LEVERS)
STATISTICS = ("running_mean", "running_var", "num_batches_tracked")


def half(state_dict) -> dict:
    """Weights to float16; BatchNorm statistics and integer tensors as they are."""
    return {k: v.half() if v.is_floating_point() and not k.endswith(STATISTICS) else v.clone()
            for k, v in state_dict.items()}


def trainable_state(state, images_seen=None, release=None) -> dict:
    """The trainable-weights record of checkpoint ``state``.

    ``images_seen``: the total to record when the checkpoint predates the count (else its own, else its steps x
    batch size). ``release``: the model version these weights are (e.g. the ONNX released beside them)."""
    args = state.get("args") or {}
    if images_seen is None:
        images_seen = state.get("images_seen")
    estimated = images_seen is None
    if estimated:
        images_seen = state["step"] * int(args.get("batch_size") or 1)
    if "discriminator" not in state:
        raise SystemExit("the checkpoint has no discriminator weights: pack a training checkpoint "
                         "(RUN/checkpoints/last.pt), not an export")
    return {
        "format": FORMAT,
        "format_version": 1,
        "release": release,
        "generator": half(state["generator"]),
        "discriminator": half(state["discriminator"]),
        "weights": "float16 (BatchNorm statistics float32)",
        "generator_config": state["generator_config"],
        "discriminator_config": {"ndf": args.get("ndf")},
        "conditioning": state.get("conditioning"),
        "resolution_m": state.get("resolution_m"),
        "step": state["step"],
        "images_seen": int(images_seen),
        "images_seen_estimated": estimated,
        "data": {"folders": [os.path.basename(os.path.normpath(d)) for d in args.get("data") or []],
                 "train_regions": state.get("train_regions"), "val_regions": state.get("val_regions"),
                 "train_chips": state.get("train_chips"), "val_chips": state.get("val_chips")},
        "regions": (state.get("conditioning") or {}).get("regions"),
        "recipe": {k: args[k] for k in RECIPE if k in args},
        # Under the checkpoint's own names too, so training.export and the warm start read this file as one.
        "args": {k: args[k] for k in (*RECIPE, "data") if k in args},
        "train_regions": state.get("train_regions"),
        "val_regions": state.get("val_regions"),
        "train_chips": state.get("train_chips"),
        "val_chips": state.get("val_chips"),
        "warm_start": state.get("warm_start"),
        "batchnorm_statistics": state.get("batchnorm_statistics"),
        "cpu_precision": state.get("cpu_precision"),
        "packed": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def write(record, path):
    """Atomic: the record goes to a temporary file beside ``path``, renamed over it only when complete."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = os.path.join(folder, f".{os.path.basename(path)}.tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(record, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def pack(checkpoint, output, images_seen=None, release=None) -> dict:
    if os.path.exists(output) and os.path.samefile(checkpoint, output):
        raise SystemExit(f"--output {output} is the checkpoint itself: write the trainable weights elsewhere")
    try:
        state = ckpt.load(checkpoint)
    except ckpt.CheckpointError as exc:
        raise SystemExit(str(exc)) from None
    record = trainable_state(state, images_seen, release)
    write(record, output)
    return {"output": output, "bytes": os.path.getsize(output), "step": record["step"],
            "images_seen": record["images_seen"], "images_seen_estimated": record["images_seen_estimated"],
            "looks": [lk["id"] for lk in (record["conditioning"] or {}).get("looks", [])]}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.trainable", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a training checkpoint (RUN/checkpoints/last.pt)")
    p.add_argument("--output", required=True, help="the .pt to write (models/terraform_trainable.pt)")
    p.add_argument("--version", default=None, help="the release these weights are (the ONNX beside them), e.g. 0.4.0")
    p.add_argument("--images-seen", type=int, default=None,
                   help="total images the weights have seen, for a checkpoint from before training.train counted "
                        "them (default: the checkpoint's count, else its steps x batch size)")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    if not os.path.isfile(a.checkpoint):
        raise SystemExit(f"--checkpoint {a.checkpoint}: no such file")
    r = pack(a.checkpoint, a.output, a.images_seen, a.version)
    print(f"wrote {a.output}: {r['bytes'] / 1e6:.2f} MB, step {r['step']}, {r['images_seen']:,} images seen"
          f"{' (estimated: steps x batch of this run alone)' if r['images_seen_estimated'] else ''}"
          f"{', looks ' + ', '.join(r['looks']) if r['looks'] else ''}")
    return r


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
