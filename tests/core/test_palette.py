"""The guide's palette held (core.palette): a guided run's colours at the guide's cell scale move to the guide's,
the detail within the cells stays the model's, the strength scales the move, nothing moves where the guide has
no colour; through the real engine (GDAL, onnxruntime) with the random U-Net of tests/v2models.py."""

import numpy as np
import pytest
from osgeo import gdal

import guides
import v2models
from terraform_plugin.core import pipeline
from terraform_plugin.core.errors import InputError
from terraform_plugin.core.guide import PAD_CELLS, GuidePlanes
from terraform_plugin.core.palette import PaletteHold

ORIGIN = (500000.0, 4600000.0)  # UTM 33N, 200 m pixels: about 15.0-15.5°E, 41.3-41.55°N
COLOUR = (170, 120, 60)  # the uniform guide's
CELL = 64  # the unet's guide cells


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    return v2models.write_unet(tmp_path_factory.mktemp("models") / "unet.onnx")


def uniform_guide(path, cols=guides.SIZE[0]):
    rgb = np.zeros((3, guides.SIZE[1], cols), np.uint8)
    rgb[:] = np.array(COLOUR, np.uint8)[:, None, None]
    return guides.write(path, rgb)


def run(dem, out, model, **kw):
    logs = []
    kw.setdefault("tile_size", 512)
    request = pipeline.TerraformRequest(str(dem), str(out), model, threads=1, **kw)
    pipeline.run(request, log=logs.append)
    ds = gdal.Open(str(out))
    return ds.ReadAsArray().astype(np.float64), ds.GetMetadata(), logs


def cell_means(rgb, cells=1):
    """Means over blocks of ``cells`` x ``cells`` guide cells from the grid's origin (whole blocks only)."""
    size = CELL * cells
    rows, cols = rgb.shape[1] // size, rgb.shape[2] // size
    return rgb[:3, : rows * size, : cols * size].reshape(3, rows, size, cols, size).mean(axis=(2, 4))


def test_the_colours_at_the_cell_scale_become_the_guides_and_the_detail_stays(tmp_path, kit, unet):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(448, 576, seed=5), origin=ORIGIN)
    guide = uniform_guide(tmp_path / "guide.tif")
    own, meta0, _ = run(dem, tmp_path / "own.tif", unet, guide_path=guide, guide_strength=0.0)
    held, meta1, logs = run(dem, tmp_path / "held.tif", unet, guide_path=guide)
    half, _, _ = run(dem, tmp_path / "half.tif", unet, guide_path=guide, guide_strength=0.5)
    colour = np.array(COLOUR, np.float64)[:, None, None]
    # Blocks of 3 x 3 cells (12.8 km): the model's own palette is far from the guide's, the held one on it.
    own_error = np.abs(cell_means(own, 3) - colour).mean()
    held_error = np.abs(cell_means(held, 3) - colour).mean()
    assert own_error > 10 and held_error < 1, (own_error, held_error)
    # What the hold adds varies from cell to cell but is smooth (bilinear between cell centres): second
    # differences of the change are rounding only, so the picture within the cells is the model's.
    change = held[:3] - own[:3]
    assert np.abs(change).mean() > 15 and np.ptp(cell_means(change), axis=(1, 2)).min() > 10
    for axis in (1, 2):
        assert np.quantile(np.abs(np.diff(change, 2, axis=axis)), 0.99) <= 2
    # Half the strength, half the move (to rounding; where the full move is not clipped at 0 or 255).
    unclipped = (held[:3] > 0) & (held[:3] < 255)
    assert unclipped.mean() > 0.9
    assert np.abs((half[:3] - own[:3]) - change / 2)[unclipped].max() <= 1.5
    assert (held[3] == own[3]).all()  # the DEM's validity is untouched
    assert meta1["TERRAFORM_GUIDE_STRENGTH"] == "1.0" and meta0["TERRAFORM_GUIDE_STRENGTH"] == "0.0"
    assert any("Guide strength 1" in line and "64 px cells" in line for line in logs)
    assert meta1["TERRAFORM_MARGIN"] == "128" and meta0["TERRAFORM_MARGIN"] == "24"  # R + a cell, on the cells


def test_nothing_moves_where_the_guide_has_no_colour(tmp_path, kit, unet):
    """The guide stops at 15.7°E, about half way across the DEM: east of it, beyond the cells that reach across the
    guide's edge, the held picture is the model's own."""
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(256, 576, seed=6), origin=ORIGIN)
    guide = uniform_guide(tmp_path / "guide.tif", cols=int(round((15.7 - guides.GT[0]) / guides.GT[1])))
    own, _, _ = run(dem, tmp_path / "own.tif", unet, guide_path=guide, guide_strength=0.0)
    held, _, _ = run(dem, tmp_path / "held.tif", unet, guide_path=guide)
    ds = gdal.Open(str(tmp_path / "held.tif"))
    x, y = guides.block_centres(ds.GetGeoTransform(), 576, 256, stride=1)
    lon, _ = guides.lonlat("EPSG:32633", x, y)
    east = lon > 15.7 + 2.5 * CELL * 200 / 84000  # 2.5 cells of ~0.15° each beyond the edge
    west = lon < 15.7 - 2.5 * CELL * 200 / 84000
    assert east.sum() > 10000 and west.sum() > 10000
    assert (held[:3, east] == own[:3, east]).all()
    assert np.abs(held[:3, west] - own[:3, west]).mean() > 10


