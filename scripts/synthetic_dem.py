#!/usr/bin/env python3
"""A procedural, clearly synthetic DEM for the demo and for trying the plugin without downloading anything.

Fractal value noise (rolling hills) plus ridged noise (mountain chains), a coastline with sea below 0 m and,
optionally, a no-data hole; deterministic for a seed. Written as a GeoTIFF in UTM zone 33N (EPSG:32633) at
200 m pixels (the bundled model's resolution), tagged SYNTHETIC in its metadata.

    python scripts/synthetic_dem.py out/synthetic_dem.tif --size 2048 --seed 7
"""

import argparse
import os
import sys

import numpy as np

NODATA = -32768.0


def _smooth_upsample(grid, height, width):
    """Bilinear upsampling with smoothstep weights: continuous, no visible grid lines."""
    gy, gx = grid.shape
    y = np.linspace(0, gy - 1, height, endpoint=False)
    x = np.linspace(0, gx - 1, width, endpoint=False)
    y0, x0 = y.astype(int), x.astype(int)
    ty, tx = y - y0, x - x0
    ty, tx = ty * ty * (3 - 2 * ty), tx * tx * (3 - 2 * tx)
    y1, x1 = np.minimum(y0 + 1, gy - 1), np.minimum(x0 + 1, gx - 1)
    top = grid[y0][:, x0] * (1 - tx) + grid[y0][:, x1] * tx
    bottom = grid[y1][:, x0] * (1 - tx) + grid[y1][:, x1] * tx
    return top * (1 - ty)[:, None] + bottom * ty[:, None]


def fractal(rng, height, width, base_cells=4, octaves=7, persistence=0.5, ridged=False):
    """Sum of octaves of value noise in [0, 1]; ridged noise folds each octave (1 - |2n - 1|) for crests."""
    total = np.zeros((height, width))
    amplitude, norm = 1.0, 0.0
    for k in range(octaves):
        cells = base_cells * 2**k
        noise = _smooth_upsample(rng.random((cells + 2, cells + 2)), height, width)
        if ridged:
            noise = (1.0 - np.abs(2.0 * noise - 1.0)) ** 2
        total += amplitude * noise
        norm += amplitude
        amplitude *= persistence
    return total / norm


def synthetic_terrain(size=2048, seed=7):
    """Elevation in metres, float32 (size x size): sea in one corner, a mountain chain, up to ~5 km."""
    rng = np.random.default_rng(seed)
    hills = fractal(rng, size, size)
    ridges = fractal(rng, size, size, base_cells=3, ridged=True)
    y, x = np.mgrid[0:size, 0:size] / size
    # Land rises away from the south-west coast, so the sea is a connected ocean rather than scattered lakes.
    continent = np.clip(1.4 * (x + (1 - y)) - 0.55, 0, 1.5)
    z = -1500 + 2200 * continent + 1800 * (hills - 0.5) + 6000 * ridges**1.5 * np.clip(continent, 0, 1)
    return z.astype(np.float32)


def write_geotiff(path, z, pixel=200.0, epsg=32633, origin=(300000.0, 5200000.0), nodata_hole=True, seed=7):
    from osgeo import gdal, osr

    z = z.copy()
    if nodata_hole:  # a data gap, as real DEMs have, to show the transparent no-data mode
        h, w = z.shape
        yy, xx = np.ogrid[:h, :w]
        z[(yy - 0.3 * h) ** 2 + (xx - 0.75 * w) ** 2 < (0.06 * min(h, w)) ** 2] = NODATA
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), z.shape[1], z.shape[0], 1, gdal.GDT_Float32, ["TILED=YES", "COMPRESS=DEFLATE", "PREDICTOR=3"]
    )
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    ds.SetMetadata({"SYNTHETIC": f"procedural terrain (scripts/synthetic_dem.py, seed {seed}); not a real place",
                    "UNITS": "metres"})
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(NODATA)
    band.SetDescription("synthetic elevation (m)")
    band.WriteArray(z)
    ds = None
    return str(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description="Write a procedural (synthetic) DEM GeoTIFF.")
    parser.add_argument("output", nargs="?", default="out/synthetic_dem.tif")
    parser.add_argument("--size", type=int, default=2048, help="pixels per side (default %(default)s)")
    parser.add_argument("--pixel", type=float, default=200.0, help="metres per pixel (default %(default)s)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--no-hole", action="store_true", help="no no-data gap")
    args = parser.parse_args(argv)
    z = synthetic_terrain(args.size, args.seed)
    write_geotiff(args.output, z, pixel=args.pixel, nodata_hole=not args.no_hole, seed=args.seed)
    sea = float((z < 0).mean())
    print(f"{args.output}: synthetic {args.size}x{args.size} DEM, {args.pixel:g} m/pixel, EPSG:32633, "
          f"{z.min():.0f} to {z.max():.0f} m, {sea:.0%} below sea level")
    return 0


if __name__ == "__main__":
    sys.exit(main())
