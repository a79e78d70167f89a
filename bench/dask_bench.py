"""Benchmarks of the Dask runs (terraform_plugin.cluster) -> bench/dask_results.json and the "Dask" section of
bench/README.md (appended after bench/run.py's tables; `make bench` runs both, in that order).

1. Scheduler overhead per task: 1000 empty tasks on a LocalCluster of 2 worker processes (throughput), 50
   submit -> result round trips (latency), and on the real run below: the time the parts did not spend in
   their own task, per part ((compute wall x workers - summed task seconds) / parts).
2. chips/s on the same 8192² DEM and bundled model: single process (stripes of 8192, and of the part width),
   then the Dask run with 1 and 2 worker processes (LocalCluster started before the clock; its start-up, the
   compute phase and the assembly reported apart). Peak RSS of each worker process (its ru_maxrss).
3. The on-paper scaling table (global Mars at 200 m, a 30 m continent; 1, 8, 64 and 512 workers) computed from
   those figures.

    python bench/dask_bench.py [--size 8192] [--part-width 2048] [--keep DIR]
"""

import argparse
import json
import math
import os
import pickle
import platform
import shutil
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from run import ROOT, dem_of_size, throughput_model  # noqa: E402 (bench/run.py: one DEM and model recipe)

sys.path.insert(0, ROOT)
from terraform_plugin.cluster import runner  # noqa: E402
from terraform_plugin.core import chips as chip_math  # noqa: E402
from terraform_plugin.core import pipeline  # noqa: E402
from terraform_plugin.core.model import default_threads  # noqa: E402

RESULTS = os.path.join(HERE, "dask_results.json")
README = os.path.join(HERE, "README.md")
BEGIN, END = "<!-- dask_bench.py: begin -->", "<!-- dask_bench.py: end -->"


def _noop(x):
    return x


