"""Helpers for the engine tests, handed out by the ``kit`` fixture (test modules do not import conftests).

``kit.expected`` is the DEM resampled onto the processing grid (core.source, tested on its own in
test_source.py) and colourised: with an identity generator, any seam, shift, darkened edge or lost pixel in
the output is the tiling, blending or writing's fault.
"""

from types import SimpleNamespace

import numpy as np
import pytest
from osgeo import gdal

from terraform_plugin.core import source
from terraform_plugin.core.grid import processing_grid
from terraform_plugin.core.ramp import training_ramp
from terraform_plugin.core.relief import Relief
from rasters import crs_wkt, terrain, write_dem


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
