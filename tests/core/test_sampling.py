"""Decimated looks at a whole band, in strips of bounded source (core/sampling.py), with real GDAL."""

import numpy as np
import pytest
from osgeo import gdal

from terraform_plugin.core import sampling
from rasters import crs_wkt


def tiled_int16(path, width, height):
    z = (np.arange(height)[:, None] * 7 + np.arange(width)[None, :] * 3) % 30000
    ds = gdal.GetDriverByName("GTiff").Create(str(path), width, height, 1, gdal.GDT_Int16,
                                              ["TILED=YES", "COMPRESS=DEFLATE"])
    ds.SetGeoTransform((500000.0, 200.0, 0.0, 4500000.0, 0.0, -200.0))
    ds.SetProjection(crs_wkt())
    ds.GetRasterBand(1).WriteArray(z.astype(np.int16))
    ds = None
    return gdal.Open(str(path))


@pytest.mark.parametrize("buf_h", [2100, 700, 333, 1])
def test_strips_tile_the_raster_like_one_read_and_stay_within_the_budget(tmp_path, monkeypatch, buf_h):
    monkeypatch.setattr(sampling, "STRIP_SOURCE_BYTES", 1 << 20)  # 174 rows of 3000 Int16: one block row each
    dataset = tiled_int16(tmp_path / "dem.tif", 3000, 2100)
    band = dataset.GetRasterBand(1)
    buf_w = max(1, 3000 * buf_h // 2100)
    strips = sampling.decimated_strips(band, buf_h)
    assert strips[0][0] == 0 and strips[0][2] == 0 and strips[-1][1] == buf_h and strips[-1][3] == 2100
    assert all(a[1] == b[0] and a[3] == b[2] for a, b in zip(strips, strips[1:]))  # side by side, no gap
    # each strip's source: one block row (256), plus the rounding of one buffer row
    assert all(y1 - y0 <= 256 + -(-2100 // buf_h) for _, _, y0, y1 in strips)
    if buf_h >= 16:
        assert len(strips) >= 2100 // 256 // 2
    whole = band.ReadAsArray(0, 0, 3000, 2100, buf_xsize=buf_w, buf_ysize=buf_h,
                             resample_alg=gdal.GRIORA_NearestNeighbour)
    band.FlushCache()
    before = gdal.GetCacheUsed()
    pieces = [sampling.read_strip(band, strip, buf_w) for strip in strips]
    assert gdal.GetCacheUsed() <= before  # each strip's blocks were dropped
    if 2100 % buf_h == 0:  # whole source rows per buffer row: the same samples as one read
        np.testing.assert_array_equal(np.concatenate(pieces), whole)
    else:  # a strip's nearest rows may be one source row away from one read's (the relief steps 7 a row)
        assert np.abs(np.concatenate(pieces).astype(int) - whole).max() <= 7


def test_parts_give_each_thread_a_strip_even_when_one_would_do(tmp_path):
    dataset = tiled_int16(tmp_path / "dem.tif", 500, 400)  # 400 kB: one strip by the budget
    band = dataset.GetRasterBand(1)
    assert len(sampling.decimated_strips(band, 400)) == 1
    strips = sampling.decimated_strips(band, 400, parts=2)
    assert [(r0, r1) for r0, r1, _, _ in strips] == [(0, 200), (200, 400)]
    assert sampling.decimated_strips(band, 1, parts=2) == [(0, 1, 0, 400)]  # one buffer row cannot be split


def test_a_wide_raster_gets_strips_of_one_block_row(tmp_path):
    # 40000 Float32 columns: 160 kB a row, a 256-row block row is 40 MB - over the 32 MB budget, so one block
    # row a strip (never less: a strip inside a block row would decompress that block row again)
    ds = gdal.GetDriverByName("GTiff").Create(str(tmp_path / "wide.tif"), 40000, 1024, 1, gdal.GDT_Float32,
                                              ["TILED=YES", "SPARSE_OK=YES"])
    ds = None
    dataset = gdal.Open(str(tmp_path / "wide.tif"))  # kept: a band does not keep its dataset alive
    band = dataset.GetRasterBand(1)
    strips = sampling.decimated_strips(band, 1024)
    assert [(y0, y1) for _, _, y0, y1 in strips] == [(0, 256), (256, 512), (512, 768), (768, 1024)]
