"""The command line of Dask runs, ``terraform-dem`` (or ``python -m terraform_plugin.cluster``)::

    terraform-dem DEM.tif OUT.tif [--scheduler tcp://host:8786 | --workers N] [options]

Without ``--scheduler`` it starts a LocalCluster of worker processes on this machine (one onnxruntime session
per process, the cores shared out between them); with one it uses any running Dask scheduler. The options are
the QGIS algorithm's parameters, by the same names.
"""

import argparse
import sys

from ..core import guard
from ..core import parts
from ..core.errors import TerraformError
from ..core.model import MODEL_FILE, bundled_model_path
from ..core.request import NODATA_MODES, TerraformRequest
from .runner import PART_WIDTH, run_on_dask

PROG = "terraform-dem"  # the console command pyproject.toml installs


def build_parser(prog=PROG) -> argparse.ArgumentParser:
    d = TerraformRequest("", "", "")
    p = argparse.ArgumentParser(
        prog=prog,
        description="Terraform DEM on a Dask cluster (or a local one): elevation model -> Earth-like satellite "
        "GeoTIFF, the same output as the QGIS algorithm. A rerun after a crash resumes.",
    )
    p.add_argument("input", help="elevation raster (any GDAL format)")
    p.add_argument("output", help="output GeoTIFF (.tif)")
    p.add_argument("--model", help="Terraform ONNX model (default: the bundled one)")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 (default: a local cluster)")
    p.add_argument("--workers", type=int, help="local cluster worker processes (default: one per core)")
    p.add_argument("--part-width", type=int, default=PART_WIDTH, help=f"px per part/task, multiple of 256 "
                   f"(default {PART_WIDTH})")
    p.add_argument("--band", type=int, default=d.band)
    p.add_argument("--overlap", type=int, default=d.overlap, help=f"chip overlap, px (default {d.overlap})")
    p.add_argument("--nodata-mode", choices=NODATA_MODES, default=d.nodata_mode)
    p.add_argument("--resolution", type=float, help="ground metres per output pixel (default: the model's)")
    p.add_argument("--sea-level", type=float, default=d.sea_level)
    p.add_argument("--vertical-scale", type=float, default=d.vertical_scale)
    p.add_argument("--fit-to-earth", action="store_true", help="choose the vertical scale from the data")
    p.add_argument("--preview", help="before/after PNG")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--threads", type=int, help="onnxruntime threads per worker (default: cores / workers)")
    p.add_argument("--allow-huge-grid", action="store_true", help="ALLOW_HUGE_GRID: allow an output grid over "
                   f"{guard.MAX_GRID_PIXELS / 1e9:.2g} gigapixels (global Mars at 200 m is 5.7), otherwise refused "
                   "as a likely mistyped resolution")
    p.add_argument("--max-abs-elevation", type=float, default=d.max_abs_elevation, help="MAX_ABS_ELEVATION: "
                   f"elevations beyond +/- this are no-data (layer units; default {d.max_abs_elevation:g})")
    p.add_argument("--latitude", type=float, help="LATITUDE: terraform as if at this latitude (degrees, -90 to 90; "
                   "default: each pixel's own, from the georeference). Conditioned models only")
    p.add_argument("--look", default=d.look, help="LOOK: one of the model's looks by id, or auto (default: latitude "
                   "and elevation decide). Conditioned models only; a wrong one is refused with the model's list")
    p.add_argument("--tile-size", type=int, default=d.tile_size, help="largest tile side of a tiling-independent "
                   "model, px (default 0: the engine's); smaller tiles use less memory")
    p.add_argument("--guide", help="GUIDE: a true-colour raster (8-bit RGB, any CRS: a GeoTIFF, VRT, GeoPackage, a "
                   "GDAL WMS/TMS description) whose colours, averaged to kilometres, set the palette. Models with "
                   "guide inputs only; read here once, the workers need not see it")
    p.add_argument("--guide-strength", type=float, default=d.guide_strength, help="GUIDE_STRENGTH: how far the "
                   "colours, averaged over the guide's cells, move to the guide's (1 = all the way, the default; "
                   "0 = the model's own)")
    return p


def request_of(args, model_path) -> TerraformRequest:
    """The request the parsed command line asks for (the algorithm's parameters, by the same names)."""
    return TerraformRequest(
        input_path=args.input, output_path=args.output, model_path=model_path, band=args.band, overlap=args.overlap,
        nodata_mode=args.nodata_mode, resolution_m=args.resolution, sea_level=args.sea_level,
        vertical_scale=args.vertical_scale, fit_to_earth=args.fit_to_earth, preview_path=args.preview,
        batch_size=args.batch_size, threads=args.threads, allow_huge_grid=args.allow_huge_grid,
        max_abs_elevation=args.max_abs_elevation, latitude=args.latitude, look=args.look, tile_size=args.tile_size,
        guide_path=args.guide, guide_strength=args.guide_strength,
    )


def main(argv=None, prog=PROG) -> int:
    args = build_parser(prog).parse_args(argv)
    model = args.model or bundled_model_path()
    if model is None:
        print(f"error: no --model given and the bundled model ({MODEL_FILE}) is missing", file=sys.stderr)
        return 2
    request = request_of(args, model)
    try:
        from tqdm import tqdm
    except ImportError:  # QGIS's own Python often lacks it: plain progress lines instead of a bar
        tqdm = None

    bar = {}

    def on_part(record, done, total):
        if tqdm is None:
            print(f"parts: {done}/{total}", file=sys.stderr, flush=True)
            return
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, initial=done - 1, unit="part", desc="parts", file=sys.stderr)
        bar["bar"].update(1)

    def log(line):
        (bar["bar"].write if "bar" in bar else print)(line)

    try:
        result = run_on_dask(request, args.scheduler, args.workers, args.part_width, log=log, on_part=on_part)
    except KeyboardInterrupt:
        print(f"interrupted: the finished parts stay in {parts.parts_dir(args.output)}; run the same command "
              "again to resume", file=sys.stderr)
        return 130
    except TerraformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if "bar" in bar:
            bar["bar"].close()
    print(f"{result.output_path}: {result.width} x {result.height} px, {result.parts} parts "
          f"({result.parts_reused} reused) on {result.workers} worker(s), {result.elapsed_s:.1f} s")
    return 0
