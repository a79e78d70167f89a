"""Overviews built from the stream (core.overviews) are GDAL's own AVERAGE overviews, pixel for pixel.

Checked against ``BuildOverviews("AVERAGE")`` of the same image with this GDAL: even and odd level sizes
(exact pairs and GDAL's fractional windows), transparent holes at odd offsets, images written in column
stripes (levels made stripe by stripe, the rest after the last stripe from the last of them; transparent areas
across the joins; odd widths; joins that cut a level's tiles, whose columns wait for the next stripe; joins at
odd columns, which keep GDAL's pass), and whole runs: one stripe and several, streamed, against GDAL's pass.
"""

import dataclasses
import math
import tracemalloc

import numpy as np
import pytest
from osgeo import gdal
from v1models import write_model

from rasters import gdal_average_overviews, overview_levels_of

from terraform_plugin.core import pipeline
from terraform_plugin.core.errors import OutputError
from terraform_plugin.core.grid import Grid
from terraform_plugin.core.overviews import OverviewStream, _Axis, stripe_levels
from terraform_plugin.core.writer import CREATION_OPTIONS, OutputWriter, overview_levels


def rgba(width, height, seed=0, holes=True):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (4, height, width), dtype=np.uint8)
    image[:3] = image[:3] // 4 + np.linspace(0, 180, width).astype(np.uint8)
    image[3] = 255
    if not holes:  # every pixel opaque: the run's ocean mode
        return image
    image[3, 37:211, 101:333] = 0  # a hole at odd offsets
    image[3, rng.random((height, width)) < 0.02] = 0  # and scattered transparent pixels
    if holes == "partial":  # alpha between 0 and 255 too (a run writes only 0 and 255; GDAL averages any)
        part = image[3, 150:, 200:]
        part[...] = np.where(part > 0, rng.integers(1, 256, part.shape), 0)
    return image


def create(path, image):
    _, height, width = image.shape
    return gdal.GetDriverByName("GTiff").Create(str(path), width, height, 4, gdal.GDT_Byte, list(CREATION_OPTIONS))


def write(dataset, x0, y0, planes):
    planes = np.ascontiguousarray(planes)
    _, h, w = planes.shape
    dataset.WriteRaster(x0, y0, w, h, planes, w, h, gdal.GDT_Byte, [1, 2, 3, 4], 1, w, w * h)


@pytest.mark.parametrize(
    "width, height, holes",
    [(1300, 1100, True), (1000, 700, True), (513, 300, True), (777, 1555, True), (1024, 512, True), (1300, 1100, False),
     (777, 1555, "partial"), (1000, 700, "partial")],
)
def test_streamed_levels_equal_gdals_average_overviews(tmp_path, width, height, holes):
    image = rgba(width, height, holes=holes)
    levels = overview_levels(width, height)
    assert levels
    want = gdal_average_overviews(tmp_path / "gdal.tif", image)

    streamed = create(tmp_path / "streamed.tif", image)
    assert streamed.BuildOverviews("NONE", levels) == 0
    stream = OverviewStream(streamed, write)
    for y0 in range(0, height, 256):  # block rows, as the run writes them
        rows = image[:, y0 : y0 + 256]
        write(streamed, 0, y0, rows)
        assert not stream.finished()
        stream.add(0, y0, rows)
    assert stream.finished()
    streamed = None

    got = overview_levels_of(tmp_path / "streamed.tif")
    assert len(got) == len(want) == len(levels)
    for level, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape
        assert (b[3] == 0).any() == bool(holes) or level == len(levels) - 1  # the holes reach the levels
        if holes == "partial":
            assert ((b[3] > 0) & (b[3] < 255)).any()
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
        stream.add(0, 256, image[:, 256:512])


def test_stripes_out_of_order_are_refused(tmp_path):
    image = rgba(1024, 600)
    dataset = create(tmp_path / "x.tif", image)
    dataset.BuildOverviews("NONE", overview_levels(1024, 600))
    stream = OverviewStream(dataset, write, [(0, 512), (512, 1024)])
    with pytest.raises(RuntimeError, match="out of order"):
        stream.add(512, 0, image[:, :256, 512:])  # the second stripe before the first
    for y0 in (0, 256):
        stream.add(0, y0, image[:, y0 : y0 + 256, :512])
    with pytest.raises(RuntimeError, match="out of order"):
        stream.add(512, 0, image[:, :256, 512:])  # the first is not finished
    with pytest.raises(RuntimeError, match="incomplete"):
        stream.finish(lambda *_: None)


