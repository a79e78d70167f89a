"""Benchmarks of the streamed engine -> bench/results.json and the table in bench/README.md.

1. Throughput: chips/second of the whole pipeline (read, resample, colourise, infer, blend, write, overviews)
   against bare onnxruntime (``model.run`` on the same number of chips, same batch size, same threads).
   The model is models/terraform_generator.onnx when it exists; else an untrained generator of the same
   architecture exported by training/ (weights do not change the cost); else the identity contract model.
2. Peak memory: the pipeline on procedural 4k², 8k² and 16k² DEMs, each run in its own subprocess (peak RSS
   from resource.getrusage), with the identity model so that the engine's own buffers dominate. The DEMs are
   written strip by strip, never held whole in memory.

    python bench/run.py [--sizes 4096 8192 16384] [--throughput-chips 48] [--keep DIR]
"""

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [ROOT, os.path.join(ROOT, "tests")]

from osgeo import gdal, osr  # noqa: E402

from terraform_plugin.core import pipeline  # noqa: E402
from terraform_plugin.core.model import TerraformModel  # noqa: E402

RELEASE_MODEL = os.path.join(ROOT, "models", "terraform_generator.onnx")
RESULTS = os.path.join(ROOT, "bench", "results.json")
README = os.path.join(ROOT, "bench", "README.md")
PIXEL_M = 200.0  # DEMs on the model's own grid: the chip count is exactly the layout's


