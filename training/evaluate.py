"""Score an exported ONNX on paired chips against the elevation-lookup baseline, per region.

    python -m training.evaluate --model models/terraform_generator.onnx --data ../shared/data/seed-pairs \
        --out runs/eval

Runs the model through the plugin's own loader (so what is scored is what the plugin runs). Writes
metrics.json, report.md and grid.png (input | real | model | baseline) into --out. The baseline is fit on
the model's training regions (from its metadata, or --train-regions), found in --baseline-data (default:
--data, else the shared seed pairs); regions the model trained on are marked as such: only held-out regions
say how it generalises. Then every held-out region whose mosaics are in --mosaics (default: the shared
seed mosaics) is run whole through the real engine (``mosaic_eval``), at each of --overlaps.
"""

import argparse
import json
import os
import time

import numpy as np
from tqdm import tqdm

from terraform_plugin.core.chips import DEFAULT_OVERLAP
from terraform_plugin.core.model import TerraformModel

from . import plots
from .baseline import ElevationLookup
from .data import find_pairs, load_rgb
from .metrics import BETTER, RegionScore
from .mosaic_eval import evaluate_mosaic, find_mosaics

METRICS = ["l1", "psnr", "ssim", "sharpness_ratio", "colour_distance", "periodic_share"]
SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..", "shared", "data")
SHARED_PAIRS = os.path.normpath(os.path.join(SHARED, "seed-pairs"))
SHARED_MOSAICS = os.path.normpath(os.path.join(SHARED, "seed-mosaics"))


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="the exported .onnx")
    p.add_argument("--data", nargs="+", required=True, help="dataset folders (region folders, or folders of them)")
    p.add_argument("--out", default=None, help="report folder (default runs/eval-<model name>)")
    p.add_argument("--regions", nargs="*", default=None, help="regions to score (default: all in --data)")
    p.add_argument("--train-regions", nargs="*", default=None,
                   help="regions to fit the baseline on (default: the model's training regions, from its metadata)")
    p.add_argument("--baseline-data", nargs="+", default=None,
                   help="where the baseline's regions are (default: --data when it has them, else the shared "
                        f"seed pairs, {SHARED_PAIRS})")
    p.add_argument("--mosaics", default=SHARED_MOSAICS,
                   help="folder of <N><REGION>c.jpg + <N><REGION>.jpg mosaics run whole through the engine "
                        "(default: the shared seed mosaics; skipped when absent)")
    p.add_argument("--no-mosaics", action="store_true", help="skip the whole-mosaic evaluation")
    p.add_argument("--overlaps", nargs="+", type=int, default=[DEFAULT_OVERLAP],
                   help=f"engine overlaps for the mosaic evaluation (default {DEFAULT_OVERLAP}, the plugin's)")
    p.add_argument("--max-per-region", type=int, default=None, help="score at most N evenly spaced chips per region")
    p.add_argument("--batch-size", type=int, default=8, help="chips per onnxruntime call (default 8)")
    p.add_argument("--grid-chips", type=int, default=4, help="rows in grid.png (default 4)")
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    return p.parse_args(argv)


def _arrays(pair):
    return np.asarray(load_rgb(pair.elevation)), np.asarray(load_rgb(pair.satellite))


def _even(items, n):
    if n is None or len(items) <= n:
        return items
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, n).round().astype(int))]


def baseline_pairs(pairs, train_regions, args, scored):
    """The chips the baseline is fit on, and the regions they come from.

    The model's training regions, from --baseline-data, else --data, else the shared seed pairs. A model
    whose metadata names no training regions: every baseline region that is not being scored.
    """
    sources = [args.baseline_data] if args.baseline_data else [None, [SHARED_PAIRS]]
    for source in sources:
        if source is None:
            candidates = pairs
        elif all(os.path.isdir(d) for d in source):
            candidates = find_pairs(source)
        else:
            continue
        wanted = set(train_regions) if train_regions else {p.region for p in candidates} - set(scored)
        fit = [p for p in candidates if p.region in wanted]
        if fit:
            return fit, sorted({p.region for p in fit})
    where = " ".join(args.baseline_data) if args.baseline_data else f"--data or {SHARED_PAIRS}"
    regions = ", ".join(train_regions) if train_regions else "regions other than the scored ones"
    raise SystemExit(f"cannot fit the baseline: {regions} not found in {where} (pass --baseline-data DIR)")


