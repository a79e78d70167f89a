"""Score an exported ONNX on paired chips against the elevation-lookup baseline, per region.

    python -m training.evaluate --model models/terraform_generator.onnx --data ../shared/data/seed-pairs \
        --out runs/eval

Runs the model through the plugin's own loader (so what is scored is what the plugin runs). Writes
metrics.json, report.md and grid.png into --out. The baseline is fit on the model's training regions (from its
metadata, or --train-regions), found in --baseline-data (default: --data, else the shared seed pairs); regions
the model trained on are marked as such: only held-out regions say how it generalises.

A contract-2 model is run as a user runs a place (``chip_eval``): each chip at its own latitude (its region's
place, from the dataset's manifest or the seed regions' fitted bounds), look "auto", without a guide (the
headline), with a guide made from the real image as training makes it and with one made differently (coarser,
--guide-cell, and colour-shifted); the guides are scored as pictures too. grid.png: input | real | model |
model + guide | guide | baseline (a contract-1 model: input | real | model | baseline).

Then every held-out region whose mosaics are in --mosaics (default: the shared seed mosaics) is run whole
through the real engine (``mosaic_eval``): a contract-1 model at each of --overlaps; a contract-2 model placed
on Earth at its region's bounds, without and with each guide.
"""

import argparse
import json
import os

import numpy as np
from tqdm import tqdm

from terraform_plugin.core.chips import DEFAULT_OVERLAP
from terraform_plugin.core.model import TerraformModel

from . import plots
from .baseline import ElevationLookup
from .chip_eval import ChipRunner, guide_recipes
from .data import find_pairs, load_rgb
from .metrics import BETTER, RegionScore, reference_stats
from .mosaic_eval import evaluate_mosaic, evaluate_placed_mosaic, find_mosaics

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
    p.add_argument("--guide-cell", type=int, default=None, metavar="PX",
                   help="contract-2 models with a guide input: the cell of the differently made guide (default twice "
                        "the model's coarse_px), beside the guide made as training makes it")
    p.add_argument("--no-guides", action="store_true",
                   help="contract-2 models: score without a guide only (a third of the model runs)")
    args = p.parse_args(argv)
    if args.guide_cell is not None and args.guide_cell < 1:
        p.error(f"--guide-cell must be a whole number of pixels >= 1, got {args.guide_cell}")
    return args


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


def region_places(model, args, regions) -> dict:
    """{region: regions.RegionGeo} of the scored regions (a contract-2 model needs each chip's latitude): from
    the manifests of --data, else the seed regions' fitted bounds; SystemExit naming a region with no place."""
    if not model.metadata.tiling_independent:
        return {}
    from .regions import dataset_regions, region_geo

    known = dataset_regions(args.data)
    return {r: known.get(r) or region_geo(r) for r in regions}


def score_region(runner, baseline, chips, batch_size, desc):
    """{source: RegionScore} over one region's chips: each of the runner's sources and the baseline."""
    scores = {s: RegionScore() for s in runner.sources + ["baseline"]}
    for i in tqdm(range(0, len(chips), batch_size), desc=desc, unit="batch"):
        pairs = chips[i : i + batch_size]
        batch = [_arrays(p) for p in pairs]
        elevation, real = np.stack([b[0] for b in batch]), np.stack([b[1] for b in batch])
        predicted = runner.predict(pairs, elevation, real)
        for k, (elev, truth) in enumerate(batch):
            reference = reference_stats(truth)
            for source, images in predicted.items():
                scores[source].add(images[k], truth, reference)
            scores["baseline"].add(baseline.predict(elev), truth, reference)
    return scores


