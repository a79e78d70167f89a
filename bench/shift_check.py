#!/usr/bin/env python3
"""Does the picture of a place depend on where the tiles fall? The same DEM run whole and cropped at its top-left
by a number of pixels (same grid, same georeference), compared over the common area.

    .venv/bin/python bench/shift_check.py --dem ../shared/data/dem/earth/S33W071.tif --crs EPSG:32719 \
        --resolution 100 --model models/terraform_generator.onnx old.onnx --crops 32 96 160 48

For each model and crop: the mean, 99th percentile and maximum |difference| in DN (0-255, RGB) over the pixels
both runs cover farther than the model's receptive radius from the crop's edges (nearer, the cropped run sees
mirrored context instead of the DEM: no tiling can make those equal), and the share of pixels that differ by
more than 1 DN. A contract-2 model promises ≤ 1 DN for crops by multiples of its alignment; a contract-1 model
(256 px chips, blended) promises nothing. Results -> bench/shift_check.json.
"""

import argparse
import json
import os
import sys
import tempfile
import time

import numpy as np
from osgeo import gdal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# A contract-1 model declares no radius; a 256 px chip's output pixel sees at most half a chip around it.
CONTRACT1_MARGIN = 128


def resample_to_grid(dem, folder, resolution_m, crs):
    """The DEM at ``resolution_m`` metre pixels in the projected ``crs``, as a GeoTIFF: then a crop by N pixels is
    a crop of the processing grid itself, and both runs get the same grid. (A lat/lon DEM would not: its pixels in
    degrees are sized at the extent's centre latitude, which a crop moves.)"""
    path = os.path.join(folder, f"dem_on_grid_{resolution_m:g}m.tif")
    gdal.Warp(path, dem, format="GTiff", dstSRS=crs, xRes=resolution_m, yRes=resolution_m, targetAlignedPixels=True,
              resampleAlg="bilinear", creationOptions=["COMPRESS=DEFLATE"])
    ds = gdal.Open(path)
    return path, ds.RasterXSize, ds.RasterYSize


def run(dem, model, out, resolution_m):
    from terraform_plugin.core import pipeline

    request = pipeline.TerraformRequest(input_path=dem, output_path=out, model_path=model, resolution_m=resolution_m)
    pipeline.run(request, log=lambda m: None)
    ds = gdal.Open(out)
    return np.stack([ds.GetRasterBand(b).ReadAsArray() for b in (1, 2, 3)]).astype(np.int16)


def main(argv=None):
    from terraform_plugin.core.model import TerraformModel

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dem", required=True)
    p.add_argument("--model", nargs="+", default=[os.path.join(ROOT, "models", "terraform_generator.onnx")])
    p.add_argument("--crops", nargs="+", type=int, default=[32, 96, 160, 48])
    p.add_argument("--resolution", type=float, default=None,
                   help="ground metres per pixel (default: the model's; a finer one gives a small DEM more pixels)")
    p.add_argument("--crs", required=True, help="projected CRS in metres to put the DEM in first, e.g. its UTM zone")
    p.add_argument("--out", default=os.path.join(ROOT, "bench", "shift_check.json"))
    args = p.parse_args(argv)
    results, grids = [], {}
    with tempfile.TemporaryDirectory(prefix="shift_") as tmp:
        for model in args.model:
            meta = TerraformModel(model, threads=None).metadata
            margin = meta.receptive_radius if meta.tiling_independent else CONTRACT1_MARGIN
            resolution = args.resolution or meta.resolution_m
            if resolution not in grids:  # models at one resolution share the resampled DEM and its crops
                grids[resolution] = resample_to_grid(args.dem, tmp, resolution, args.crs)
            dem, width, height = grids[resolution]
            whole = run(dem, model, os.path.join(tmp, "whole.tif"), resolution)
            for crop in args.crops:
                cropped_dem = os.path.join(tmp, f"crop{crop}_{resolution:g}m.tif")
                if not os.path.exists(cropped_dem):
                    gdal.Translate(cropped_dem, dem, srcWin=[crop, crop, width - crop, height - crop])
                part = run(cropped_dem, model, os.path.join(tmp, f"out{crop}.tif"), resolution)
                a = whole[:, crop + margin : height - margin, crop + margin : width - margin]
                b = part[:, margin : height - crop - margin, margin : width - crop - margin]
                diff = np.abs(a - b).max(axis=0)
                row = {"model": f"{meta.name} {meta.version}", "contract": meta.schema,
                       "alignment": meta.alignment if meta.tiling_independent else None, "crop_px": crop,
                       "compared_px": int(diff.size), "edge_excluded_px": margin,
                       "mean_dn": round(float(diff.mean()), 3), "p99_dn": float(np.percentile(diff, 99)),
                       "max_dn": int(diff.max()), "share_over_1dn": round(float((diff > 1).mean()), 5)}
                results.append(row)
                print(json.dumps(row), flush=True)
    record = {"dem": os.path.basename(args.dem), "crs": args.crs, "resolution_m": args.resolution,
              "measured": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "rows": results}
    with open(args.out, "w") as f:
        json.dump(record, f, indent=2)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
