"""Fine-tune the bundled model on your own region: a new look beside the bundled ones, then the ONNX to run.

    python -m training.prepare --dem dem.tif --imagery ortho.tif --region MYVALLEY --label "My valley - ..." \
        --out data/mine
    python -m training.finetune --data data/mine --out runs/myvalley --export models/myvalley.onnx

It is ``training.train`` with what a fine-tune must keep fixed taken from the trainable weights
(models/terraform_trainable.pt, made by training.trainable): the generator's build, the discriminator's
width, the recipe's L1 weight and batch size, and their ground resolution (the data must match it). Both nets
warm-start from them; the bundled looks keep their channels and labels and each new region is appended as a
look; the latitude range grows to cover the new region and keeps the old one. Then the run is exported
(verified as the plugin loads it) and packed as trainable weights of its own (OUT/trainable.pt), so the next
fine-tune can start from it.

Defaults are a short run at half the base learning rate: the nets already paint; the new look and the new
latitudes are what there is to learn. Adding the seed pairs to --data (if you have them) keeps the bundled
looks and "auto" from drifting towards your region. Any other flag goes to training.train as it is
(--threads, --val-regions, --resume, --checkpoint-every, ...).
"""

import argparse
import os
import sys

from . import checkpoint as ckpt
from .data import find_pairs

DEFAULT_WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "models",
                               "terraform_trainable.pt")
DEFAULT_STEPS = 2000
DEFAULT_LR = 1e-4  # half the recipe's 2e-4: the weights are trained, a new look is a small move
# Flags the trainable weights decide: another build would not take their weights.
FIXED = ("--ngf", "--max-channels", "--ndf", "--upsample", "--norm", "--padding", "--num-downs", "--dropout",
         "--no-dropout", "--antialias", "--no-antialias", "--init-from", "--max-steps", "--epochs", "--lambda-l1")


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.finetune", description=__doc__.split("\n\n")[0],
                                epilog="Other flags are passed to training.train.")
    p.add_argument("--data", nargs="+", required=True,
                   help="dataset folders from training.prepare (your region), optionally with the seed pairs")
    p.add_argument("--out", required=True, help="run folder: logs, grids, checkpoints, trainable.pt")
    p.add_argument("--weights", default=DEFAULT_WEIGHTS,
                   help="trainable weights to start from (default: the repository's models/terraform_trainable.pt)")
    p.add_argument("--steps", type=int, default=DEFAULT_STEPS, help=f"optimisation steps (default {DEFAULT_STEPS})")
    p.add_argument("--lr", type=float, default=DEFAULT_LR, help=f"Adam learning rate (default {DEFAULT_LR:g})")
    p.add_argument("--batch-size", type=int, default=None, help="chips per step (default: the weights' recipe)")
    p.add_argument("--export", default=None, metavar="ONNX",
                   help="the model to write for the plugin (default OUT/terraform_finetuned.onnx)")
    p.add_argument("--name", default=None, help="model name (default terraform-finetuned-<new looks>)")
    p.add_argument("--version", default=None, help="model version (default <weights' release>+<new looks>)")
    p.add_argument("--fp16", action="store_true", help="export float16 weights (half the file)")
    args, rest = p.parse_known_args(argv)
    for flag in rest:
        if flag.split("=")[0] in FIXED:
            p.error(f"{flag.split('=')[0]} is set by the trainable weights (their build and recipe); "
                    "to change it, train with training.train --init-from")
    if args.steps < 1:
        p.error("--steps must be at least 1")
    return args, rest


def load_weights(path):
    """The trainable weights' state; SystemExit saying why they cannot be fine-tuned."""
    if not os.path.isfile(path):
        raise SystemExit(f"--weights {path}: no such file (a clone has models/terraform_trainable.pt; "
                         "or pack a run of your own with training.trainable)")
    if path.lower().endswith(".onnx"):
        raise SystemExit(f"--weights {path}: an exported model has no discriminator and no training record; "
                         "give the trainable weights (.pt) released beside it")
    try:
        state = ckpt.load(path)
    except ckpt.CheckpointError as exc:
        raise SystemExit(f"--weights: {exc}") from None
    if not state.get("conditioning"):
        raise SystemExit(f"--weights {path}: a contract-1 generator (no looks, no latitude); a new look needs a "
                         "conditioned (contract-2) model")
    return state


def new_regions(data, state):
    """Training regions of ``data`` that are not looks of the weights yet, in the order train appends them."""
    known = {lk["id"] for lk in state["conditioning"]["looks"]}
    return sorted({p.region for p in find_pairs(data)} - known)


def check_resolution(data, state):
    from .train import data_resolution_m

    theirs, ours = state.get("resolution_m"), data_resolution_m(data)
    if theirs is not None and abs(float(theirs) - ours) > 1e-6:
        raise SystemExit(f"--data is at {ours:g} m per pixel and the weights at {float(theirs):g} m: a look is "
                         f"learnt at the model's ground scale. Prepare your region with --resolution {float(theirs):g}"
                         " (training.prepare), or retrain the whole model with training.train --init-from")


