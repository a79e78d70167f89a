"""The elevation source: clear errors on bad input, windows on the processing grid, mirrored edges, fill."""

import numpy as np
import pytest
from osgeo import gdal

from terraform_plugin.core import source
from terraform_plugin.core.errors import InputError
from terraform_plugin.core.grid import processing_grid


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="not found"):
        source.open_dem(tmp_path / "nope.tif")


def test_text_file_is_not_a_raster(tmp_path):
    path = tmp_path / "notes.tif"
    path.write_text("elevation, but not really\n")
    with pytest.raises(InputError, match="not a raster GDAL can read"):
        source.open_dem(path)


def test_vector_file_is_not_a_raster(tmp_path):
    path = tmp_path / "points.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}')
    with pytest.raises(InputError, match="not a raster"):
        source.open_dem(path)


@pytest.mark.parametrize("band", [0, 3, -1, "1", 1.0])
def test_band_out_of_range(tmp_path, band, kit):
    path = kit.write_dem(tmp_path / "two.tif", None, bands=[kit.terrain(20, 20), kit.terrain(20, 20, seed=1)])
    with pytest.raises(InputError, match="has 2 bands"):
        dataset = source.open_dem(path)
        source.elevation_band(dataset, band)


def test_all_nodata_is_refused(tmp_path, kit):
    path = kit.write_dem(tmp_path / "empty.tif", np.full((300, 500), -9999.0), nodata=-9999.0)
    dataset = source.open_dem(path)  # keep it referenced: a gdal.Band does not keep its dataset alive
    band = source.elevation_band(dataset, 1)
    with pytest.raises(InputError, match="no valid elevations.*-9999"):
        source.check_has_data(band)


def test_all_nan_without_nodata_value_is_refused(tmp_path, kit):
    path = kit.write_dem(tmp_path / "nan.tif", np.full((40, 30), np.nan))
    with pytest.raises(InputError, match="no valid elevations"):
        dataset = source.open_dem(path)
        source.check_has_data(source.elevation_band(dataset, 1))


def test_sparse_valid_data_passes(tmp_path, kit):
    z = np.full((300, 500), -9999.0)
    z[100:140, 200:260] = 500.0
    path = kit.write_dem(tmp_path / "sparse.tif", z, nodata=-9999.0)
    dataset = source.open_dem(path)
    source.check_has_data(source.elevation_band(dataset, 1))  # no error


def _source(path, resolution_m):
    dataset = source.open_dem(path)
    grid = processing_grid(dataset, resolution_m)
    return source.ResampledSource(dataset, 1, grid), grid


def test_same_grid_gives_back_the_input_with_nan_for_nodata(tmp_path, kit):
    z = kit.terrain(90, 130)
    z[10:20, 30:50] = -9999.0
    src, grid = _source(kit.write_dem(tmp_path / "dem.tif", z, nodata=-9999.0), 200.0)
    assert (grid.width, grid.height) == (130, 90)
    out = src.read(0, 0, 130, 90)
    assert out.dtype == np.float32
    hole = z == -9999.0
    assert np.isnan(out[hole]).all() and not np.isnan(out[~hole]).any()
    np.testing.assert_allclose(out[~hole], z[~hole], atol=1e-3)


def test_second_band_is_resampled(tmp_path, kit):
    a, b = kit.terrain(40, 50), kit.terrain(40, 50, seed=7)
    path = kit.write_dem(tmp_path / "two.tif", None, bands=[a, b])
    dataset = source.open_dem(path)
    grid = processing_grid(dataset, 200.0)
    out = source.ResampledSource(dataset, 2, grid).read(0, 0, 50, 40)
    np.testing.assert_allclose(out, b, atol=1e-3)


def test_downsampling_averages_and_nodata_does_not_spread(tmp_path, kit):
    z = kit.terrain(200, 200)
    z[:, :100] = -9999.0  # west half nodata
    src, grid = _source(kit.write_dem(tmp_path / "dem.tif", z, pixel=100.0, nodata=-9999.0), 200.0)
    assert (grid.width, grid.height) == (100, 100)
    out = src.read(0, 0, 100, 100)
    assert np.isnan(out[:, :49]).all()
    # East of the edge every pixel is valid and close to the 2x2 mean of the input.
    mean = z.reshape(100, 2, 100, 2).mean(axis=(1, 3))
    assert not np.isnan(out[:, 51:]).any()
    assert np.abs(out[:, 51:] - mean[:, 51:]).max() < 0.02 * np.ptp(z[:, 100:])