def test_stripes_that_do_not_cover_the_grid_are_refused_and_leave_nothing(tmp_path, kit):
    grid = Grid(1024, 600, (500000.0, 10.0, 0.0, 4500000.0, 0.0, -10.0), kit.crs_wkt("EPSG:32633"))
    with pytest.raises(ValueError, match="do not cover"):
        OutputWriter(tmp_path / "out.tif", grid, {}, [(0, 512), (512, 1000)])
    assert list(tmp_path.iterdir()) == []


def striped_image(width, height, stripe, holes):
    """``rgba`` with, when ``holes``, transparent areas across every stripe join at odd rows and columns (one
    reaching the bottom edge) and a fully transparent 8 x 8 block astride the first join."""
    image = rgba(width, height, holes=holes)
    if holes:
        for k, join in enumerate(range(stripe, width, stripe)):
            top = 29 + 97 * k % max(1, height - 200)
            image[3, top : top + 151, join - 37 : join + 53] = 0
            image[3, height - 61 :, join - 3 : join + 5] = 0
        if width > stripe:
            image[3, 64:72, stripe - 4 : stripe + 4] = 0
    return image


# (width, height, stripe width, holes): levels streamed per stripe, then the rest from the last of them.
STRIPED = [
    (2048, 1300, 512, True),  # levels 1-3 per stripe; level 2's and 3's joins cut their tiles
    (4096, 700, 1024, True),  # levels 1-2 per stripe, joins on their tiles
    (4096, 2100, 2048, True),  # levels 1-4 per stripe (an 8192 stripe's 1-5, scaled down); level 4's joins cut
    (2050, 1100, 512, True),  # a last stripe 2 px wide; level 1 is 1025 px wide: level 2's windows odd
    (514, 600, 512, True),  # one stripe + 2 px
    (1536, 2100, 512, False),  # every pixel opaque (ocean mode)
    (2049, 600, 512, True),  # odd width: level 1's windows at the joins take a column of the stripe before
    (513, 600, 512, True),  # one stripe + 1 px
    (4097, 2100, 1024, True),  # odd widths at every level: levels 1-4 per stripe
    (4099, 1555, 2048, "partial"),  # odd, odd height, alpha between 0 and 255; levels 1-4 per stripe
    (3072, 700, 768, True),  # stripes of 768: level 1's joins at 384 cut its tiles
    (5376, 2100, 1792, True),  # the engine's kept-centre stripes (1792 px centres): every level's joins cut
    (3584, 2100, 1792, True),  # one join at 1792: levels 1-4 wait there; the levels of one stripe's width
    (2048, 1100, 64, True),  # stripes narrower than a level-1 tile: its columns wait over several stripes
    (3 * 378 + 100, 700, 378, True),  # level 1 per stripe (joins at 378, 756, 1134: even, not x4), 2 after
    (1500, 700, 375, True),  # joins at odd columns: GDAL's pass
]


@pytest.mark.parametrize("width, height, stripe, holes", STRIPED)
def test_striped_writes_stream_gdals_average_overviews(tmp_path, kit, width, height, stripe, holes):
    image = striped_image(width, height, stripe, holes)
    want = gdal_average_overviews(tmp_path / "gdal.tif", image)
    stripes = [(x0, min(width, x0 + stripe)) for x0 in range(0, width, stripe)]
    grid = Grid(width, height, (500000.0, 10.0, 0.0, 4500000.0, 0.0, -10.0), kit.crs_wkt("EPSG:32633"))
    shares = []
    with OutputWriter(tmp_path / "streamed.tif", grid, {}, stripes) as out:
        streamed = out.streams_overviews
        for x0, x1 in stripes:  # as the run writes them: stripe after stripe, block rows top to bottom
            for y0 in range(0, height, 256):
                rows = image[:, y0 : y0 + 256, x0:x1]
                out.write_planes(x0, y0, rows)
                if streamed:
                    out.add_to_overviews(x0, y0, rows)
        out.build_overviews(shares.append)
        if streamed:
            stream = out._stream
            assert stream.streamed >= 1
            assert stream.finished()
        out.commit()
    assert streamed == (stripe % 2 == 0)
    assert shares and shares[-1] == 1.0
    got = overview_levels_of(tmp_path / "streamed.tif")
    assert len(got) == len(want) == len(overview_levels(width, height)) >= 1
    if holes:
        assert (want[0][3] == 0).any()
    for level, (a, b) in enumerate(zip(got, want)):
        assert a.shape == b.shape
        np.testing.assert_array_equal(a, b, err_msg=f"level {level}")
    np.testing.assert_array_equal(gdal.Open(str(tmp_path / "streamed.tif")).ReadAsArray(), image)