def _status_mb(field):
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MB.

    VmHWM where Linux has it: getrusage's ru_maxrss survives fork+exec, so a child of a big parent (this
    script after exporting a torch model) would report the parent's peak instead of its own.
    """
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def write_procedural_dem(path, size, rows_per_strip=512):
    """Int16 tiled DEFLATE GeoTIFF of smooth multi-scale relief, -500..6000 m, generated strip by strip."""
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds = gdal.GetDriverByName("GTiff").Create(
        path, size, size, 1, gdal.GDT_Int16, ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=2", "BIGTIFF=IF_SAFER"]
    )
    ds.SetGeoTransform((300000.0, PIXEL_M, 0.0, 5000000.0, 0.0, -PIXEL_M))
    ds.SetProjection(srs.ExportToWkt())
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(-32768)
    x = np.arange(size, dtype=np.float32)
    for y0 in range(0, size, rows_per_strip):
        y = np.arange(y0, min(size, y0 + rows_per_strip), dtype=np.float32)[:, None]
        z = np.zeros((len(y), size), dtype=np.float32)
        for k, period in enumerate((9000.0, 2300.0, 610.0, 150.0, 37.0)):
            z += np.sin(y / period * 6.283 + k) * np.cos(x / (period * 1.3) * 6.283 + 2 * k) / (k + 1)
        band.WriteArray(np.clip(2750.0 + z * 2000.0, -500, 6000).astype(np.int16), 0, y0)
        ds.FlushCache()  # written tiles would otherwise sit in GDAL's cache and inflate the baseline
    ds = None


def identity_model(folder) -> str:
    from onnx_factory import write_model

    return write_model(os.path.join(folder, "identity.onnx"))


def throughput_model(folder):
    """(path, description) of the model the throughput is measured with."""
    if os.path.exists(RELEASE_MODEL):
        return RELEASE_MODEL, "models/terraform_generator.onnx (the bundled generator)"
    try:
        import torch  # noqa: F401

        from terraform_plugin.core.ramp import training_ramp
        from terraform_plugin.core.schema import build_metadata, stamp
        from training.export import to_onnx
        from training.nets import build_generator

        path = os.path.join(folder, "unet256_untrained.onnx")
        generator = build_generator(ngf=64).eval()
        model = to_onnx(generator, path)
        stamp(model, build_metadata(training_ramp(), name="unet256-untrained", version="bench"))
        import onnx

        onnx.save(model, path)
        return path, "untrained U-Net 256 generator (ngf=64) exported by training/: same architecture and cost"
    except Exception as exc:  # no torch, or the trainer changed: still measure, and say so
        print(f"(no generator to export: {exc}; using the identity model)", file=sys.stderr)
        return identity_model(folder), "identity contract model (tests/onnx_factory.py): measures engine overhead"


def measure_throughput(folder, chips_wanted, threads, batch_size, repeats=3):
    model_path, description = throughput_model(folder)
    model = TerraformModel(model_path, threads=threads)
    # A square DEM on the model grid whose layout has about ``chips_wanted`` chips (overlap 64: stride 192).
    side = max(1, round(chips_wanted**0.5))
    size = (side - 1) * 192 + 256 - 64
    dem = os.path.join(folder, "throughput_dem.tif")
    write_procedural_dem(dem, size)
    out = os.path.join(folder, "throughput_out.tif")
    request = pipeline.TerraformRequest(dem, out, model_path, batch_size=batch_size, threads=threads)
    x = np.random.default_rng(0).uniform(-1, 1, (batch_size, 3, model.tile_size, model.tile_size)).astype(np.float32)
    layout_chips = pipeline.run(request, model=model).chips  # warm-up: onnxruntime's first runs allocate
    runs, bare = [], []
    for _ in range(repeats):  # interleaved, so that load from other processes drifts into both alike
        started = time.perf_counter()
        pipeline.run(request, model=model)
        runs.append(time.perf_counter() - started)
        started = time.perf_counter()
        for done in range(0, layout_chips, batch_size):
            model.run(x[: min(batch_size, layout_chips - done)])
        bare.append(time.perf_counter() - started)
    pipeline_cps, bare_cps = layout_chips / min(runs), layout_chips / min(bare)
    return {
        "model": description,
        "model_file": os.path.basename(model_path),
        "provider": model.provider,
        "threads": model.threads,
        "batch_size": batch_size,
        "dem_px": size,
        "chips": layout_chips,
        "pipeline_s": round(min(runs), 3),
        "bare_onnxruntime_s": round(min(bare), 3),
        "pipeline_chips_per_s": round(pipeline_cps, 2),
        "bare_onnxruntime_chips_per_s": round(bare_cps, 2),
        "ratio": round(pipeline_cps / bare_cps, 3),
        "target_ratio": 0.9,
        "note": "pipeline time is the whole run: reading, resampling, colourising, blending, DEFLATE writing "
        "and overviews; best of %d interleaved runs each, after a warm-up" % repeats,
    }


def memory_case(size, folder):
    """Run in a subprocess: generate the DEM, run the pipeline with the identity model, report peak RSS."""
    dem = os.path.join(folder, f"dem_{size}.tif")
    if not os.path.exists(dem):
        write_procedural_dem(dem, size)
    model_path = identity_model(folder)
    model = TerraformModel(model_path, threads=1)
    baseline = peak_rss_mb()
    out = os.path.join(folder, f"out_{size}.tif")
    started = time.perf_counter()
    result = pipeline.run(pipeline.TerraformRequest(dem, out, model_path, threads=1), model=model)
    elapsed = time.perf_counter() - started
    record = {
        "size_px": size,
        "chips": result.chips,
        "peak_rss_mb": round(peak_rss_mb(), 1),
        # High-water mark before the run: interpreter, numpy, GDAL, onnxruntime, the model, generating the DEM.
        "rss_before_run_mb": round(baseline, 1),
        "seconds": round(elapsed, 1),
        "output_mb": round(os.path.getsize(out) / 2**20, 1),
    }
    os.remove(out)
    os.remove(dem)
    return record


def write_readme(results):
    t = results["throughput"]
    lines = [
        "# Benchmarks",
        "",
        "`make bench` (`python bench/run.py`) writes `results.json`; this table is regenerated from it.",
        f"Machine: {results['machine']}. Measured {results['date']}. Timings are from a shared 2-core machine "
        "(other jobs running alongside), so they vary from run to run by 10-20 %; the ratio comes from "
        "interleaved runs, which the load affects alike.",
        "",
        "## Throughput: whole pipeline vs bare onnxruntime",
        "",
        f"Model: {t['model']}; {t['provider']}, {t['threads']} threads, batches of {t['batch_size']}, "
        f"{t['chips']} chips ({t['dem_px']}² px DEM).",
        "",
        "| | seconds | chips/s |",
        "|---|---:|---:|",
        f"| bare onnxruntime (`model.run`) | {t['bare_onnxruntime_s']} | {t['bare_onnxruntime_chips_per_s']} |",
        f"| whole pipeline (`pipeline.run`) | {t['pipeline_s']} | {t['pipeline_chips_per_s']} |",
        f"| **ratio** (target ≥ {t['target_ratio']}) | | **{t['ratio']}** |",
        "",
        "## Peak memory (identity model, 1 thread, each size in its own process)",
        "",
        "| DEM | chips | peak RSS (MB) | peak before the run (MB) | added by the run (MB) | seconds | output (MB) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for m in results["memory"]:
        lines.append(
            f"| {m['size_px']}² | {m['chips']} | {m['peak_rss_mb']} | {m['rss_before_run_mb']} "
            f"| {round(m['peak_rss_mb'] - m['rss_before_run_mb'], 1)} | {m['seconds']} | {m['output_mb']} |"
        )
    lines += [
        "",
        "Target: peak RSS flat in the raster size and well under 1.5 GB at 16k². \"Peak before the run\" is "
        "the process's high-water mark from imports, the model and generating the DEM strip by strip. The run "
        "holds one chip row of blend accumulators per column stripe, two chip rows read ahead and two block "
        "rows waiting to be written; GDAL's block cache is flushed as rows finish and capped while overviews "
        "are built. Stripes are at most 8192 px wide, so what the run adds stops growing from 8k² on (a 4k² "
        "raster is one narrower stripe).",
        "",
    ]
    with open(README, "w") as f:
        f.write("\n".join(lines))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="*", default=[4096, 8192, 16384])
    p.add_argument("--throughput-chips", type=int, default=49)
    p.add_argument("--threads", type=int, default=None, help="onnxruntime threads (default: all cores)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--keep", default=None, help="work folder to keep (default: a temporary one, removed)")
    p.add_argument("--memory-case", type=int, default=None, help=argparse.SUPPRESS)  # the subprocess side
    args = p.parse_args(argv)

    folder = args.keep or tempfile.mkdtemp(prefix="terraform-bench-")
    os.makedirs(folder, exist_ok=True)
    try:
        if args.memory_case is not None:
            print(json.dumps(memory_case(args.memory_case, folder)))
            return 0
        memory = []
        for size in args.sizes:
            print(f"peak memory at {size}²...", flush=True)
            done = subprocess.run(
                [sys.executable, os.path.abspath(__file__), "--memory-case", str(size), "--keep", folder],
                capture_output=True, text=True, check=False,
            )
            if done.returncode != 0:
                raise SystemExit(f"memory case {size} failed:\n{done.stdout}\n{done.stderr}")
            memory.append(json.loads(done.stdout.strip().splitlines()[-1]))
            print(json.dumps(memory[-1]), flush=True)
        print("throughput...", flush=True)  # after the memory runs, so their parent process stays small
        throughput = measure_throughput(folder, args.throughput_chips, args.threads, args.batch_size)
        print(json.dumps(throughput, indent=1), flush=True)
        results = {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, {platform.python_version()}, "
            f"GDAL {gdal.__version__}",
            "date": time.strftime("%Y-%m-%d"),
            "throughput": throughput,
            "memory": memory,
            "memory_model": "identity contract model (tests/onnx_factory.py), 1 onnxruntime thread",
        }
        with open(RESULTS, "w") as f:
            json.dump(results, f, indent=2)
            f.write("\n")
        write_readme(results)
        print(f"wrote {RESULTS} and {README}")
        return 0
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