def _maxrss_mb():
    """This process's peak RSS: VmHWM, not ru_maxrss, which a spawned worker inherits from the process that
    forked it (Linux keeps the pre-exec maximum)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def scheduler_overhead():
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.submit(_noop, -1).result()  # warm
        n = 1000
        t = time.perf_counter()
        client.gather(client.map(_noop, range(n), pure=False))
        throughput = (time.perf_counter() - t) / n
        latencies = []
        for i in range(50):
            t = time.perf_counter()
            client.submit(_noop, i, pure=False).result()
            latencies.append(time.perf_counter() - t)
    return {"empty_tasks": n, "per_task_ms": round(throughput * 1e3, 3),
            "round_trip_ms_median": round(sorted(latencies)[len(latencies) // 2] * 1e3, 2)}


def local_run(dem, model, folder, stripe_width):
    out = os.path.join(folder, f"local_{stripe_width}.tif")
    t = time.perf_counter()
    result = pipeline.run(pipeline.TerraformRequest(dem, out, model, stripe_width=stripe_width))
    wall = time.perf_counter() - t
    os.remove(out)
    return {"stripe_width": stripe_width, "seconds": round(wall, 2), "chips": result.chips,
            "peak_rss_mb": round(_maxrss_mb(), 1),  # this process's high-water mark (the DEM is written in strips)
            "chip_runs": result.chip_runs, "chips_per_s": round(result.chips / wall, 2),
            "chip_runs_per_s": round(result.chip_runs / wall, 2),
            "overviews_s": result.profile.get("overviews", {}).get("wall_s")}


def dask_run(dem, model, folder, workers, part_width):
    from distributed import Client, LocalCluster

    out = os.path.join(folder, f"dask_{workers}.tif")
    t = time.perf_counter()
    cores = default_threads()
    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        start_s = time.perf_counter() - t
        t = time.perf_counter()
        result = runner.run_on_dask(pipeline.TerraformRequest(dem, out, model), scheduler=cluster.scheduler_address,
                                    part_width=part_width)
        wall = time.perf_counter() - t
        with Client(cluster) as client:
            rss = sorted(client.run(_maxrss_mb).values())
    size = os.path.getsize(out)
    os.remove(out)
    overhead = (result.compute_s * workers - result.task_s) / max(1, result.parts)
    return {
        "workers": workers, "onnxruntime_threads_each": max(1, cores // workers), "part_width": part_width,
        "parts": result.parts, "cluster_start_s": round(start_s, 2), "seconds": round(wall, 2),
        "compute_s": round(result.compute_s, 2), "assembly_s": round(result.assembly_s, 2),
        "chips": result.chips, "chip_runs": result.chip_runs,
        "chips_per_s": round(result.chips / wall, 2), "compute_chips_per_s": round(result.chips / result.compute_s, 2),
        "overhead_per_part_s": round(overhead, 3), "peak_rss_mb_per_worker": [round(r, 1) for r in rss],
        "output_bytes": size,
        "assembly_mpx_per_s": round(result.width * result.height / 1e6 / result.assembly_s, 2),
    }


def task_bytes(dem, model, part_width):
    """Pickled task (plan and arguments) and pickled result (record) of one part: what the scheduler moves."""
    from terraform_plugin.core import parts
    from terraform_plugin.core.plan import make_plan

    request = pipeline.TerraformRequest(dem, os.path.join(os.path.dirname(dem), "x.tif"), model,
                                        stripe_width=part_width)
    dataset, band = pipeline.open_input(request)
    m = pipeline.load_model(request)
    plan = make_plan(request, request.output_path, dataset, band, m, lambda _: None)
    args = pickle.dumps((plan, 0, "/some/folder/.out.tif.parts", {"127.0.0.1": 2}, "terraform-part-x-cancel"))
    record = {"index": 0, "file": parts.part_name(0), "x0": 0, "x1": part_width, "size": 1, "sha256": "0" * 64,
              "chips": 1, "seconds": 1.0, "profile": {s: {"cpu_s": 1.0, "wall_s": 1.0, "visits": 1} for s in
                                                        ("read", "fill", "colourise", "scale", "batch", "infer",
                                                         "blend", "rows", "write", "wait_reader", "wait_writer")}}
    return len(args), len(pickle.dumps(record))


# -- on paper -----------------------------------------------------------------------------------------------

JOBS = (
    ("global Mars at 200 m (MOLA)", 106_700, 53_400),
    ("a 6,000 x 4,000 km continent at 30 m", 200_000, 133_334),
)


def paper(figures, part_widths=(2048, 512), workers=(1, 8, 64, 512), overlap=64, tile=256):
    """Rows of the scaling table: per job, part width and worker count. A worker is taken to be what was
    measured here: one 2-core worker process running at the 1-worker Dask run's compute rate."""
    rate = figures["dask"][0]["compute_chips_per_s"] * figures["dask"][0]["chip_runs"] / figures["dask"][0]["chips"]
    # Per part: the larger of the empty-task overhead and what the real parts showed beyond their own work.
    overhead = max(figures["overhead"]["per_task_ms"] / 1e3, figures["dask"][0]["overhead_per_part_s"])
    assembly_rate = figures["dask"][0]["assembly_mpx_per_s"] * 1e6
    out_bytes_per_px = figures["dask"][0]["output_bytes"] / (figures["size"] ** 2)
    rows = []
    for name, width, height in JOBS:
        layout = chip_math.ChipLayout.build(width, height, tile, overlap)
        for pw in part_widths:
            parts = math.ceil(width / pw)
            columns = sum(len(layout.columns_touching(x0, min(width, x0 + pw))) for x0 in range(0, width, pw))
            runs = len(layout.ys) * columns
            per_part_s = runs / parts / rate + overhead
            read_bytes = (pw + 2 * 64 + tile) * height * 2  # int16 DEM window at the output grid, fill margin
            written = pw * height * out_bytes_per_px
            assembly_s = width * height / assembly_rate
            for w in workers:
                waves = math.ceil(parts / w)
                compute_s = waves * per_part_s
                rows.append({
                    "job": name, "px": f"{width:,} x {height:,}", "chips": layout.count, "part_width": pw,
                    "parts": parts, "extra_chip_runs_pct": round(100 * (runs / layout.count - 1), 1),
                    "workers": w, "busy_workers": min(w, parts), "compute_h": round(compute_s / 3600, 2),
                    "assembly_h": round(assembly_s / 3600, 2), "wall_h": round((compute_s + assembly_s) / 3600, 2),
                    "read_mb_per_task": round(read_bytes / 1e6), "written_mb_per_task": round(written / 1e6),
                })
    return rows