def evaluate(args):
    model = TerraformModel(args.model, threads=args.threads)
    data_meta = model.metadata.extra.get("data") or {}
    train_regions = args.train_regions or (data_meta.get("train_regions") if isinstance(data_meta, dict) else None)
    val_regions = set(data_meta.get("val_regions") or []) if isinstance(data_meta, dict) else set()
    pairs = find_pairs(args.data)
    regions = sorted({p.region for p in pairs})
    if args.regions:
        wanted = {r.upper() for r in args.regions}
        regions = [r for r in regions if r.upper() in wanted]
        if not regions:
            raise SystemExit(f"--regions {' '.join(args.regions)}: none of them are in the data")

    fit_pairs, fit_regions = baseline_pairs(pairs, train_regions, args, regions)
    train_regions = train_regions or []
    baseline = ElevationLookup(model.ramp).fit(_arrays(p) for p in tqdm(fit_pairs, desc="fit baseline", unit="chip"))

    args.out = args.out or os.path.join("runs", f"eval-{model.name}")
    os.makedirs(args.out, exist_ok=True)
    results, totals, grid_rows = {}, {}, []
    infer_seconds, infer_chips = 0.0, 0
    for region in regions:
        role = "train" if region in train_regions else ("validation" if region in val_regions else "unseen")
        chips = _even([p for p in pairs if p.region == region], args.max_per_region)
        scores = {"model": RegionScore(), "baseline": RegionScore()}
        for i in tqdm(range(0, len(chips), args.batch_size), desc=f"{region} ({role})", unit="batch"):
            batch = [_arrays(p) for p in chips[i : i + args.batch_size]]
            elevation = np.stack([b[0] for b in batch])
            t0 = time.perf_counter()
            generated = np.rint(model.predict(elevation)).astype(np.uint8)
            infer_seconds += time.perf_counter() - t0
            infer_chips += len(batch)
            for (elev, real), gen in zip(batch, generated):
                base = baseline.predict(elev)
                scores["model"].add(gen, real)
                scores["baseline"].add(base, real)
        results[region] = {"role": role, **{k: v.result() for k, v in scores.items()}}
        bucket = totals.setdefault(role, {"model": RegionScore(), "baseline": RegionScore()})
        for k in scores:
            bucket[k].merge(scores[k])

    # The grid: chips spread evenly over the held-out regions (all regions if none was held out).
    shown = [r for r in regions if results[r]["role"] != "train"] or regions
    per_region = -(-args.grid_chips // len(shown))
    for region in shown:
        for p in _even([q for q in pairs if q.region == region], per_region)[: args.grid_chips - len(grid_rows)]:
            elev, real = _arrays(p)
            gen = np.rint(model.predict(elev[None])[0]).astype(np.uint8)
            grid_rows.append([elev, real, gen, baseline.predict(elev)])
    plots.image_grid(grid_rows, os.path.join(args.out, "grid.png"), scale=0.5)

    mosaics = []
    if not args.no_mosaics:
        available = find_mosaics(args.mosaics)
        for region in [r for r in regions if results[r]["role"] != "train" and r in available]:
            for overlap in args.overlaps:
                mosaics.append(evaluate_mosaic(model, region, *available[region], args.out, overlap=overlap,
                                               log=tqdm.write))

    summary = {
        "model": os.path.basename(args.model),
        "model_name": model.name,
        "model_version": str(model.metadata.extra.get("version", "?")),
        "steps": model.metadata.extra.get("steps"),
        "baseline_fit_regions": fit_regions,
        "mosaics": mosaics,
        "regions": results,
        "by_role": {role: {k: v.result() for k, v in b.items()} for role, b in totals.items()},
        "grid_regions": shown,
        "better": BETTER,
        "onnxruntime_ms_per_chip": 1000 * infer_seconds / max(1, infer_chips),
        "onnxruntime_threads": model.threads,
        "provider": model.provider,
    }
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(report_markdown(summary))
    print(report_markdown(summary))
    return summary


def _row(label, m):
    return (f"| {label} | {m['chips']} | {m['l1']:.1f} | {m['psnr']:.2f} | {m['ssim']:.3f} | "
            f"{m['sharpness_ratio']:.2f} | {m['colour_distance']:.1f} | {m['periodic_share']:.1e} "
            f"(real {m['periodic_share_real']:.1e}) |")


def _mosaic_row(m):
    return (f"| {m['region']} | {m['overlap']} | {m['chips']} | {m['l1']:.1f} | {m['colour_distance']:.1f} | "
            f"{m['sharpness_ratio']:.2f} | {m['periodic_share']:.1e} ({m['periodic_share_real']:.1e}) | "
            f"{m['chip_grid_score']:.2f} ({m['chip_grid_score_real']:.2f}) |")


def report_markdown(s) -> str:
    lines = [
        f"# Evaluation: {s['model_name']} v{s['model_version']} ({s['model']}, {s['steps']} steps)",
        "",
        "Model vs the elevation-lookup baseline (mean real colour per ramp colour, fit on "
        f"{', '.join(s['baseline_fit_regions'])}). L1 and colour distance in 0-255 units (lower is better); "
        "PSNR dB and SSIM higher is better; sharpness ratio = mean luminance gradient generated / real "
        "(1 is right, below 1 is blur); periodic share = energy in sharp spectral peaks (lattices), beside the "
        "real chips' own. Only validation regions measure generalisation.",
        "",
        "| region (role) | chips | L1 | PSNR | SSIM | sharpness | colour dist. | periodic share |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for role, r in s["by_role"].items():
        lines.append(_row(f"**all {role}** model", r["model"]))
        lines.append(_row(f"**all {role}** baseline", r["baseline"]))
    for region, r in s["regions"].items():
        lines.append(_row(f"{region} ({r['role']}) model", r["model"]))
        lines.append(_row(f"{region} ({r['role']}) baseline", r["baseline"]))
    if s["mosaics"]:
        lines += [
            "",
            "## Whole mosaics through the engine (core.pipeline.run, the plugin's defaults)",
            "",
            "Chip-grid score: the worst phase of the chip stride over the median phase of the luminance step "
            "between neighbouring rows/columns (1 = no seam); real mosaic's value in brackets, as for the "
            "periodic share.",
            "",
            "| region | overlap | chips | L1 | colour dist. | sharpness | periodic share (real) | chip grid (real) |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
            *[_mosaic_row(m) for m in s["mosaics"]],
            "",
            *[f"![{m['region']} overlap {m['overlap']}: elevation | real | model]({m['pictures'][0]})"
              for m in s["mosaics"]],
        ]
    lines += [
        "",
        f"onnxruntime: {s['onnxruntime_ms_per_chip']:.1f} ms per 256 px chip ({s['provider']}, "
        f"{s['onnxruntime_threads']} threads, batches, shared machine: indicative only).",
        "",
        f"![input | real | model | baseline](grid.png)  \nGrid: input | real | model | baseline, "
        f"{', '.join(s['grid_regions'])}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    return evaluate(parse_args(argv))


if __name__ == "__main__":
    main()
