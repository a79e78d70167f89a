#!/usr/bin/env python3
"""`make demo-mars`: terraform real Mars MOLA layers through the real QGIS algorithm -> out/mars/.

Inputs: the public-domain MOLA crops committed in ``data/dem/`` (source and licence in data/dem/README.md), so
the demo runs on a fresh clone without ``../shared``:

- ``tharsis``: ``mars_tharsis_mola.tif``, a 256 x 256 crop around Olympus Mons and the Tharsis volcanoes, Mars
  equirectangular (IAU_2015:49910, metres).
- ``valles_marineris``: ``mars_valles_marineris_mola.tif``, the global 4 px/degree MEGDR (Mars geographic,
  0-360°E longitudes) cropped to 265-320°E, 20°S-5°N: Valles Marineris with the eastern Tharsis rise, in the
  layer's own CRS and 0-360° longitudes.

- ``north_pole``: ``mars_north_polar_mola.tif``, the north polar cap and the plains around it to ~70°N, Mars
  north polar stereographic (IAU_2015:49930): what a model trained between 20°S and 47°N makes of the far north.

Each layer runs with two sea levels (Mars has no sea level; the areoid is the zero, and the northern plains and
Hellas sit around -4 to -8 km): -3000 m and -1000 m, and for the pole, whose plains lie at -4 to -5 km and cap
at -2 km, -4500 m and -3000 m; FIT_TO_EARTH is on, so the land above each sea is squeezed into Earth's 0-9000 m
training range. A contract-2 model gets every pixel's areographic latitude from the layer's CRS (Tharsis ~18°N,
Valles Marineris 20°S-5°N, the pole 70-90°N: beyond the model's trained range, so clamped to its top, as the log
says). Outputs: ``out/mars/<layer>_sea<level>.tif`` (RGB + alpha GeoTIFF in
the input's CRS, with the sea level, vertical scale and model in its metadata) and ``..._preview.png``
(colourised DEM | terraformed).

Why RESOLUTION defaults to 1000 m here and not the model's 200 m: these layers have 14.8 km pixels. Resampled
to 200 m each source pixel becomes 74 x 74 output pixels of bilinear interpolation: no new detail, 5,500 times
the pixels. The Tharsis crop alone would be 18,967 x 18,967 px = ~9,800 chips, about 8 minutes per sea level
with a ~50 ms/chip generator on 2 cores (20 minutes for the demo's four runs with the Valles crop), and far
more on a shared machine. At 1000 m the two layers take ~400 and ~140 chips (~540 chips per sea level, under a
minute of inference each at 50 ms/chip; the four runs fit in a few minutes), and the output still magnifies
every MOLA pixel 15 times. The generator then paints landforms 5 times larger than it learned, which reads
well at the scale of these maps. ``--resolution 200`` gives the model's native scale if you have the time.

The algorithm runs through ``qgis_process.bin run terraform:terraformdem`` with ``QGIS_PLUGINPATH=build``
(built by ``make plugin``), in QGIS's own Python. ``--engine core`` (or an unbuilt plugin) calls
``terraform_plugin.core.pipeline.run`` in this Python instead, and says so.
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

MARS_DIR = os.path.join(ROOT, "data", "dem")
OUT_DIR = os.path.join(ROOT, "out", "mars")
PLUGIN_PATH = os.path.join(ROOT, "build")
ALGORITHM = "terraform:terraformdem"
SEA_LEVELS = (-3000.0, -1000.0)
DEFAULT_RESOLUTION_M = 1000.0

# (layer name, source file, projWin [west, north, east, south] in the source CRS or None for the whole file,
# sea levels)
LAYERS = (
    ("tharsis", "mars_tharsis_mola.tif", None, SEA_LEVELS),
    ("valles_marineris", "mars_valles_marineris_mola.tif", None, SEA_LEVELS),
    ("north_pole", "mars_north_polar_mola.tif", None, (-4500.0, -3000.0)),
)


def qgis_process():
    return shutil.which("qgis_process.bin") or (
        "/usr/bin/qgis_process.bin" if os.path.exists("/usr/bin/qgis_process.bin") else None
    )


def qgis_env(profile):
    # A throw-away QGIS profile: enabling the plugin there leaves the user's own QGIS settings alone.
    env = dict(os.environ, QGIS_PLUGINPATH=PLUGIN_PATH, QT_QPA_PLATFORM="offscreen", QGIS_CUSTOM_CONFIG_PATH=profile)
    env.pop("PYTHONPATH", None)  # QGIS's own Python must not pick up this venv's packages
    return env


def plugin_ready(profile):
    """'' when qgis_process can run the algorithm from build/, else why not."""
    exe = qgis_process()
    if exe is None:
        return "qgis_process.bin is not installed (make setup installs QGIS)"
    if not os.path.isfile(os.path.join(PLUGIN_PATH, "terraform_plugin", "metadata.txt")):
        return "build/terraform_plugin is missing (make plugin builds it)"
    env = qgis_env(profile)
    subprocess.run([exe, "plugins", "enable", "terraform_plugin"], env=env, capture_output=True, text=True)
    probe = subprocess.run([exe, "help", ALGORITHM], env=env, capture_output=True, text=True)
    if probe.returncode != 0:
        return f"qgis_process does not know {ALGORITHM}: {(probe.stderr or probe.stdout).strip()[-300:]}"
    return ""


def prepare_inputs(tmp):
    """[(name, path, sea levels)]: each layer as it is, or cropped to a VRT in its own CRS."""
    from osgeo import gdal

    gdal.UseExceptions()
    inputs = []
    for name, filename, window, seas in LAYERS:
        source = os.path.join(MARS_DIR, filename)
        if window is None:
            inputs.append((name, source, seas))
            continue
        path = os.path.join(tmp, f"{name}.vrt")
        gdal.Translate(path, source, format="VRT", projWin=list(window))
        inputs.append((name, path, seas))
    return inputs


def run_qgis(exe, profile, params):
    args = [exe, "run", ALGORITHM, "--"] + [f"{k}={v}" for k, v in params.items()]
    started = time.perf_counter()
    proc = subprocess.run(args, env=qgis_env(profile), capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    log = [line for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0:
        errors = [line for line in (proc.stdout + proc.stderr).splitlines() if line.startswith("ERROR")]
        raise RunFailed(f"qgis_process exit {proc.returncode}: " + (errors[-1] if errors else proc.stderr[-500:]))
    return elapsed, log


class RunFailed(Exception):
    pass


def run_core(params, model_path):
    from terraform_plugin.core import pipeline
    from terraform_plugin.core.errors import TerraformError

    request = pipeline.TerraformRequest(
        input_path=params["INPUT"],
        output_path=params["OUTPUT"],
        model_path=model_path,
        resolution_m=params["RESOLUTION"],
        sea_level=params["SEA_LEVEL"],
        fit_to_earth=True,
        preview_path=params["PREVIEW"],
        allow_huge_grid=params.get("ALLOW_HUGE_GRID") == "true",
    )
    log = []
    started = time.perf_counter()
    try:
        pipeline.run(request, log=log.append)
    except TerraformError as exc:
        raise RunFailed(str(exc)) from None
    return time.perf_counter() - started, log


def bundled_model():
    for path in (
        os.path.join(PLUGIN_PATH, "terraform_plugin", "models", "terraform_generator.onnx"),
        os.path.join(ROOT, "models", "terraform_generator.onnx"),
    ):
        if os.path.isfile(path):
            return path
    return None


def describe_output(path):
    from osgeo import gdal

    ds = gdal.Open(path)
    meta = ds.GetMetadata()
    keys = ("TERRAFORM_SEA_LEVEL", "TERRAFORM_VERTICAL_SCALE", "TERRAFORM_RESOLUTION_M", "TERRAFORM_MODEL")
    summary = ", ".join(f"{k[10:].lower()} {float(meta[k]):.4g}" if k != keys[-1] else f"model {meta[k]}"
                        for k in keys if k in meta)
    if "TERRAFORM_LATITUDE_DEG" in meta:
        summary += f", latitude {meta['TERRAFORM_LATITUDE_DEG']} ({meta.get('TERRAFORM_LATITUDE', '?')})"
    return f"{ds.RasterXSize} x {ds.RasterYSize} px; {summary or 'NO terraform metadata'}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resolution", type=float, default=DEFAULT_RESOLUTION_M, help="ground metres per pixel")
    parser.add_argument("--model", help="ONNX model (default: the bundled one)")
    parser.add_argument("--engine", choices=("auto", "qgis", "core"), default="auto")
    parser.add_argument("--out", default=OUT_DIR)
    parser.add_argument("--allow-huge-grid", action="store_true",  # e.g. the global layer at 200 m
                        help="run grids over 2^30 pixels (otherwise refused as a likely mistyped resolution)")
    args = parser.parse_args(argv)

    missing = [f for _, f, _, _ in LAYERS if not os.path.isfile(os.path.join(MARS_DIR, f))]
    if missing:
        raise SystemExit(f"demo-mars: {', '.join(missing)} missing from {MARS_DIR} (see data/dem/README.md)")
    os.makedirs(args.out, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="demo_mars_") as tmp:
        return demo(args, tmp)


def demo(args, tmp):
    profile = os.path.join(tmp, "qgis_profile")
    engine, exe = args.engine, qgis_process()
    if engine != "core":
        why = plugin_ready(profile)
        if why and engine == "qgis":
            raise SystemExit(f"cannot run through QGIS: {why}")
        if why:
            print(f"NOTE: falling back to core.pipeline.run in this Python, not the QGIS algorithm: {why}")
            engine = "core"
        else:
            engine = "qgis"
    model = args.model or (bundled_model() if engine == "core" else "")
    if engine == "core" and not model:
        raise SystemExit("no model: pass --model or build the bundled one (models/terraform_generator.onnx)")

    print(f"engine: {'qgis_process ' + ALGORITHM if engine == 'qgis' else 'core.pipeline.run'}; "
          f"resolution {args.resolution:g} m/pixel; model: {model or 'bundled'}")
    rows, failures = [], []
    for name, path, seas in prepare_inputs(tmp):
        for sea in seas:
            stem = os.path.join(args.out, f"{name}_sea{sea:+.0f}")
            params = {
                "INPUT": path,
                "BAND": 1,
                "OVERLAP": 64,
                "NODATA_MODE": 0,
                "RESOLUTION": args.resolution,
                "SEA_LEVEL": sea,
                "VERTICAL_SCALE": 1.0,
                "FIT_TO_EARTH": "true",
                "PREVIEW": stem + "_preview.png",
                "OUTPUT": stem + ".tif",
            }
            if model:
                params["MODEL"] = model
            if args.allow_huge_grid:
                params["ALLOW_HUGE_GRID"] = "true"
            print(f"-- {name}, sea level {sea:g} m ...", flush=True)
            try:
                if engine == "qgis":
                    elapsed, log = run_qgis(exe, profile, params)
                else:
                    elapsed, log = run_core(params, model)
            except RunFailed as exc:  # keep going: the other layers still show what works
                print(f"    FAILED: {exc}")
                failures.append(f"{name} at sea level {sea:g} m: {exc}")
                continue
            for line in log:  # the engine's choices and the algorithm's summary
                if line.startswith(("Vertical scale", "Input ", "Done:", "Latitude")):
                    print("   ", line.strip())
            rows.append((name, sea, elapsed, describe_output(params["OUTPUT"]), params["PREVIEW"]))
    print("\nlayer              sea (m)   time (s)  output")
    for name, sea, elapsed, desc, preview in rows:
        print(f"{name:<18} {sea:>7g} {elapsed:>10.1f}  {desc}")
        print(f"{'':<37}{os.path.relpath(preview) if os.path.exists(preview) else 'preview MISSING'}")
    if failures:
        print("\nFAILED runs:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
