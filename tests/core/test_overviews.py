"""Overviews built from the stream (core.overviews) are GDAL's own AVERAGE overviews, pixel for pixel.

Checked against ``BuildOverviews("AVERAGE")`` of the same image with this GDAL: even and odd level sizes
(exact pairs and GDAL's fractional windows), transparent holes at odd offsets, and a whole run (one stripe,
streamed) against the same run split into stripes (written in columns, so overviews by GDAL's pass).
"""

import math

import numpy as np
import pytest
from osgeo import gdal
from training.contract_models import write_model

from terraform_plugin.core import pipeline
from terraform_plugin.core.overviews import OverviewStream, _Axis
from terraform_plugin.core.writer import CREATION_OPTIONS, overview_levels


def rgba(width, height, seed=0, holes=True):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (4, height, width), dtype=np.uint8)
    image[:3] = image[:3] // 4 + np.linspace(0, 180, width).astype(np.uint8)
    image[3] = 255
    if not holes:  # every pixel opaque: the run's ocean mode
        return image
    image[3, 37:211, 101:333] = 0  # a hole at odd offsets
    image[3, rng.random((height, width)) < 0.02] = 0  # and scattered transparent pixels
    return image


def create(path, image):
    _, height, width = image.shape
    return gdal.GetDriverByName("GTiff").Create(str(path), width, height, 4, gdal.GDT_Byte, list(CREATION_OPTIONS))


def write(dataset, y0, planes):
    planes = np.ascontiguousarray(planes)
    _, h, w = planes.shape
    dataset.WriteRaster(0, y0, w, h, planes, w, h, gdal.GDT_Byte, [1, 2, 3, 4], 1, w, w * h)


def levels_of(path):
    ds = gdal.Open(str(path))
    band = ds.GetRasterBand(1)
    return [
        np.stack([ds.GetRasterBand(b).GetOverview(i).ReadAsArray() for b in range(1, 5)])
        for i in range(band.GetOverviewCount())
    ]


@pytest.mark.parametrize(
    "width, height, holes",
    [(1300, 1100, True), (1000, 700, True), (513, 300, True), (777, 1555, True), (1024, 512, True), (1300, 1100, False)],
)
def test_streamed_levels_equal_gdals_average_overviews(tmp_path, width, height, holes):
    image = rgba(width, height, holes=holes)
    levels = overview_levels(width, height)
    assert levels
    reference = create(tmp_path / "gdal.tif", image)
    write(reference, 0, image)
    assert reference.BuildOverviews("AVERAGE", levels) == 0
    reference = None

    streamed = create(tmp_path / "streamed.tif", image)
    assert streamed.BuildOverviews("NONE", levels) == 0
    stream = OverviewStream(streamed, write)
    for y0 in range(0, height, 256):  # block rows, as the run writes them
        rows = image[:, y0 : y0 + 256]
        write(streamed, y0, rows)
        assert not stream.finished()
        stream.add(y0, rows)
    assert stream.finished()
    streamed = None

    got, want = levels_of(tmp_path / "streamed.tif"), levels_of(tmp_path / "gdal.tif")
    assert len(got) == len(want) == len(levels)
    for level, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape
        assert (b[3] == 0).any() == holes or level == len(levels) - 1  # the holes reach the levels
        np.testing.assert_array_equal(a, b, err_msg=f"level {level}")


def windows_one_by_one(n_src, n_dst):
    """GDAL's AVERAGE windows pixel by pixel (the loop ``_Axis`` computes with arrays): first, last, weights."""
    ratio = n_src / n_dst
    for i in range(n_dst):
        lo_f, hi_f = i * ratio, (i + 1) * ratio
        lo, hi = int(lo_f + 1e-8), int(math.ceil(hi_f - 1e-8))
        hi = min(hi + (hi == lo), n_src)
        w = [1.0] * (hi - lo)
        if hi - lo > 1:
            w[0], w[-1] = 1 - (lo_f - lo), 1 - (hi - hi_f)
        yield lo, hi, w


@pytest.mark.parametrize("n_src", [1, 2, 3, 7, 256, 257, 511, 1300, 1555, 12289, 65537])
def test_axis_windows_are_gdals_pixel_by_pixel(n_src):
    for n_dst in {(n_src + 1) // 2, max(1, n_src // 3), 1}:
        axis = _Axis(n_src, n_dst)
        for i, (lo, hi, w) in enumerate(windows_one_by_one(n_src, n_dst)):
            assert (axis.first[i], axis.last[i]) == (lo, hi)
            assert list(axis.index[i, : len(w)]) == list(range(lo, hi))
            assert list(axis.weight[i]) == w + [0.0] * (axis.weight.shape[1] - len(w))  # the same bits


def test_rows_out_of_order_are_refused(tmp_path):
    image = rgba(600, 600)
    dataset = create(tmp_path / "x.tif", image)
    dataset.BuildOverviews("NONE", overview_levels(600, 600))
    stream = OverviewStream(dataset, write)
    with pytest.raises(RuntimeError, match="out of order"):
        stream.add(256, image[:, 256:512])


@pytest.mark.parametrize("nodata_mode", ["transparent", "ocean"])
def test_a_streamed_run_has_the_overviews_of_gdals_pass(tmp_path, kit, nodata_mode):
    z = kit.terrain(701, 913)
    z[101:163, 333:597] = -9999.0  # transparent in that mode
    dem = kit.write_dem(tmp_path / "dem.tif", z, nodata=-9999.0)
    identity = write_model(tmp_path / "identity.onnx")
    streamed = pipeline.TerraformRequest(dem, str(tmp_path / "streamed.tif"), identity, nodata_mode=nodata_mode,
                                         threads=1, batch_size=4)
    result = pipeline.run(streamed)
    assert result.profile["overviews"]["visits"] > 1  # built block row by block row
    # Stripes of 256 columns: the rows come in columns, so GDAL's pass builds the overviews.
    striped = pipeline.TerraformRequest(dem, str(tmp_path / "striped.tif"), identity, nodata_mode=nodata_mode,
                                        threads=1, batch_size=4, stripe_width=256)
    assert pipeline.run(striped).profile["overviews"]["visits"] == 1
    a, b = gdal.Open(str(tmp_path / "streamed.tif")), gdal.Open(str(tmp_path / "striped.tif"))
    np.testing.assert_array_equal(a.ReadAsArray(), b.ReadAsArray())
    got, want = levels_of(tmp_path / "streamed.tif"), levels_of(tmp_path / "striped.tif")
    assert len(got) == len(want) == 2
    if nodata_mode == "transparent":
        assert (want[0][3] == 0).any()
    for level, (x, y) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(x, y, err_msg=f"level {level}")
