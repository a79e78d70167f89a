"""Helpers for the engine tests, handed out by the ``kit`` fixture (test modules do not import conftests).

``kit.expected`` is the DEM resampled onto the processing grid (core.source, tested on its own in
test_source.py) and colourised: with an identity generator, any seam, shift, darkened edge or lost pixel in
the output is the tiling, blending or writing's fault.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from osgeo import gdal, osr

from terraform_plugin.core import source
from terraform_plugin.core.grid import processing_grid
from terraform_plugin.core.ramp import training_ramp
from terraform_plugin.core.relief import Relief


def terrain(height, width, seed=0, low=-500.0, high=6000.0):
    """Smooth deterministic relief spanning sea and mountains, different in every chip."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    z = np.zeros((height, width))
    for k in range(1, 6):
        fy, fx, py, px = rng.uniform(0.5, 2.0, 4) * [k, k, 6, 6]
        z += np.sin(2 * np.pi * fy * y / max(height, 64) + py) * np.cos(2 * np.pi * fx * x / max(width, 64) + px) / k
    z = (z - z.min()) / (np.ptp(z) or 1.0)
    return (low + z * (high - low)).astype(np.float32)


def crs_wkt(crs="EPSG:32633"):
    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    return srs.ExportToWkt()


def write_dem(path, z=None, crs="EPSG:32633", pixel=200.0, origin=(500000.0, 4500000.0), nodata=None, bands=None):
    """Float32 GeoTIFF of ``z`` (or of the arrays in ``bands``)."""
    arrays = bands if bands is not None else [z]
    h, w = arrays[0].shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, len(arrays), gdal.GDT_Float32)
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    ds.SetProjection(crs if crs.lstrip().startswith(("GEOG", "PROJ")) else crs_wkt(crs))
    for i, a in enumerate(arrays, start=1):
        if nodata is not None:
            ds.GetRasterBand(i).SetNoDataValue(nodata)
        ds.GetRasterBand(i).WriteArray(np.asarray(a, dtype=np.float32))
    ds = None
    return str(path)


def grid_elevation(input_path, resolution_m, band=1):
    """(z on the processing grid with NaN for nodata, grid)."""
    dataset = gdal.Open(str(input_path))
    grid = processing_grid(dataset, resolution_m)
    return source.ResampledSource(dataset, band, grid).read(0, 0, grid.width, grid.height), grid


def colourised(z, sea_level=0.0, vertical_scale=1.0):
    relief = Relief(sea_level, vertical_scale)
    return training_ramp().colourise(relief.ramp_elevation(z), sea=relief.sea_mask(z))


def expected(input_path, resolution_m, sea_level=0.0, vertical_scale=1.0, band=1):
    """(rgb, valid, grid) an identity model must reproduce."""
    z, grid = grid_elevation(input_path, resolution_m, band)
    return colourised(z, sea_level, vertical_scale), np.isfinite(z), grid


def read_rgba(path):
    dataset = gdal.Open(str(path))
    assert dataset.RasterCount == 4
    return dataset.ReadAsArray().transpose(1, 2, 0)


@pytest.fixture
def kit():
    return SimpleNamespace(
        terrain=terrain,
        crs_wkt=crs_wkt,
        write_dem=write_dem,
        grid_elevation=grid_elevation,
        colourised=colourised,
        expected=expected,
        read_rgba=read_rgba,
    )