def guide_of(field, cell, rows, cols):
    """GuidePlanes of a colour ``field(x, y)`` (grid pixels), every cell covered: a linear field's cell mean is
    its value at the cell's centre."""
    ys = (np.arange(-PAD_CELLS, rows + PAD_CELLS) + 0.5) * cell
    xs = (np.arange(-PAD_CELLS, cols + PAD_CELLS) + 0.5) * cell
    colour = field(xs[None, :], ys[:, None])
    return GuidePlanes(colour, np.ones(colour.shape[1:], np.float32), cell)


def test_a_linear_palette_is_matched_exactly_and_the_detail_kept():
    """A model whose picture is the guide's (linear) colour field, off by a linear field of its own, plus detail
    that averages to zero in every cell: held, the error is gone and the detail untouched (cell means and their
    bilinear interpolation are exact on linear fields, so anything else is a wrong cell or position)."""
    cell, scale, offset = 16, 127.5, 127.5

    def field(x, y):  # 0-255
        return np.stack([60 + 0.2 * x + 0 * y, 90 + 0.1 * y + 0 * x, 40 + 0.05 * (x + y)]).astype(np.float32)

    guide = guide_of(field, cell, 20, 24)
    hold = PaletteHold(guide, 1.0, (scale, offset))
    x0, y0, rows, cols, margin = 64, 32, 160, 192, 32  # a tile inside the grid, on the cells
    yy, xx = np.mgrid[y0:y0 + rows, x0:x0 + cols] + 0.5
    detail = np.where((xx + yy).astype(int) % 2, 12.0, -12.0)  # a checkerboard: 0 in every cell
    error = np.stack([25.0 + 0.1 * xx, -30.0 - 0.05 * yy, 10.0 + 0 * xx])
    picture = field(xx, yy) + detail + error
    tile = ((picture - offset) / scale).astype(np.float32)  # model units
    got = hold.centre(tile, x0, y0, margin, rows - 2 * margin, cols - 2 * margin) * scale + offset
    centre = (slice(None), slice(margin, rows - margin), slice(margin, cols - margin))
    np.testing.assert_allclose(got, (field(xx, yy) + detail)[centre], atol=1e-3)
    half = PaletteHold(guide, 0.5, (scale, offset)).centre(tile, x0, y0, margin, rows - 2 * margin, cols - 2 * margin)
    np.testing.assert_allclose(half * scale + offset - got, error[centre] / 2, atol=1e-3)
    with pytest.raises(ValueError, match="not on 16 px cells"):
        hold.centre(tile, x0 + 8, y0, margin, rows - 2 * margin, cols - 2 * margin)


@pytest.mark.parametrize("strength", [-0.1, 1.5, float("nan"), True, "1"])
def test_a_strength_outside_0_to_1_is_refused(tmp_path, kit, unet, strength):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 64), origin=ORIGIN)
    guide = uniform_guide(tmp_path / "guide.tif")
    with pytest.raises(InputError, match="guide strength must be a number from 0"):
        run(dem, tmp_path / "out.tif", unet, guide_path=guide, guide_strength=strength)
    assert not (tmp_path / "out.tif").exists()


def test_cells_that_are_no_power_of_two_keep_tiles_stripes_and_crops_agreeing(tmp_path, kit):
    """Guide cells of 48 px with the unet's A = 8: tiles on multiples of lcm(8, 48) = 48, columns' centres on
    lcm(256, 48) = 768 px, margins R + 48 rounded to 96; tile sizes, stripes and a crop by 96 px agree."""
    specs = v2models.input_specs(("latitude", "look", "guide_rgb", "guide_mask"))
    for spec in specs:
        if spec["kind"] == "guide_rgb":
            spec["coarse_px"] = 48
    model = v2models.write_unet(tmp_path / "unet48.onnx", specs=specs)
    z = kit.terrain(400, 1700, seed=9)
    dem = kit.write_dem(tmp_path / "dem.tif", z, origin=ORIGIN)
    guide = guides.write(tmp_path / "guide.tif")  # colours varying with longitude and latitude
    base, meta, _ = run(dem, tmp_path / "a.tif", model, guide_path=guide, tile_size=0)
    assert meta["TERRAFORM_MARGIN"] == "96"
    narrow, _, _ = run(dem, tmp_path / "b.tif", model, guide_path=guide, tile_size=1248, stripe_width=768)
    assert np.abs(narrow - base).max() <= 1
    crop = kit.write_dem(tmp_path / "crop.tif", z[96:, 96:], origin=(ORIGIN[0] + 96 * 200.0, ORIGIN[1] - 96 * 200.0))
    cropped, _, _ = run(crop, tmp_path / "c.tif", model, guide_path=guide, tile_size=0)
    r = v2models.UNET_RADIUS + 72  # R + 1.5 cells
    h, w = base.shape[1:]
    assert np.abs(base[:, 96 + r : h - r, 96 + r : w - r] - cropped[:, r : h - 96 - r, r : w - 96 - r]).max() <= 1
