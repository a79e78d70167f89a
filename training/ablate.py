"""Ablation of the generator's build: short runs of identical length, scored on what a user sees.

    python -m training.ablate --data ../shared/data/seed-pairs --out runs/ablation --steps 400

Trains each variant (same seed, data order, steps, batch, widths; only the named options differ), exports it,
and scores it with ``training.evaluate`` on the held-out regions: chip L1 and colour distance, and the whole
held-out mosaics through the engine (periodic share, chip-grid score). Writes ``ablation.md`` and
``ablation.json`` into --out. Short runs are far from a finished model; they show what each choice does
to the artefacts, which appear within the first thousand images.
"""

import argparse
import json
import os

from . import evaluate, export, train

# name -> generator options; each differs from the next by one choice.
VARIANTS = {
    "reference (transposed, instance, zeros)": {"upsample": "transposed", "norm": "instance", "padding": "zeros"},
    "bilinear + instance + zeros": {"upsample": "bilinear", "norm": "instance", "padding": "zeros"},
    "bilinear + batch + zeros": {"upsample": "bilinear", "norm": "batch", "padding": "zeros"},
    "bilinear + batch + reflect (shipped)": {"upsample": "bilinear", "norm": "batch", "padding": "reflect"},
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.ablate", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", nargs="+", required=True, help="dataset folders (as for training.train)")
    p.add_argument("--out", required=True, help="folder for the runs and the table")
    p.add_argument("--steps", type=int, default=400, help="optimisation steps per variant (default 400)")
    p.add_argument("--val-regions", nargs="+", default=["CALI", "ITALY"], help="held-out regions")
    p.add_argument("--chips", type=int, default=32, help="held-out chips scored per region (default 32)")
    p.add_argument("--variants", nargs="*", default=None, help="names of VARIANTS to run (default all)")
    p.add_argument("--train-flags", default="--ngf 16 --max-channels 128 --ndf 32 --batch-size 4 --threads 1",
                   help="flags shared by every run")
    return p.parse_args(argv)


def run_variant(args, name, options):
    folder = os.path.join(args.out, name.split(" (")[0].replace(" + ", "-").replace(" ", "-"))
    flags = ["--data", *args.data, "--out", folder, "--max-steps", str(args.steps), "--val-regions",
             *args.val_regions, "--val-every", str(args.steps), "--checkpoint-every", str(args.steps),
             *args.train_flags.split(), "--no-dropout"]
    for key, value in options.items():
        flags += [f"--{key}", value]
    checkpoint = os.path.join(folder, "checkpoints", "last.pt")
    if not os.path.isfile(checkpoint):
        train.main(flags)
    model = os.path.join(folder, "generator.onnx")
    export.main(["--checkpoint", checkpoint, "--output", model, "--name", name])
    summary = evaluate.main(["--model", model, "--data", *args.data, "--out", os.path.join(folder, "eval"),
                             "--regions", *args.val_regions, "--max-per-region", str(args.chips), "--threads", "1"])
    chips = summary["by_role"]["validation"]["model"]
    mosaics = summary["mosaics"]

    def mean(key):
        return sum(m[key] for m in mosaics) / len(mosaics) if mosaics else float("nan")

    return {"variant": name, **options, "steps": args.steps, "chip_l1": chips["l1"],
            "chip_colour_distance": chips["colour_distance"], "chip_sharpness": chips["sharpness_ratio"],
            "chip_periodic": chips["periodic_share"], "chip_periodic_real": chips["periodic_share_real"],
            "mosaic_periodic": mean("periodic_share"), "mosaic_periodic_real": mean("periodic_share_real"),
            "mosaic_grid": mean("chip_grid_score"), "mosaic_grid_real": mean("chip_grid_score_real"),
            "mosaic_l1": mean("l1"), "pictures": [os.path.join(folder, "eval", p) for m in mosaics for p in m["pictures"]]}


def table(rows) -> str:
    lines = ["| variant | chip L1 | chip colour | chip periodic (real) | mosaic periodic (real) | mosaic chip grid (real) |",
             "|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['variant']} | {r['chip_l1']:.1f} | {r['chip_colour_distance']:.1f} | "
                     f"{r['chip_periodic']:.1e} ({r['chip_periodic_real']:.1e}) | "
                     f"{r['mosaic_periodic']:.1e} ({r['mosaic_periodic_real']:.1e}) | "
                     f"{r['mosaic_grid']:.2f} ({r['mosaic_grid_real']:.2f}) |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    names = args.variants or list(VARIANTS)
    rows = [run_variant(args, name, VARIANTS[name]) for name in names]
    with open(os.path.join(args.out, "ablation.json"), "w") as f:
        json.dump(rows, f, indent=2)
    text = f"# Ablation: {args.steps} steps each ({args.train_flags})\n\n" + table(rows)
    with open(os.path.join(args.out, "ablation.md"), "w") as f:
        f.write(text)
    print(text)
    return rows


if __name__ == "__main__":
    main()