def train_argv(args, rest, state):
    cfg, recipe = state["generator_config"], state.get("recipe") or state.get("args") or {}
    argv = ["--data", *args.data, "--out", args.out, "--init-from", args.weights, "--max-steps", str(args.steps),
            "--lr", repr(args.lr), "--ngf", str(cfg["ngf"]), "--upsample", cfg["upsample"], "--norm", cfg["norm"],
            "--padding", cfg["padding"], "--num-downs", str(cfg["num_downs"]),
            "--dropout" if cfg["dropout"] else "--no-dropout"] + (["--antialias"] if cfg.get("antialias") else [])
    if cfg.get("max_channels"):
        argv += ["--max-channels", str(cfg["max_channels"])]
    ndf = (state.get("discriminator_config") or {}).get("ndf") or recipe.get("ndf")
    if ndf:
        argv += ["--ndf", str(ndf)]
    if recipe.get("lambda_l1") is not None:
        argv += ["--lambda-l1", repr(float(recipe["lambda_l1"]))]
    batch = args.batch_size or recipe.get("batch_size")
    if batch:
        argv += ["--batch-size", str(batch)]
    return argv + lever_flags(recipe) + list(rest)


def lever_flags(recipe) -> list:
    """The texture levers the weights were trained with (``training.levers``), as training.train flags: a
    fine-tune continues with the objective its discriminator learnt. None recorded: the recipe's defaults."""
    flags = []
    if recipe.get("gan_loss"):
        flags += ["--gan-loss", recipe["gan_loss"]]
    for key in ("feature_matching", "spectrum_loss", "lr_d"):
        if recipe.get(key):
            flags += ["--" + key.replace("_", "-"), repr(float(recipe[key]))]
    if recipe.get("diff_augment"):
        flags += ["--diff-augment"]
    return flags


def licence_note(data, regions):
    """The seed data's terms (the weights derive from them) and what the user recorded for their regions."""
    from .export import SEED_LICENCE
    from .prepare import MANIFEST, read_manifest

    notes = {}
    for folder in data:
        path = os.path.join(folder, MANIFEST)
        if os.path.isfile(path):
            for region, entry in read_manifest(path)["regions"].items():
                if region in regions:
                    notes[region] = entry.get("licence")
    own = "; ".join(f"{r}: {notes.get(r) or 'its data licence was not recorded (training.prepare --licence)'}"
                    for r in regions)
    return f"{SEED_LICENCE} Fine-tuned on {own}." if regions else SEED_LICENCE


def main(argv=None):
    from . import trainable
    from .export import main as export
    from .train import main as train

    args, rest = parse_args(argv)
    state = load_weights(args.weights)
    check_resolution(args.data, state)
    regions = new_regions(args.data, state)
    checkpoint = os.path.join(args.out, "checkpoints", "last.pt")
    if os.path.isfile(checkpoint) and "--resume" not in rest:
        raise SystemExit(f"{args.out} already holds a run ({checkpoint}): add --resume to continue it, or choose "
                         "another --out")
    looks = [lk["id"] for lk in state["conditioning"]["looks"]]
    print(f"fine-tuning {os.path.basename(args.weights)} ({state['images_seen'] if 'images_seen' in state else '?'} "
          f"images seen; looks {', '.join(looks) or 'none'}) on {', '.join(regions) or 'its own looks'}"
          f"{' (new looks)' if regions else ''}")
    train(train_argv(args, rest, state))
    trained = [lk["id"] for lk in ckpt.load(checkpoint)["conditioning"]["looks"]]
    regions = [r for r in trained if r not in looks]  # what the run appended (held-out regions are no look)

    tag = ".".join(r.lower().replace("_", ".").replace("-", ".") for r in regions) or "finetuned"
    release = state.get("release") or "0"  # a fine-tune of a fine-tune: 0.4.0+alps -> 0.4.0+alps.myvalley
    version = args.version or (f"{release}.{tag}" if "+" in release else f"{release}+{tag}")
    name = args.name or f"terraform-finetuned-{'-'.join(r.lower() for r in regions) or 'run'}"
    model = args.export or os.path.join(args.out, "terraform_finetuned.onnx")
    report = export(["--checkpoint", checkpoint, "--output", model, "--name", name, "--version", version,
                     "--licence", licence_note(args.data, regions), *(["--fp16"] if args.fp16 else [])])
    packed = trainable.pack(checkpoint, os.path.join(args.out, "trainable.pt"), release=version)
    print(f"trainable weights for the next fine-tune: {packed['output']} ({packed['images_seen']:,} images seen)")
    print(f"In QGIS: Terraform DEM with MODEL={os.path.abspath(model)}"
          f"{' and LOOK=' + regions[0] if regions else ''}")
    return {"model": model, "export": report, "trainable": packed, "looks": trained, "new_looks": regions}


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