def test_what_the_stream_holds_grows_with_the_height_by_the_columns_a_join_cuts_at_most(tmp_path):
    """Python-side peak (numpy's arrays, tracemalloc) while an odd-width image is streamed in stripes of 512 -
    kept columns, the columns of the tiles the join cuts (levels 2 and 3 here) and all - for an image 4 times as
    high (the same levels: the width is the smaller side): it grows by less than a tile's width of 4 bytes per
    row of each level, never by a whole level."""
    peaks, heights = {}, {}
    for height in (2048, 8192):
        width, stripes = 1025, [(0, 512), (512, 1025)]
        dataset = gdal.GetDriverByName("GTiff").Create(str(tmp_path / f"{height}.tif"), width, height, 4,
                                                       gdal.GDT_Byte, list(CREATION_OPTIONS))
        levels = overview_levels(width, height)
        assert dataset.BuildOverviews("NONE", levels) == 0
        stream = OverviewStream(dataset, write, stripes)
        assert stream.streamed == len(levels) == 3
        assert [seams is not None for seams in stream.seams] == [False, True, True]  # joins at 256, 128, 64
        heights[height] = [size[1] for size in stream.sizes[1:]]
        rng = np.random.default_rng(0)
        tracemalloc.start()
        for x0, x1 in stripes:
            for y0 in range(0, height, 256):
                rows = rng.integers(0, 256, (4, 256, x1 - x0), dtype=np.uint8)
                rows[3, :, ::7] = 0
                stream.add(x0, y0, rows)
                del rows
        stream.finish(lambda ds, y0, n: ds.ReadAsArray(0, y0, ds.RasterXSize, n))
        peaks[height] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert stream.finished()
        dataset = None
    more_rows = sum(b - a for a, b in zip(heights[2048], heights[8192]))
    assert peaks[8192] < peaks[2048] + 4 * 256 * more_rows + 64 * 1024
    assert peaks[8192] - peaks[2048] < 4 * 513 * (heights[8192][0] - heights[2048][0])  # less than level 1 grew


def test_each_overview_tile_is_written_once_where_joins_cut_the_tiles(tmp_path):
    """Kept-centre stripes of 1792 px: no join falls on a tile of any level, yet every level's tiles are
    written once each, whole (the output's right and bottom edges aside), and the levels are GDAL's."""
    width, height, stripe = 5376, 1300, 1792
    image = striped_image(width, height, stripe, True)
    want = gdal_average_overviews(tmp_path / "gdal.tif", image)
    dataset = create(tmp_path / "streamed.tif", image)
    levels = overview_levels(width, height)
    assert dataset.BuildOverviews("NONE", levels) == 0
    written = []

    def recording(level, x0, y0, planes):
        written.append((level.RasterXSize, x0, y0, planes.shape[2], planes.shape[1]))
        write(level, x0, y0, planes)

    stripes = [(x0, x0 + stripe) for x0 in range(0, width, stripe)]
    stream = OverviewStream(dataset, recording, stripes)
    assert stream.streamed == len(levels) == 3 and all(stream.seams)
    for x0, x1 in stripes:
        for y0 in range(0, height, 256):
            rows = image[:, y0 : y0 + 256, x0:x1]
            write(dataset, x0, y0, rows)
            stream.add(x0, y0, rows)
    assert stream.finished()
    dataset = None
    for level_width, level_height in [(o.shape[2], o.shape[1]) for o in want]:
        tiles = [(x0 + dx, y0) for w_, x0, y0, w, h in written if w_ == level_width for dx in range(0, w, 256)]
        assert sorted(tiles) == sorted(set(tiles))  # once each
        assert len(tiles) == math.ceil(level_width / 256) * math.ceil(level_height / 256)  # all of them
        for w_, x0, _, w, _ in written:
            assert x0 % 256 == 0 and (w % 256 == 0 or x0 + w == w_)  # whole tiles but at the right edge
    for level, (a, b) in enumerate(zip(overview_levels_of(tmp_path / "streamed.tif"), want)):
        np.testing.assert_array_equal(a, b, err_msg=f"level {level}")


def test_stripe_levels_are_those_on_whose_columns_every_join_falls():
    assert stripe_levels(3, []) == 3  # one stripe: every level
    assert stripe_levels(7, [8192 * k for k in range(1, 6)]) == 7  # 8192 = 2^13
    assert stripe_levels(9, [1792 * k for k in range(1, 6)]) == 8  # 1792 = 7 x 2^8: the engine's centres
    assert stripe_levels(3, [768 * k for k in range(1, 16)]) == 3
    assert stripe_levels(4, [378, 756]) == 1  # 378 = 2 x 189
    assert stripe_levels(3, [256, 375]) == 0  # an odd column: GDAL's pass


