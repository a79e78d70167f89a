"""The real places `make demo` and `make demo-mars` terraform: small public-domain crops committed in data/dem/,
readable, georeferenced, with their source and licence written beside them, and the ones the demos use."""

import os
import sys

import numpy as np
import pytest
from osgeo import gdal, osr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEM_DIR = os.path.join(ROOT, "data", "dem")
sys.path.insert(0, os.path.join(ROOT, "scripts"))
import demo  # noqa: E402
import demo_mars  # noqa: E402

# file -> (source named in data/dem/README.md, body, elevation range the crop must span at least, in metres)
CROPS = {
    "aconcagua_srtm.tif": ("SRTM", "Earth", (1000, 6900)),
    "mars_tharsis_mola.tif": ("MOLA", "Mars", (-3000, 21000)),
    "mars_valles_marineris_mola.tif": ("MOLA", "Mars", (-5000, 8000)),
    "mars_north_polar_mola.tif": ("MOLA", "Mars", (-6000, -2000)),
}


def test_the_demos_use_the_committed_crops():
    assert os.path.dirname(demo.REAL_DEM) == DEM_DIR and os.path.basename(demo.REAL_DEM) in CROPS
    assert demo_mars.MARS_DIR == DEM_DIR
    assert {source for _, source, *_ in demo_mars.LAYERS} == {f for f in CROPS if f.startswith("mars_")}


def test_crops_are_small_enough_to_commit():
    sizes = [os.path.getsize(os.path.join(DEM_DIR, name)) for name in CROPS]
    assert sum(sizes) <= 2_500_000, sizes  # "a few hundred KB to ~2 MB"


@pytest.mark.parametrize("name", sorted(CROPS))
def test_crop_is_a_georeferenced_dem_of_a_real_place(name):
    _, body, (low, high) = CROPS[name]
    ds = gdal.OpenEx(os.path.join(DEM_DIR, name), gdal.OF_RASTER)
    assert ds is not None and ds.RasterCount == 1
    srs = osr.SpatialReference(ds.GetProjection())
    assert ds.GetProjection() and (srs.IsGeographic() or srs.IsProjected()), name  # carries its CRS
    radius = srs.GetSemiMajor()
    assert abs(radius - (6378137 if body == "Earth" else 3396190)) < 1000, (name, radius)
    band = ds.GetRasterBand(1)
    z = band.ReadAsArray().astype(float)
    nodata = band.GetNoDataValue()
    z = z[z != nodata] if nodata is not None else z.ravel()
    assert z.size > 0.9 * ds.RasterXSize * ds.RasterYSize  # a crop of real data, not of gaps
    assert z.min() <= low and z.max() >= high, (name, z.min(), z.max())
    assert np.unique(z).size > 1000  # real relief, not a constant or a few levels


def test_source_and_licence_beside_the_files():
    with open(os.path.join(DEM_DIR, "README.md"), encoding="utf-8") as f:
        readme = f.read()
    for name, (source, _, _) in CROPS.items():
        assert f"`{name}`" in readme and source in readme, name
    assert readme.lower().count("public domain") >= 2  # SRTM and MOLA each say so
