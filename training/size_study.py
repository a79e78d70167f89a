"""Size and CPU speed of the teacher and compact generator candidates, as the plugin would ship them.

    python -m training.size_study --out docs/size_study.json [--repeats 5] [--data ../shared/data/seed-pairs]

For each candidate: parameters, multiply-accumulates per 256² tile (load-independent), ONNX bytes as
float32 / fp16 weights / int8 weights / static int8 QDQ, onnxruntime CPU ms per tile at batch 1 and 4
(intra-op threads 2, warm-up, then the minimum of repeats, variants interleaved so that a burst of load
hits them all alike), megapixels/second, and the drift of each compressed variant from float32 on real
ramp chips. Weights are the training init (N(0, 0.02)): speed and size do not depend on weights; drift
on trained weights is measured by training.quantize on an exported checkpoint.
"""

import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np
import onnx
import torch

from terraform_plugin.core.ramp import training_ramp
from terraform_plugin.core.schema import build_metadata, stamp

from .export import to_onnx, weights_to_fp16
from .nets import REFERENCE, build_generator, count_params
from .quantize import copy_metadata, quantize_static_qdq, quantize_weights_int8, ramp_chips

SHARED_PAIRS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "seed-pairs")
TILE = 256
BUDGET_BYTES = 23_000_000  # bundled ONNX, so that the plugin zip stays under plugins.qgis.org's 25 MB
TARGET_MS = 16.0  # 4 megapixels/second of raw inference on the 2-core CPU

# name, ngf, max_channels, timing repeats factor (the teacher is ~16x the work of ngf 16: fewer repeats)
CANDIDATES = [
    ("teacher ngf64", 64, None, 0.5),
    ("ngf32", 32, None, 1.0),
    ("ngf32 cap128", 32, 128, 1.0),
    ("ngf16", 16, None, 1.0),
]
VARIANTS = ("fp32", "fp16w", "int8w", "int8qdq")