def readme_section(results) -> str:
    o, loc, dk = results["overhead"], results["local"], results["dask"]
    base = loc[0]
    lines = [
        BEGIN,
        "## Dask runs (`bench/dask_bench.py`)",
        "",
        f"Measured {results['date']} on this machine ({results['machine']}); model: {results['model']}. "
        f"{results['size']}² DEM, {base['chips']} chips at overlap 64. A LocalCluster of worker processes, "
        "one onnxruntime session per process, the two cores shared out between them. One run each (no repeats: "
        "the training job on the other core makes every figure here ±15 %).",
        *([results["note"], ""] if results.get("note") else [""]),
        f"Scheduler overhead: {o['per_task_ms']} ms per empty task ({o['empty_tasks']} tasks, 2 workers), "
        f"{o['round_trip_ms_median']} ms for one submit -> result round trip. Task messages: "
        f"{results['task_bytes'][0]:,} bytes pickled per part task (the plan), {results['task_bytes'][1]:,} "
        "bytes per result (the part's record); the pixels go through the shared filesystem, not the scheduler.",
        "",
        "| run | parts | s | compute s | assembly s | chips/s (end to end) | chips/s (compute) | vs single process | "
        "overhead per part (s) | peak RSS per worker (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in loc:
        lines.append(f"| single process, stripes of {r['stripe_width']} | | {r['seconds']} | | "
                     f"{round(r['overviews_s'] or 0, 1)} (overviews) | {r['chips_per_s']} | | "
                     f"{r['chips_per_s'] / base['chips_per_s']:.2f} | | {r.get('peak_rss_mb', '—')} (process) |")
    for r in dk:
        lines.append(
            f"| Dask, {r['workers']} worker{'s' if r['workers'] > 1 else ''} x {r['onnxruntime_threads_each']} "
            f"thread(s), parts of {r['part_width']} (+{r['cluster_start_s']} s cluster start) | {r['parts']} | "
            f"{r['seconds']} | {r['compute_s']} | {r['assembly_s']} | {r['chips_per_s']} | "
            f"{r['compute_chips_per_s']} | {r['chips_per_s'] / base['chips_per_s']:.2f} | "
            f"{r['overhead_per_part_s']} | {', '.join(str(x) for x in r['peak_rss_mb_per_worker'])} |")
    mars = [r for r in results["paper"] if r["job"] == JOBS[0][0]]
    wide, narrow = mars[0], mars[-1]
    wide_c = [r for r in results["paper"] if r["job"] == JOBS[1][0]][0]
    lines += [
        "",
        "Overhead per part = (compute wall x workers - seconds the parts spent in their tasks) / parts: scheduling, "
        "the model loaded once per worker process, and load imbalance at the end. The assembly (one process: "
        "copy the parts through a VRT into the output in 256-row x 8192-column windows, then the same AVERAGE "
        "overviews as a local run) reads and writes the raster once more; memory is one window (8 MB) plus GDAL's "
        "block cache, held to 64 MB while the parts are copied and the overviews built, whatever the size (measured "
        "once, 2026-12-01, on an 8192² assembly: +108 MB peak RSS over the process before it; +280 MB before the "
        "cap, when every part block read stayed cached). "
        f"Measured assembly rate: {dk[0]['assembly_mpx_per_s']} Mpx/s.",
        "",
        "### On paper: planet-scale jobs",
        "",
        "From the figures above: a worker is one 2-core process at the 1-worker compute rate; a part costs its "
        "chip runs at that rate plus the measured overhead per part; the assembly runs at the measured rate on one "
        "machine. Parts are column stripes (whole height), so the number of busy workers is at most the number "
        "of parts.",
        "",
        "| job | chips | part width | parts | extra chip runs | workers | busy | compute (h) | assembly (h) | "
        "wall (h) | read / written per task (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results["paper"]:
        lines.append(
            f"| {r['job']} ({r['px']} px) | {r['chips']:,} | {r['part_width']} | {r['parts']} | "
            f"{r['extra_chip_runs_pct']} % | {r['workers']} | {r['busy_workers']} | {r['compute_h']} | "
            f"{r['assembly_h']} | {r['wall_h']} | {r['read_mb_per_task']} / {r['written_mb_per_task']} |")
    lines += [
        "",
        f"Where it stops scaling: (1) at as many workers as parts - column stripes of {wide['part_width']} px "
        f"give {wide['parts']} parts for global Mars and {wide_c['parts']} for the continent; "
        f"{narrow['part_width']} px parts give about four times as many, but every part recomputes the chip "
        f"column at its join (+{narrow['extra_chip_runs_pct']} % chip runs for Mars instead of "
        f"+{wide['extra_chip_runs_pct']} %); splitting stripes into row bands (a band recomputes the chip row "
        "above it) is the next step past a few hundred workers. (2) "
        "The assembly is serial: once compute is spread over tens of workers it dominates the wall time; "
        "writing the output as a tiled GeoTIFF in parallel from the parts (or leaving a VRT/COG mosaic of "
        "parts for a cloud store) removes it. (3) The scheduler itself is not a limit at these task counts "
        "(hundreds of tasks of minutes each, against milliseconds of overhead per task). The compute hours "
        f"scale with the per-worker rate: {dk[0]['compute_chips_per_s']} chips/s was measured here with the "
        "training job holding a core and other sessions running; on a quiet machine of the same kind the "
        "throughput table above gives several times that, and the compute column shrinks by the same factor "
        "(the assembly rate improves less: it is I/O and DEFLATE/ZSTD bound). The 30 m continent is ~0.7 M "
        "chips (a larger continent at 30 m, or a 10 m DEM, reaches tens of millions).",
        END,
    ]
    return "\n".join(lines) + "\n"


def write_readme(results):
    text = open(README).read() if os.path.exists(README) else "# Benchmarks\n"
    if BEGIN in text:
        text = text[: text.index(BEGIN)] + text[text.index(END) + len(END):].lstrip("\n")
    with open(README, "w") as f:
        f.write(text.rstrip("\n") + "\n\n" + readme_section(results))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=8192)
    p.add_argument("--part-width", type=int, default=runner.PART_WIDTH)
    p.add_argument("--workers", type=int, nargs="*", default=[1, 2])
    p.add_argument("--keep", help="folder for the DEM (kept between runs)")
    p.add_argument("--dask-only", action="store_true", help="redo only the Dask rows (the rest from " + RESULTS + ")")
    p.add_argument("--readme-only", action="store_true", help="redo the table and README section from " + RESULTS)
    args = p.parse_args(argv)
    if args.readme_only:
        with open(RESULTS) as f:
            results = json.load(f)
        results["paper"] = paper(results)
        with open(RESULTS, "w") as f:
            json.dump(results, f, indent=1)
        write_readme(results)
        return
    folder = args.keep or tempfile.mkdtemp(prefix="terraform_dask_bench_")
    os.makedirs(folder, exist_ok=True)
    try:
        dem = dem_of_size(folder, args.size)
        model, model_text = throughput_model(folder)
        if args.dask_only:  # the overhead and single-process rows of the last run stay
            with open(RESULTS) as f:
                previous = json.load(f)
            overhead, local = previous["overhead"], previous["local"]
        else:
            print("scheduler overhead (empty tasks)...", flush=True)
            overhead = scheduler_overhead()
            print(overhead, flush=True)
            local = []
            for width in sorted({8192, args.part_width}, reverse=True):
                print(f"single process, stripes of {width}...", flush=True)
                local.append(local_run(dem, model, folder, width))
                print(local[-1], flush=True)
        dask = []
        for workers in args.workers:
            print(f"Dask, {workers} worker(s)...", flush=True)
            dask.append(dask_run(dem, model, folder, workers, args.part_width))
            print(dask[-1], flush=True)
        results = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}",
            "model": model_text, "size": args.size, "overhead": overhead, "local": local, "dask": dask,
            "task_bytes": task_bytes(dem, model, args.part_width),
        }
        results["paper"] = paper(results)
        with open(RESULTS, "w") as f:
            json.dump(results, f, indent=1)
        write_readme(results)
        print(f"wrote {RESULTS} and the Dask section of {README}")
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
