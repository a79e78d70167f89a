"""Relief: sea level, vertical scale, and fitting the scale from a bounded, sampled read."""

import os
import tracemalloc

import numpy as np
import pytest
from osgeo import gdal, osr

from terraform_plugin.core.errors import InputError
from terraform_plugin.core.ramp import training_ramp
from terraform_plugin.core.relief import (
    DEFAULT_MAX_SAMPLES,
    Relief,
    fit_target_m,
    fit_vertical_scale,
    sample_elevations,
)

gdal.UseExceptions()

MARS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "dem", "mars")


def test_ramp_elevation_shifts_scales_and_keeps_nan():
    z = np.array([[-3000.0, -1000.0, np.nan], [0.0, 2000.0, 21134.0]], dtype=np.float32)
    out = Relief(sea_level=-1000.0, vertical_scale=0.5).ramp_elevation(z)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[0, :2], [-1000.0, 0.0])
    assert np.isnan(out[0, 2])
    np.testing.assert_array_equal(out[1], [500.0, 1500.0, 11067.0])
    assert z[1, 1] == 2000.0  # the input is not modified in place


def test_ramp_elevation_of_int16_is_exact_float():
    z = np.array([-8068, 0, 21134], dtype=np.int16)
    np.testing.assert_array_equal(Relief(sea_level=-3000).ramp_elevation(z), [-5068.0, 3000.0, 24134.0])


def test_sea_mask_is_at_or_below_and_nan_is_not_sea():
    # At: the seed chips render SRTM's 0 m ocean white, so sea level itself is sea.
    z = np.array([-3001.0, -3000.0, -2999.0, np.nan])
    np.testing.assert_array_equal(Relief(sea_level=-3000.0).sea_mask(z), [True, True, False, False])


@pytest.mark.parametrize("scale", [0.0, -1.0, float("nan"), float("inf")])
def test_invalid_vertical_scale_is_refused(scale):
    with pytest.raises(InputError, match="vertical scale"):
        Relief(vertical_scale=scale)


def test_nan_sea_level_is_refused():
    with pytest.raises(InputError, match="sea level"):
        Relief(sea_level=float("nan"))


def test_fit_target_is_ninety_percent_of_the_training_ramp():
    assert fit_target_m(training_ramp()) == pytest.approx(8100.0)


def write_gtiff(path, array, nodata=None, **options):
    dtype = {np.dtype(np.int16): gdal.GDT_Int16, np.dtype(np.float32): gdal.GDT_Float32}[array.dtype]
    opts = [f"{k}={v}" for k, v in options.items()]
    ds = gdal.GetDriverByName("GTiff").Create(str(path), array.shape[1], array.shape[0], 1, dtype, opts)
    srs = osr.SpatialReference()
    srs.SetFromUserInput("IAU_2015:49900")
    ds.SetSpatialRef(srs)
    ds.SetGeoTransform((0.0, 0.25, 0, 10.0, 0, -0.25))
    if nodata is not None:
        ds.GetRasterBand(1).SetNoDataValue(nodata)
    ds.GetRasterBand(1).WriteArray(array)
    return ds


def synthetic_dem(rng, shape=(300, 400)):
    """Mars-like Int16: sea floor, land 1..N above -3000 m in random order, and nodata 32767 holes."""
    z = rng.integers(-8000, -3000, size=shape).astype(np.int16)  # below sea level
    land = rng.random(shape) < 0.6
    z[land] = -3000 + rng.integers(1, 20000, size=land.sum())
    holes = rng.random(shape) < 0.05
    z[holes] = 32767  # would dominate the 99th percentile if nodata were not dropped
    return z, land & ~holes


def test_fit_hits_the_known_percentile(tmp_path):
    rng = np.random.default_rng(1)
    z, land = synthetic_dem(rng)
    ds = write_gtiff(tmp_path / "dem.tif", z, nodata=32767)
    expected_p99 = np.percentile(z[land].astype(np.float64) + 3000.0, 99.0)
    scale = fit_vertical_scale(ds.GetRasterBand(1), -3000.0, 8100.0)
    assert scale == pytest.approx(8100.0 / expected_p99, rel=1e-12)  # small raster: every pixel is sampled
    p50 = fit_vertical_scale(ds.GetRasterBand(1), -3000.0, 8100.0, percentile=50.0)
    assert p50 == pytest.approx(8100.0 / np.percentile(z[land].astype(np.float64) + 3000.0, 50.0), rel=1e-12)


def test_fit_ignores_masked_pixels(tmp_path):
    z = np.full((100, 100), 1000, dtype=np.int16)
    z[:10] = 20000  # masked out below: must not raise the percentile
    ds = write_gtiff(tmp_path / "masked.tif", z)
    ds.CreateMaskBand(gdal.GMF_PER_DATASET)
    mask = np.full(z.shape, 255, dtype=np.uint8)
    mask[:10] = 0
    ds.GetRasterBand(1).GetMaskBand().WriteArray(mask)
    ds.FlushCache()
    assert fit_vertical_scale(ds.GetRasterBand(1), 0.0, 8100.0) == pytest.approx(8.1)


def test_no_land_above_sea_level_is_a_clear_error(tmp_path):
    z = np.full((50, 50), -4000, dtype=np.int16)
    ds = write_gtiff(tmp_path / "sea.tif", z)
    with pytest.raises(InputError, match="no land above sea level -3000.*-4000"):
        fit_vertical_scale(ds.GetRasterBand(1), -3000.0, 8100.0)