def grid_rows(runner, baseline, pairs):
    """grid.png rows: input | real | model (auto) | model with the training-made guide | that guide | baseline
    (the guide columns only for a model that takes one)."""
    shown = ["model", "model_guide", "guide"]
    rows = []
    for p in pairs:
        elev, real = _arrays(p)
        predicted = runner.predict([p], elev[None], real[None])
        rows.append([elev, real, *[predicted[s][0] for s in shown if s in predicted], baseline.predict(elev)])
    return rows


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
    places = region_places(model, args, regions)
    guide_plane = model.metadata.plane("guide_rgb")
    recipes = ([] if args.no_guides or guide_plane is None else
               guide_recipes(guide_plane.options["coarse_px"], args.guide_cell))
    runner = ChipRunner(model, places, recipes)

    args.out = args.out or os.path.join("runs", f"eval-{model.name}")
    os.makedirs(args.out, exist_ok=True)
    results, totals = {}, {}
    infer_chips = 0
    for region in regions:
        role = "train" if region in train_regions else ("validation" if region in val_regions else "unseen")
        chips = _even([p for p in pairs if p.region == region], args.max_per_region)
        scores = score_region(runner, baseline, chips, args.batch_size, f"{region} ({role})")
        infer_chips += len(chips)
        results[region] = {"role": role, **{k: v.result() for k, v in scores.items()}}
        bucket = totals.setdefault(role, {k: RegionScore() for k in scores})
        for k in scores:
            bucket[k].merge(scores[k])

    # The grid: chips spread evenly over the held-out regions (all regions if none was held out).
    shown = [r for r in regions if results[r]["role"] != "train"] or regions
    per_region = -(-args.grid_chips // len(shown))
    picked = []
    for region in shown:
        picked += _even([q for q in pairs if q.region == region], per_region)[: args.grid_chips - len(picked)]
    rows = grid_rows(runner, baseline, picked)
    plots.image_grid(rows, os.path.join(args.out, "grid.png"), scale=0.5)

    mosaics, guided = [], []
    if not args.no_mosaics:
        available = find_mosaics(args.mosaics)
        for region in [r for r in regions if results[r]["role"] != "train" and r in available]:
            if model.metadata.tiling_independent:
                runs = evaluate_placed_mosaic(model, region, *available[region], args.out, args.data, recipes,
                                              log=tqdm.write)
                for m in runs:
                    m["role"] = results[region]["role"]
                # The headline runs where consumers of "mosaics" expect them; guided runs, the guides' own
                # scores and runs that could not be made (with "skipped") beside them.
                mosaics += [m for m in runs if m["source"] == "model" and "skipped" not in m]
                guided += [m for m in runs if m["source"] != "model" or "skipped" in m]
                continue
            for overlap in args.overlaps:
                mosaics.append({"role": results[region]["role"], **evaluate_mosaic(
                    model, region, *available[region], args.out, overlap=overlap, log=tqdm.write)})

    summary = {
        "model": os.path.basename(args.model),
        "model_name": model.name,
        "model_version": str(model.metadata.extra.get("version", "?")),
        "steps": model.metadata.extra.get("steps"),
        "contract": model.metadata.schema,
        "baseline_fit_regions": fit_regions,
        "mosaics": mosaics,
        "regions": results,
        "by_role": {role: {k: v.result() for k, v in b.items()} for role, b in totals.items()},
        "grid_regions": shown,
        "grid_columns": ["input", "real", *[SOURCE_LABELS[s] for s in ("model", "model_guide", "guide")
                                            if s in runner.sources], "baseline"],
        "better": BETTER,
        "onnxruntime_ms_per_chip": 1000 * runner.model_seconds / max(1, infer_chips),
        "onnxruntime_threads": model.threads,
        "provider": model.provider,
    }
    if model.metadata.tiling_independent:
        summary["conditioning"] = {
            "latitude": "each chip's own, from its region's place", "look": "auto",
            "guides": {r.name: r.describe() for r in recipes},
            "places": {r: g.describe() for r, g in places.items()},
        }
        summary["mosaic_guides"] = guided
    with open(os.path.join(args.out, "metrics.json"), "w") as f:
        json.dump(summary, f, indent=2)
    with open(os.path.join(args.out, "report.md"), "w") as f:
        f.write(report_markdown(summary))
    print(report_markdown(summary))
    return summary


SOURCE_LABELS = {
    "model": "model", "model_guide": "model + guide", "model_guide_own": "model + guide, not held (strength 0)",
    "model_guide_other": "model + other guide",
    "guide": "guide alone", "guide_other": "other guide alone", "baseline": "baseline",
}


def _sources(r) -> list:
    """The prediction sources of one result, in report order."""
    return [k for k in SOURCE_LABELS if k in r]


def _row(label, m):
    return (f"| {label} | {m['chips']} | {m['l1']:.1f} | {m['psnr']:.2f} | {m['ssim']:.3f} | "
            f"{m['sharpness_ratio']:.2f} | {m['colour_distance']:.1f} | {m['periodic_share']:.1e} "
            f"(real {m['periodic_share_real']:.1e}) | {m.get('spectrum_worst_factor', float('nan')):.3g} |")


def _octaves(m) -> str:
    return " ".join(f"{r:.2g}" for r in m.get("spectrum_ratio", []))


def _octave_header(s) -> str:
    for r in s["by_role"].values():
        bands = r["model"].get("spectrum_octaves_px")
        if bands:
            return ", ".join(f"{lo}-{hi}" for lo, hi in bands) + " px"
    return ""


def _periodic(m) -> str:
    """Share (real's), then the pattern's size in grey levels (real's) and the strongest peak's wavelength."""
    if "periodic_share" not in m:
        return "-"
    text = f"{m['periodic_share']:.1e} ({m['periodic_share_real']:.1e})"
    if "periodic_amplitude" in m:  # summaries written before the amplitude was measured lack it
        period = m.get("periodic_period_px")
        text += (f"; {m['periodic_amplitude']:.2f} DN ({m['periodic_amplitude_real']:.2f})"
                 + (f" at {period:.3g} px" if period else ""))
    return text


def _mosaic_row(m):
    return (f"| {m['region']} | {m['overlap']} | {m['chips']} | {m['l1']:.1f} | {m['colour_distance']:.1f} | "
            f"{m['sharpness_ratio']:.2f} | {_periodic(m)} | "
            f"{m['chip_grid_score']:.2f} ({m['chip_grid_score_real']:.2f}) | {_octaves(m)} |")


def _placed_row(m):
    seams = (f"{m['chip_grid_score']:.2f} ({m['chip_grid_score_real']:.2f})" if "chip_grid_score" in m else "-")
    return (f"| {m['region']} | {SOURCE_LABELS.get(m['source'], m['source'])} | {m['l1']:.1f} | "
            f"{m['colour_distance']:.1f} | {m['sharpness_ratio']:.2f} | {_periodic(m)} | {seams} | "
            f"{m['spectrum_worst_factor']:.3g} | {_octaves(m)} |")


def _conditioning_lines(s) -> list:
    c = s.get("conditioning")
    if not c:
        return []
    guides = "; ".join(f"{k}: {v}" for k, v in c["guides"].items()) or "none (the model takes no guide, or --no-guides)"
    return [
        "",
        f"Contract 2: each chip at its own latitude (its region's place), look {c['look']}; \"model\" has no guide "
        f"(what a user gets with the DEM alone), \"model + guide\" a guide made from the real image as training "
        f"makes it, \"model + other guide\" one made differently (as another basemap would be); \"guide alone\" "
        f"scores the guide itself as the picture. Guides: {guides}.",
    ]


def report_markdown(s) -> str:
    lines = [
        f"# Evaluation: {s['model_name']} v{s['model_version']} ({s['model']}, {s['steps']} steps)",
        "",
        "Model vs the elevation-lookup baseline (mean real colour per ramp colour, fit on "
        f"{', '.join(s['baseline_fit_regions'])}). L1 and colour distance in 0-255 units (lower is better); "
        "PSNR dB and SSIM higher is better; sharpness ratio = mean luminance gradient generated / real "
        "(1 is right, below 1 is blur); periodic share = energy in sharp spectral peaks (lattices), beside the "
        "real chips' own; spectrum = the radially averaged power spectrum per octave of wavelength over real's, "
        "its worst factor either way (1 is real's texture at every scale). Only held-out (validation, unseen) "
        "regions measure generalisation.",
        *_conditioning_lines(s),
        "",
        "| region (role) | chips | L1 | PSNR | SSIM | sharpness | colour dist. | periodic share | spectrum worst |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for role, r in s["by_role"].items():
        lines += [_row(f"**all {role}** {SOURCE_LABELS[k]}", r[k]) for k in _sources(r)]
    for region, r in s["regions"].items():
        lines += [_row(f"{region} ({r['role']}) {SOURCE_LABELS[k]}", r[k]) for k in _sources(r)]
    lines += [
        "",
        f"Spectrum per octave ({_octave_header(s)}), power over real's:",
        "",
        "| role | source | power ratio per octave |",
        "|---|---|---|",
    ]
    for role, r in s["by_role"].items():
        lines += [f"| {role} | {SOURCE_LABELS[k]} | {_octaves(r[k])} |" for k in _sources(r)]
    placed = s.get("conditioning") is not None
    if s["mosaics"] and not placed:
        lines += [
            "",
            "## Whole mosaics through the engine (core.pipeline.run, the plugin's defaults)",
            "",
            "Chip-grid score: the worst phase of the chip stride over the median phase of the luminance step "
            "between neighbouring rows/columns (1 = no seam); real mosaic's value in brackets, as for the "
            "periodic share. Periodic: the share of the spectrum's energy in sharp peaks (real's), then the "
            "pattern's size in grey levels, rms (real's chance peaks), at the strongest peak's wavelength. "
            "Spectrum: power over real's per octave, 2 px up.",
            "",
            "| region | overlap | chips | L1 | colour dist. | sharpness | periodic (real) | chip grid (real) "
            "| spectrum per octave |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---|",
            *[_mosaic_row(m) for m in s["mosaics"]],
            "",
            *[f"![{m['region']} overlap {m['overlap']}: elevation | real | model]({m['pictures'][0]})"
              for m in s["mosaics"]],
        ]
    if placed and (s["mosaics"] or s.get("mosaic_guides")):
        runs = sorted([m for m in s["mosaics"] + s.get("mosaic_guides", []) if not m.get("skipped")],
                      key=lambda m: (m["region"], list(SOURCE_LABELS).index(m["source"])))
        lines += [
            "",
            "## Whole mosaics on their place on Earth, through the engine (core.pipeline.run, LOOK auto)",
            "",
            "Each elevation mosaic as a GeoTIFF in EPSG:4326 at its region's fitted bounds, run by the engine (which "
            "resamples it to the model's ground pixels), the latitude from the georeference; the real mosaic is "
            "warped onto the output's grid the same way and compared there. Guides: GeoTIFFs of the real mosaic's "
            "cell means, given as the run's guide. Tile seams: the worst phase of the kept tiles' stride over the "
            "median (1 = no seam; real's in brackets). Periodic: the share of the spectrum's energy in sharp peaks "
            "(real's), then the pattern's size in grey levels, rms (real's chance peaks), at the strongest "
            "peak's wavelength. Spectrum: power over real's per octave, 2 px up.",
            "",
            "| region | run | L1 | colour dist. | sharpness | periodic (real) | tile seams (real) "
            "| spectrum worst | spectrum per octave |",
            "|---|---|---:|---:|---:|---:|---:|---:|---|",
            *[_placed_row(m) for m in runs],
            "",
            *[f"![{m['region']}: elevation | real | model | model + guide | guide]({m['pictures'][0]})  \n"
              f"![{m['region']}, 1:1 where tiles meet]({m['pictures'][1]})" for m in s["mosaics"] if m.get("pictures")],
        ]
        skipped = [m for m in s.get("mosaic_guides", []) if m.get("skipped")]
        lines += [f"\n{m['region']} {SOURCE_LABELS.get(m['source'], m['source'])}: {m['skipped']}" for m in skipped]
    lines += [
        "",
        f"onnxruntime: {s['onnxruntime_ms_per_chip']:.1f} ms per 256 px chip ({s['provider']}, "
        f"{s['onnxruntime_threads']} threads, batches, shared machine: indicative only).",
        "",
        f"![{' | '.join(s['grid_columns'])}](grid.png)  \nGrid: {' | '.join(s['grid_columns'])}, "
        f"{', '.join(s['grid_regions'])}.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    return evaluate(parse_args(argv))


if __name__ == "__main__":
    main()