@pytest.mark.parametrize("shape", [(90, 130), (5, 3), (1, 1)])
def test_windows_outside_the_grid_are_mirrored(tmp_path, shape, kit):
    h, w = shape
    z = kit.terrain(h, w) if min(shape) > 1 else np.array([[123.0]], dtype=np.float32)
    src, grid = _source(kit.write_dem(tmp_path / "dem.tif", z), 200.0)
    full = src.read(0, 0, w, h)
    x0, y0, ww, hh = -40, -100, w + 300, h + 256
    window = src.read(x0, y0, ww, hh)
    # Mirrored with the edge pixel repeated, periodically for windows far larger than the raster.
    rows = [(r % (2 * h)) if (r % (2 * h)) < h else 2 * h - 1 - (r % (2 * h)) for r in range(y0, y0 + hh)]
    cols = [(c % (2 * w)) if (c % (2 * w)) < w else 2 * w - 1 - (c % (2 * w)) for c in range(x0, x0 + ww)]
    np.testing.assert_array_equal(window, full[np.ix_(rows, cols)])
    if min(shape) > 1:  # spot-check against numpy's own symmetric padding
        padded = np.pad(full, ((100, 156), (40, 260)), mode="symmetric")
        np.testing.assert_array_equal(window, padded)


def test_release_cache_keeps_reads_identical(tmp_path, kit):
    src, _ = _source(kit.write_dem(tmp_path / "dem.tif", kit.terrain(60, 70)), 200.0)
    before = src.read(10, 5, 40, 30)
    src.release_cache()
    np.testing.assert_array_equal(src.read(10, 5, 40, 30), before)


def test_read_decimated_is_the_whole_grid_reduced(tmp_path, kit):
    z = kit.terrain(100, 160)
    src, _ = _source(kit.write_dem(tmp_path / "dem.tif", z), 200.0)
    small = src.read_decimated(80, 50)
    assert small.shape == (50, 80)
    np.testing.assert_allclose(small, z.reshape(50, 2, 80, 2).mean(axis=(1, 3)), rtol=1e-4, atol=0.5)


def test_fill_nodata_fills_near_holes_only():
    z = np.full((200, 200), 1000.0, dtype=np.float32)
    z[90:110, 90:110] = np.nan  # small hole: filled from all around
    z[:, :60] = np.nan  # a wide nodata band: only 10 px next to data get filled
    filled = source.fill_nodata(z, 10)
    np.testing.assert_allclose(filled[90:110, 90:110], 1000.0)
    assert not np.isnan(filled[:, 50:]).any()
    assert np.isnan(filled[:, :45]).all()
    assert np.isnan(z[95, 95])  # the input is left alone


def test_read_decimated_enlarges_coarse_sources_smoothly(tmp_path, kit):
    """A preview larger than a coarse source (MOLA's 15 km pixels) interpolates instead of repeating blocks."""
    z = kit.terrain(20, 20)
    src, _ = _source(kit.write_dem(tmp_path / "dem.tif", z), 200.0)
    big = src.read_decimated(200, 200)
    steps = np.abs(np.diff(big, axis=1))
    assert np.count_nonzero(steps < 1e-3) < steps.size * 0.2  # nearest/average would repeat 9 of 10 columns


@pytest.mark.parametrize(
    "dtype, nodata", [("Float32", -9999.0), ("Int16", -32768), ("Float32", None), ("Float64", -9999.0), ("Int32", -9999)]
)
def test_own_grid_is_read_straight_from_the_band_with_the_warpers_values(tmp_path, kit, dtype, nodata):
    # A grid that is the input's pixel grid skips the warper; it must give exactly what the (bilinear,
    # nodata-aware) warp gives there, nodata and mirrored windows included.
    rng = np.random.default_rng(3)
    z = rng.normal(1000, 800, (300, 410)) + np.linspace(0, 3000, 410)
    z[rng.random(z.shape) < 0.05] = np.nan if nodata is None else nodata
    path = kit.write_dem(tmp_path / "dem.tif", z, pixel=200.0, nodata=nodata)
    if dtype != "Float32":  # the DEM as stored, in its own type
        typed = str(tmp_path / f"{dtype}.tif")
        gdal.Translate(typed, path, outputType=gdal.GetDataTypeByName(dtype))
        path = typed
    dataset = source.open_dem(path)
    grid = processing_grid(dataset, 200.0)
    direct = source.ResampledSource(dataset, 1, grid)
    warped = source.ResampledSource(dataset, 1, grid)
    warped._direct = None  # the general path: the warped VRT
    assert direct._direct is not None
    for window in [(0, 0, 410, 300), (-50, -60, 300, 256), (300, 200, 256, 256)]:
        got, want = direct.read(*window), warped.read(*window)
        assert np.isnan(got).sum() > 0
        np.testing.assert_array_equal(got, want)


def test_a_grid_finer_than_the_input_is_warped(tmp_path, kit):
    dataset = source.open_dem(kit.write_dem(tmp_path / "dem.tif", kit.terrain(60, 80), pixel=200.0))
    assert source.ResampledSource(dataset, 1, processing_grid(dataset, 100.0))._direct is None