def test_all_nodata_is_a_clear_error(tmp_path):
    ds = write_gtiff(tmp_path / "empty.tif", np.full((50, 50), -32768, dtype=np.int16), nodata=-32768)
    with pytest.raises(InputError, match="no valid data"):
        fit_vertical_scale(ds.GetRasterBand(1), 0.0, 8100.0)


def test_overviews_are_used_when_present(tmp_path):
    ds = write_gtiff(tmp_path / "ovr.tif", np.full((2000, 2000), 100, dtype=np.int16), TILED="YES")
    ds.BuildOverviews("NEAREST", [2, 4, 8])
    # Mark the 4x overview (500x500 = 250k pixels, the finest under the cap) so reading it is visible.
    level4 = [ds.GetRasterBand(1).GetOverview(i) for i in range(3)]
    level4 = next(o for o in level4 if o.XSize == 500)
    level4.WriteArray(np.full((500, 500), 5000, dtype=np.int16))
    ds.FlushCache()
    samples = sample_elevations(ds.GetRasterBand(1), max_samples=300_000)
    assert samples.size == 250_000
    assert np.all(samples == 5000)


def test_decimated_read_without_overviews_is_capped(tmp_path):
    ds = write_gtiff(tmp_path / "flat.tif", np.arange(4_000_000, dtype=np.float32).reshape(2000, 2000) % 9000)
    samples = sample_elevations(ds.GetRasterBand(1), max_samples=300_000)
    assert 270_000 <= samples.size <= 300_000
    # Spread over the whole raster, not the first rows: the sample's range spans the data's.
    assert samples.min() < 100 and samples.max() > 8900


def big_vrt(tmp_path, side=20000):
    """A 20000x20000 Int16 VRT (800 MB as Int16, 3.2 GB as float64) drawn from a 200x200 known source."""
    rng = np.random.default_rng(7)
    small = rng.integers(-5000, 15000, size=(200, 200)).astype(np.int16)
    write_gtiff(tmp_path / "small.tif", small).FlushCache()
    vrt = f"""<VRTDataset rasterXSize="{side}" rasterYSize="{side}">
  <GeoTransform>0, 0.001, 0, 10, 0, -0.001</GeoTransform>
  <VRTRasterBand dataType="Int16" band="1">
    <SimpleSource>
      <SourceFilename relativeToVRT="1">small.tif</SourceFilename><SourceBand>1</SourceBand>
      <SrcRect xOff="0" yOff="0" xSize="200" ySize="200"/>
      <DstRect xOff="0" yOff="0" xSize="{side}" ySize="{side}"/>
    </SimpleSource>
  </VRTRasterBand>
</VRTDataset>"""
    (tmp_path / "big.vrt").write_text(vrt)
    return gdal.Open(str(tmp_path / "big.vrt")), small


def test_large_raster_is_sampled_with_bounded_memory(tmp_path):
    ds, small = big_vrt(tmp_path)
    band = ds.GetRasterBand(1)
    tracemalloc.start()
    try:
        samples = sample_elevations(band)
        scale = fit_vertical_scale(band, 0.0, 8100.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert samples.size <= DEFAULT_MAX_SAMPLES  # 1% of the raster's 400 M pixels
    assert peak < 120e6  # numpy allocations; a whole read would be 800 MB (Int16) to 3.2 GB (float64)
    # Each source pixel covers 100x100 of the big raster, so an even sample sees the same distribution.
    land = small[small > 0].astype(np.float64)
    assert scale == pytest.approx(8100.0 / np.percentile(land, 99.0), rel=5e-3)


def test_sparse_gtiff_of_20000_squared(tmp_path):
    # Mostly-unwritten tiles read as nodata; one written tile holds all the land.
    path = tmp_path / "sparse.tif"
    ds = gdal.GetDriverByName("GTiff").Create(
        str(path), 20000, 20000, 1, gdal.GDT_Int16, ["TILED=YES", "SPARSE_OK=TRUE", "BLOCKXSIZE=512", "BLOCKYSIZE=512"]
    )
    ds.SetGeoTransform((0, 200, 0, 0, 0, -200))
    band = ds.GetRasterBand(1)
    band.SetNoDataValue(-32768)
    band.WriteArray(np.full((512, 512), 3000, dtype=np.int16), 4096, 4096)
    ds = None
    ds = gdal.Open(str(path))
    samples = sample_elevations(ds.GetRasterBand(1))
    assert 0 < samples.size and np.all(samples == 3000)  # only the land tile survives; holes are nodata
    assert fit_vertical_scale(ds.GetRasterBand(1), 1000.0, 8100.0) == pytest.approx(8100.0 / 2000.0)


@pytest.mark.skipif(not os.path.isdir(MARS_DIR), reason="shared MOLA rasters absent (../shared/data/dem/mars)")
def test_shared_mola_fit():
    ds = gdal.Open(os.path.join(MARS_DIR, "mars_mola_megdr4ppd_global_eqc.tif"))
    z = ds.GetRasterBand(1).ReadAsArray().astype(np.float64)  # 1440x720: small enough to check exactly
    scale = fit_vertical_scale(ds.GetRasterBand(1), -3000.0, 8100.0)
    assert scale == pytest.approx(8100.0 / np.percentile(z[z > -3000] + 3000, 99.0), rel=1e-12)
    assert 0.2 < scale < 1.0  # Mars' relief above -3 km is taller than Earth's: the fit must flatten it