@pytest.mark.parametrize("nodata_mode, width", [("transparent", 1300), ("ocean", 1300), ("transparent", 1301)])
def test_a_run_in_stripes_streams_the_overviews_of_gdals_pass(tmp_path, kit, nodata_mode, width):
    z = kit.terrain(1100, width)
    z[101:163, 455:601] = -9999.0  # across the first stripe join (512): transparent in that mode
    dem = kit.write_dem(tmp_path / "dem.tif", z, nodata=-9999.0)
    identity = write_model(tmp_path / "identity.onnx")
    striped = pipeline.TerraformRequest(dem, str(tmp_path / "striped.tif"), identity, nodata_mode=nodata_mode,
                                        threads=1, batch_size=4, stripe_width=512)
    result = pipeline.run(striped)
    assert result.width == width > 1024  # three stripes; level 1 streamed stripe by stripe
    assert result.profile["overviews"]["visits"] > 1
    whole = pipeline.run(dataclasses.replace(striped, output_path=str(tmp_path / "whole.tif"), stripe_width=8192))
    assert whole.profile["overviews"]["visits"] > 1  # one stripe: every level streamed whole-width

    image = gdal.Open(str(tmp_path / "striped.tif")).ReadAsArray()
    np.testing.assert_array_equal(image, gdal.Open(str(tmp_path / "whole.tif")).ReadAsArray())
    want = gdal_average_overviews(tmp_path / "gdal.tif", image)  # GDAL's own pass over the same pixels
    got, whole_levels = overview_levels_of(tmp_path / "striped.tif"), overview_levels_of(tmp_path / "whole.tif")
    assert len(got) == len(want) == len(whole_levels) == 3  # all three per stripe (joins at 512 and 1024)
    if nodata_mode == "transparent":
        assert (want[0][3] == 0).any()
    for level, (a, b, c) in enumerate(zip(got, want, whole_levels)):
        np.testing.assert_array_equal(a, b, err_msg=f"level {level}")
        np.testing.assert_array_equal(c, b, err_msg=f"level {level}")


def test_a_run_cancelled_once_its_overviews_are_made_leaves_nothing(tmp_path, kit):
    """Every level is streamed (the stripes join on columns of all three): cancelling when the overviews report
    their end, the last moment before the output is moved into place, still leaves the earlier result alone."""
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(1100, 1300))
    identity = write_model(tmp_path / "identity.onnx")
    (tmp_path / "out.tif").write_bytes(b"an earlier result")
    request = pipeline.TerraformRequest(dem, str(tmp_path / "out.tif"), identity, threads=1, batch_size=4,
                                        stripe_width=512)
    percents = []

    def cancelled():  # once the overviews report progress (past the chips' share)
        return any(p > pipeline.INFERENCE_SHARE for p in percents)

    with pytest.raises(pipeline.Cancelled):
        pipeline.run(request, progress=percents.append, cancelled=cancelled)
    assert percents[-1] == 99.0  # the overviews' end: nothing was left to make after the stripes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dem.tif", "identity.onnx", "out.tif"]
    assert (tmp_path / "out.tif").read_bytes() == b"an earlier result"


def test_overviews_cancelled_while_the_levels_after_the_stripes_are_made_leave_nothing(tmp_path, kit):
    """Stripes of 378 px stream level 1 only (378 = 2 x 189): levels 2 and 3 are made from it after the last
    stripe, with progress; a cancel there stops them and the temporary file goes."""
    width, height, stripe = 1234, 1100, 378
    image = striped_image(width, height, stripe, True)
    grid = Grid(width, height, (500000.0, 10.0, 0.0, 4500000.0, 0.0, -10.0), kit.crs_wkt("EPSG:32633"))
    stripes = [(x0, min(width, x0 + stripe)) for x0 in range(0, width, stripe)]
    shares = []
    with pytest.raises(OutputError, match="cancelled"):
        with OutputWriter(tmp_path / "out.tif", grid, {}, stripes) as out:
            assert out._stream.streamed == 1 < len(overview_levels(width, height))
            for x0, x1 in stripes:
                for y0 in range(0, height, 256):
                    rows = image[:, y0 : y0 + 256, x0:x1]
                    out.write_planes(x0, y0, rows)
                    out.add_to_overviews(x0, y0, rows)
            out.build_overviews(lambda f: shares.append(f) or False)  # stop at the first report
    assert 0 < shares[-1] < 1.0
    assert list(tmp_path.iterdir()) == []