def macs_per_tile(net) -> int:
    """Multiply-accumulates of one 256² tile through the convolutions (everything else is noise)."""
    total = 0

    def hook(m, inp, out):
        nonlocal total
        k = m.kernel_size[0] * m.kernel_size[1]
        if isinstance(m, torch.nn.ConvTranspose2d):  # every input pixel scatters into out_ch x k
            total += inp[0].numel() * m.out_channels * k // m.groups
        else:
            total += out.numel() * m.in_channels * k // m.groups

    handles = [m.register_forward_hook(hook) for m in net.modules()
               if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    with torch.no_grad():
        net(torch.zeros(1, 3, TILE, TILE))
    for h in handles:
        h.remove()
    return total


def contract_model(model: onnx.ModelProto, name, ngf, max_channels, weights) -> onnx.ModelProto:
    """Stamp the contract metadata on an exported graph (what training.export does for a checkpoint)."""
    return stamp(model, build_metadata(training_ramp(), name=name, version="0.0.0-study", ngf=ngf,
                                       max_channels=max_channels, weights=weights, note="random init, for size/speed only"))


def export_variants(net, folder, tag, ngf, max_channels, chips) -> dict:
    """fp32, fp16-weight, int8-weight and static-QDQ ONNX of ``net``: {variant: path}."""
    paths = {v: os.path.join(folder, f"{tag}_{v}.onnx") for v in VARIANTS}
    model = contract_model(to_onnx(net.eval(), paths["fp32"]), tag, ngf, max_channels, "float32")
    onnx.save(model, paths["fp32"])
    onnx.save(weights_to_fp16(onnx.load(paths["fp32"])), paths["fp16w"])
    w8 = quantize_weights_int8(onnx.load(paths["fp32"]))
    copy_metadata(model, w8, "weights")
    onnx.save(w8, paths["int8w"])
    quantize_static_qdq(paths["fp32"], paths["int8qdq"], chips)
    qdq = onnx.load(paths["int8qdq"])
    copy_metadata(model, qdq, "static")
    onnx.save(qdq, paths["int8qdq"])
    return paths


def session(path, threads):
    import onnxruntime as ort

    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    o.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL  # as the plugin's loader
    return ort.InferenceSession(path, o, providers=["CPUExecutionProvider"])


def time_variants(paths, chips, repeats, threads, batches=(1, 4)) -> dict:
    """Min ms per tile for every (variant, batch); variants interleaved within each repeat.

    Wall-clock at ``threads`` is what a user sees, but on a loaded machine it measures the other jobs
    too. So each variant is also run single-threaded and timed in process CPU time (no thread pool, no
    spin-waiting): the work itself, which load changes far less. On an idle 2-core machine the 2-thread
    wall time lies between that CPU time / 2 (perfect scaling) and the CPU time itself.
    """
    sessions = {v: session(p, threads) for v, p in paths.items()}
    single = {v: session(p, 1) for v, p in paths.items()}
    name = {v: s.get_inputs()[0].name for v, s in sessions.items()}
    best = {(v, b): float("inf") for v in sessions for b in batches}
    cpu = {v: float("inf") for v in single}
    loads = []
    for b in batches:
        x = np.ascontiguousarray(chips[:b])
        for v, s in sessions.items():  # warm-up: allocation, kernel selection
            s.run(None, {name[v]: x})
        for _ in range(repeats):
            for v, s in sessions.items():
                t = time.perf_counter()
                s.run(None, {name[v]: x})
                best[v, b] = min(best[v, b], (time.perf_counter() - t) * 1000.0 / b)
            loads.append(os.getloadavg()[0])
    x = np.ascontiguousarray(chips[:1])
    for v, s in single.items():
        s.run(None, {name[v]: x})
    for _ in range(repeats):
        for v, s in single.items():
            t = time.process_time()
            s.run(None, {name[v]: x})
            cpu[v] = min(cpu[v], (time.process_time() - t) * 1000.0)
    return {"ms_per_tile": {f"{v}_b{b}": round(ms, 2) for (v, b), ms in best.items()},
            "cpu_ms_per_tile_1thread": {v: round(ms, 2) for v, ms in cpu.items()},
            "loadavg_1min_during": [round(min(loads), 2), round(max(loads), 2)]}


def drift(paths, chips, threads) -> dict:
    ref_s = session(paths["fp32"], threads)
    name = ref_s.get_inputs()[0].name
    ref = ref_s.run(None, {name: chips})[0]
    out = {}
    for v in VARIANTS[1:]:
        d = np.abs(session(paths[v], threads).run(None, {name: chips})[0] - ref)
        out[v] = {"max_abs": round(float(d.max()), 5), "mean_abs": round(float(d.mean()), 6)}
    return out


def study(candidates, repeats, threads, data_dirs, folder):
    chips_src = data_dirs if data_dirs else None
    chips = ramp_chips(chips_src, n=12, seed=1)
    calib, test = chips[:8], chips[8:]
    rows = []
    for name, ngf, cap, factor in candidates:
        t0 = time.perf_counter()
        torch.manual_seed(0)
        net = build_generator(ngf, cap, **REFERENCE).eval()  # the contract-1 sizes studied
        tag = name.replace(" ", "_")
        paths = export_variants(net, folder, tag, ngf, cap, calib)
        sizes = {v: os.path.getsize(p) for v, p in paths.items()}
        timing = time_variants(paths, test, max(2, round(repeats * factor)), threads)
        row = {"name": name, "ngf": ngf, "max_channels": cap, "params": count_params(net),
               "gmacs_per_tile": round(macs_per_tile(net) / 1e9, 2), "bytes": sizes, **timing,
               "drift_vs_fp32": drift(paths, test, threads)}
        row["megapixels_per_second"] = {k: round(TILE * TILE / 1e6 / (ms / 1000.0), 2)
                                        for k, ms in row["ms_per_tile"].items()}
        row["fits_23MB"] = {v: b <= BUDGET_BYTES for v, b in sizes.items()}
        row["seconds_to_study"] = round(time.perf_counter() - t0, 1)
        rows.append(row)
        print(f"{name}: {row['seconds_to_study']} s, ms/tile {row['ms_per_tile']}, load {timing['loadavg_1min_during']}",
              file=sys.stderr, flush=True)
        for p in paths.values():
            os.remove(p)  # the teacher's variants are ~400 MB together
    return rows


def markdown(rows) -> str:
    head = ("| candidate | params | GMAC/tile | fp32 MB | fp16w MB | int8 MB | fp32 ms/tile b1 / b4 | int8w ms b1 / b4 "
            "| int8 QDQ ms b1 / b4 | 1-thread CPU ms fp32 / int8w / QDQ | best MP/s | int8w drift max / mean | QDQ drift max / mean | load (1 min) |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for r in rows:
        ms, b, d, c = r["ms_per_tile"], r["bytes"], r["drift_vs_fp32"], r["cpu_ms_per_tile_1thread"]
        lines.append(
            f"| {r['name']} | {r['params'] / 1e6:.2f} M | {r['gmacs_per_tile']} | {b['fp32'] / 1e6:.1f} | "
            f"{b['fp16w'] / 1e6:.1f} | {b['int8w'] / 1e6:.1f} | {ms['fp32_b1']:.1f} / {ms['fp32_b4']:.1f} | "
            f"{ms['int8w_b1']:.1f} / {ms['int8w_b4']:.1f} | {ms['int8qdq_b1']:.1f} / {ms['int8qdq_b4']:.1f} | "
            f"{c['fp32']:.1f} / {c['int8w']:.1f} / {c['int8qdq']:.1f} | "
            f"{max(r['megapixels_per_second'].values()):.2f} | {d['int8w']['max_abs']:.3f} / {d['int8w']['mean_abs']:.4f} | "
            f"{d['int8qdq']['max_abs']:.3f} / {d['int8qdq']['mean_abs']:.4f} | "
            f"{r['loadavg_1min_during'][0]}–{r['loadavg_1min_during'][1]} |")
    return head + "\n".join(lines) + "\n"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.size_study", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="JSON to write (e.g. docs/size_study.json)")
    p.add_argument("--repeats", type=int, default=5, help="timed runs per variant and batch (teacher: half)")
    p.add_argument("--threads", type=int, default=2, help="onnxruntime intra-op threads (default 2: this CPU)")
    p.add_argument("--data", nargs="*", default=None,
                   help="seed-layout folders for real ramp chips (default ../shared/data/seed-pairs if present)")
    p.add_argument("--only", nargs="*", default=None, help="candidate names to run (default all)")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    data = a.data if a.data is not None else ([os.path.abspath(SHARED_PAIRS)] if os.path.isdir(SHARED_PAIRS) else [])
    cands = [c for c in CANDIDATES if not a.only or c[0] in a.only]
    t0 = time.perf_counter()
    os.makedirs(os.path.dirname(os.path.abspath(a.out)), exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="size_study_") as folder:
        rows = study(cands, a.repeats, a.threads, data, folder)
    import onnxruntime

    result = {
        "about": "onnxruntime CPU ms per 256x256 tile (min of repeats after warm-up); sizes in bytes; drift on "
                 "[-1, 1] vs the float32 model on real ramp chips, random-init weights",
        "machine": {"cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "threads": a.threads, "onnxruntime": onnxruntime.__version__, "torch": torch.__version__,
                    "loadavg_at_end": [round(x, 2) for x in os.getloadavg()],
                    "note": "shared 2-core machine; other jobs ran beside the study, so ms are upper bounds"},
        "chips": "seed-pairs ramp chips" if data else "synthetic ramp chips",
        "repeats": a.repeats, "budget_bytes": BUDGET_BYTES, "target_ms_per_tile": TARGET_MS,
        "wall_seconds": round(time.perf_counter() - t0, 1),
        "candidates": rows,
    }
    with open(a.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(markdown(rows))
    print(f"wrote {a.out} ({result['wall_seconds']} s)")
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
