"""The streamed run end to end: real GDAL, real onnxruntime, contract models from tests/v1models.py.

An identity model must give back the colourised DEM bit for bit - across chip overlaps, stripe joins, odd
sizes and rasters smaller than one chip - so every seam, shift or darkened edge would show as a mismatch.
"""

import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper
from v1models import contract_metadata, write_model
from osgeo import gdal

from terraform_plugin.core import pipeline
from terraform_plugin.core.chips import ChipLayout
from terraform_plugin.core.errors import Cancelled, InputError, ModelError, OutputError
from terraform_plugin.core.plan import plan_stripes
from terraform_plugin.core.request import STRIPE_WIDTH
from terraform_plugin.core.schema import stamp
from terraform_plugin.core.ramp import SEA_RGB, training_ramp
from terraform_plugin.core.relief import fit_target_m, fit_vertical_scale
from terraform_plugin.core.version import VERSION

IAU_MARS_GEOGRAPHIC = "IAU_2015:49900"


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("models") / "identity.onnx")


@pytest.fixture(scope="module")
def negate(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("models") / "negate.onnx", op="negate")


@pytest.fixture(scope="module")
def six_channel_model(tmp_path_factory):
    """Declares the contract's [N, 3, 256, 256] output but returns 6 channels: fails at the first batch."""
    x = helper.make_tensor_value_info("dem_rgb", TensorProto.FLOAT, ["N", 3, 256, 256])
    y = helper.make_tensor_value_info("satellite_rgb", TensorProto.FLOAT, ["N", 6, 256, 256])
    node = helper.make_node("Concat", ["dem_rgb", "dem_rgb"], ["satellite_rgb"], axis=1)
    model = helper.make_model(helper.make_graph([node], "bad", [x], [y]), opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    stamp(model, contract_metadata())
    path = tmp_path_factory.mktemp("models") / "six.onnx"
    onnx.save(model, str(path))
    return str(path)


def request(dem, out, model, **kw):
    kw.setdefault("threads", 1)
    return pipeline.TerraformRequest(str(dem), str(out), model, **kw)


def files(folder):
    return sorted(os.listdir(folder))


@pytest.mark.parametrize(
    "shape, overlap, stripe",
    [((457, 613), 64, 8192), ((457, 613), 64, 256), ((300, 1100), 0, 512), ((333, 517), 128, 256), ((23, 37), 64, 8192)],
)
def test_identity_reproduces_the_colourised_dem_exactly(tmp_path, kit, identity, shape, overlap, stripe):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(*shape))
    out = tmp_path / "out.tif"
    result = pipeline.run(request(dem, out, identity, overlap=overlap, stripe_width=stripe, batch_size=3))
    rgb, valid, grid = kit.expected(dem, 200.0)
    assert valid.all() and (result.width, result.height) == (grid.width, grid.height) == shape[::-1]
    got = kit.read_rgba(out)
    np.testing.assert_array_equal(got[..., :3], rgb)
    assert (got[..., 3] == 255).all()
    assert result.chips == ChipLayout.build(shape[1], shape[0], 256, overlap).count
    assert files(tmp_path) == ["dem.tif", "out.tif"]
    # The per-stage counters saw every stage of the run, each chip through the model once.
    assert {"read", "colourise", "batch", "infer", "blend", "rows", "write"} <= set(result.profile)
    assert result.profile["infer"]["visits"] == sum(-(-n // 3) for n in _chips_per_row(result, overlap, stripe))


def _chips_per_row(result, overlap, stripe):
    layout = ChipLayout.build(result.width, result.height, 256, overlap)
    return [len(s.columns) for s in plan_stripes(layout, stripe) for _ in layout.ys]


def test_negate_model_inverts_every_pixel(tmp_path, kit, negate):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(300, 420, seed=3))
    pipeline.run(request(dem, tmp_path / "out.tif", negate))
    rgb, _, _ = kit.expected(dem, 200.0)
    np.testing.assert_array_equal(kit.read_rgba(tmp_path / "out.tif")[..., :3], 255 - rgb)


def test_georeference_and_traceable_metadata(tmp_path, kit, identity):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(120, 150), pixel=100.0)
    logs = []
    result = pipeline.run(request(dem, tmp_path / "out.tif", identity, sea_level=-200.0, vertical_scale=0.5),
                          log=logs.append)
    out = gdal.Open(str(tmp_path / "out.tif"))
    _, _, grid = kit.expected(dem, 200.0)
    assert out.GetGeoTransform() == pytest.approx(grid.geotransform, abs=1e-9)
    assert out.GetGeoTransform()[1] == 200.0 and (out.RasterXSize, out.RasterYSize) == (75, 60)
    assert out.GetProjection() == gdal.Open(dem).GetProjection()
    meta = out.GetMetadata()
    assert meta["TERRAFORM_MODEL"] == "test-identity" and meta["TERRAFORM_MODEL_FILE"] == "identity.onnx"
    assert meta["TERRAFORM_MODEL_VERSION"] == "0" and len(meta["TERRAFORM_MODEL_SHA256"]) == 64
    assert float(meta["TERRAFORM_SEA_LEVEL"]) == -200.0 and float(meta["TERRAFORM_VERTICAL_SCALE"]) == 0.5
    assert float(meta["TERRAFORM_RESOLUTION_M"]) == 200.0 and meta["TERRAFORM_OVERLAP"] == "64"
    assert meta["TERRAFORM_NODATA_MODE"] == "transparent" and meta["TERRAFORM_BAND"] == "1"
    assert meta["TERRAFORM_PLUGIN_VERSION"] == VERSION
    text = "\n".join(logs)
    for expected in ("test-identity", "75 x 60 px", "1 chip of 256 px", "Vertical scale 0.5", "Done in"):
        assert expected in text
    assert result.resolution_m == 200.0 and result.vertical_scale == 0.5 and result.provider


def test_exact_crs_for_an_iau_mars_input(tmp_path, kit, identity):
    """GeoTIFF keys drop IAU codes: the input keeps its full WKT in a sidecar, and so must the output."""
    dem = kit.write_dem(tmp_path / "mars.tif", kit.terrain(100, 140), crs=IAU_MARS_GEOGRAPHIC,
                        pixel=0.1, origin=(200.0, 10.0))
    gdal.Open(dem).SetProjection(kit.crs_wkt(IAU_MARS_GEOGRAPHIC))  # read-only: goes to mars.tif.aux.xml
    wkt = gdal.Open(dem).GetProjection()
    assert 'AUTHORITY["IAU","49900"]' in wkt
    pipeline.run(request(dem, tmp_path / "out.tif", identity, resolution_m=3000.0))
    out = gdal.Open(str(tmp_path / "out.tif"))
    assert out.GetProjection() == wkt
    assert out.GetGeoTransform()[0] == 200.0  # 0-360 longitudes are not wrapped
    rgb, _, _ = kit.expected(dem, 3000.0)
    np.testing.assert_array_equal(kit.read_rgba(tmp_path / "out.tif")[..., :3], rgb)


def _dem_with_holes(kit, path):
    z = kit.terrain(300, 400, seed=5)
    z[50:120, 60:200] = -9999.0  # a hole inside
    z[:, 330:] = -9999.0  # a wide nodata margin
    return kit.write_dem(path, z, nodata=-9999.0)


def test_transparent_nodata_keeps_valid_pixels_exact_and_alpha_zero(tmp_path, kit, identity):
    dem = _dem_with_holes(kit, tmp_path / "dem.tif")
    pipeline.run(request(dem, tmp_path / "out.tif", identity, stripe_width=256))
    rgb, valid, _ = kit.expected(dem, 200.0)
    assert 0 < valid.sum() < valid.size
    got = kit.read_rgba(tmp_path / "out.tif")
    np.testing.assert_array_equal(got[..., 3], np.where(valid, 255, 0))
    np.testing.assert_array_equal(got[..., :3][valid], rgb[valid])
    # The model saw a filled surface next to the hole, not the sea colour.
    assert not (got[55:115, 65:195, :3] == SEA_RGB).all(axis=-1).any()


def test_ocean_nodata_is_the_below_colour_and_opaque(tmp_path, kit, identity):
    dem = _dem_with_holes(kit, tmp_path / "dem.tif")
    pipeline.run(request(dem, tmp_path / "out.tif", identity, nodata_mode="ocean"))
    rgb, valid, _ = kit.expected(dem, 200.0)
    got = kit.read_rgba(tmp_path / "out.tif")
    assert (got[..., 3] == 255).all()
    assert (got[..., :3][~valid] == SEA_RGB).all()
    np.testing.assert_array_equal(got[..., :3], rgb)


def test_ocean_is_exactly_where_the_grid_is_below_sea_level(tmp_path, kit, identity):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(260, 380, seed=2, low=-4000.0, high=5000.0))
    sea = 1234.5
    pipeline.run(request(dem, tmp_path / "out.tif", identity, sea_level=sea, vertical_scale=1.7))
    z, _ = kit.grid_elevation(dem, 200.0)
    got = kit.read_rgba(tmp_path / "out.tif")[..., :3]
    ocean = (got == SEA_RGB).all(axis=-1)
    assert ocean.any() and not ocean.all()
    np.testing.assert_array_equal(ocean, z <= sea)
    np.testing.assert_array_equal(got, kit.colourised(z, sea, 1.7))


def test_fit_to_earth_uses_and_records_the_fitted_scale(tmp_path, kit, identity):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(200, 260, low=-8000.0, high=21000.0))
    logs = []
    result = pipeline.run(request(dem, tmp_path / "out.tif", identity, sea_level=-2000.0, fit_to_earth=True,
                                  vertical_scale=5.0), log=logs.append)
    ds = gdal.Open(dem)
    scale = fit_vertical_scale(ds.GetRasterBand(1), -2000.0, fit_target_m(training_ramp()))
    assert result.vertical_scale == pytest.approx(scale) and 0.2 < scale < 0.5
    meta = gdal.Open(str(tmp_path / "out.tif")).GetMetadata()
    assert float(meta["TERRAFORM_VERTICAL_SCALE"]) == pytest.approx(scale) and meta["TERRAFORM_FIT_TO_EARTH"] == "yes"
    assert any("fit to Earth" in line and f"{scale:.6g}" in line for line in logs)
    rgb, _, _ = kit.expected(dem, 200.0, sea_level=-2000.0, vertical_scale=result.vertical_scale)
    np.testing.assert_array_equal(kit.read_rgba(tmp_path / "out.tif")[..., :3], rgb)


def test_preview_shows_the_dem_and_the_result_side_by_side(tmp_path, kit, negate):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(200, 300))
    result = pipeline.run(request(dem, tmp_path / "out.tif", negate, preview_path=str(tmp_path / "p.png")))
    assert result.preview_path == str(tmp_path / "p.png") and files(tmp_path) == ["dem.tif", "out.tif", "p.png"]
    png = gdal.Open(str(tmp_path / "p.png"))
    assert png.GetDriver().ShortName == "PNG" and (png.RasterXSize, png.RasterYSize) == (2 * 300 + 8, 200)
    panels = png.ReadAsArray().transpose(1, 2, 0)
    rgb, _, _ = kit.expected(dem, 200.0)
    before, after = panels[:, :300], panels[:, 308:]
    np.testing.assert_array_equal(after, kit.read_rgba(tmp_path / "out.tif"))
    assert np.abs(before[..., :3].astype(int) - rgb).mean() < 2  # averaged warp of the same grid


def test_large_preview_is_reduced(tmp_path, kit, identity):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(300, 2100), pixel=100.0, origin=(300000.0, 4e6))
    pipeline.run(request(dem, tmp_path / "out.tif", identity, preview_path=str(tmp_path / "p.png"),
                         resolution_m=100.0, overlap=0))
    png = gdal.Open(str(tmp_path / "p.png"))
    assert (png.RasterXSize, png.RasterYSize) == (2 * 1024 + 8, 146)


def test_cancel_after_the_first_batch_leaves_nothing(tmp_path, kit, identity):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(500, 700))
    polls, percents = [], []

    def cancelled():
        polls.append(1)
        return True

    with pytest.raises(Cancelled):
        pipeline.run(request(dem, tmp_path / "out.tif", identity, batch_size=2, preview_path=str(tmp_path / "p.png")),
                     progress=percents.append, cancelled=cancelled)
    assert len(polls) == 1 and len(percents) == 1 and percents[0] == pytest.approx(90.0 * 2 / 12)
    assert files(tmp_path) == ["dem.tif"]


def test_model_failing_mid_run_leaves_nothing(tmp_path, kit, six_channel_model):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(300, 300))
    (tmp_path / "out.tif.aux.xml").write_text("<PAMDataset/>")  # an earlier result's sidecar is not touched
    with pytest.raises(ModelError, match="output shape"):
        pipeline.run(request(dem, tmp_path / "out.tif", six_channel_model))
    assert files(tmp_path) == ["dem.tif", "out.tif.aux.xml"]


def test_error_in_a_callback_propagates_and_cleans_up(tmp_path, kit, identity):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(400, 400))

    def progress(_):
        raise RuntimeError("feedback closed")

    with pytest.raises(RuntimeError, match="feedback closed"):
        pipeline.run(request(dem, tmp_path / "out.tif", identity), progress=progress)
    assert files(tmp_path) == ["dem.tif"]


def test_unwritable_output_fails_before_any_chip(tmp_path, kit, identity):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(100, 100))
    percents = []
    with pytest.raises(OutputError, match="folder does not exist"):
        pipeline.run(request(dem, tmp_path / "no" / "out.tif", identity), progress=percents.append)
    assert percents == []
    with pytest.raises(OutputError, match="folder does not exist"):
        pipeline.run(request(dem, tmp_path / "out.tif", identity, preview_path=str(tmp_path / "no" / "p.png")),
                     progress=percents.append)
    assert percents == [] and files(tmp_path) == ["dem.tif"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"band": 2}, "band 2 does not exist"),
        ({"nodata_mode": "sea"}, "nodata mode"),
        ({"overlap": 200}, "overlap"),
        ({"batch_size": 0}, "batch size"),
        ({"stripe_width": 300}, "stripe width"),
        ({"vertical_scale": 0.0}, "vertical scale"),
        ({"resolution_m": -5.0}, "resolution must be a positive number"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_requests_are_clear_errors_and_leave_nothing(tmp_path, kit, identity, change, message):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(50, 50))
    with pytest.raises(InputError, match=message):
        pipeline.run(request(dem, tmp_path / "out.tif", identity, **change))
    assert files(tmp_path) == ["dem.tif"]


def test_not_a_raster_and_all_nodata(tmp_path, kit, identity):
    (tmp_path / "x.tif").write_text("not a raster")
    with pytest.raises(InputError, match="not a raster"):
        pipeline.run(request(tmp_path / "x.tif", tmp_path / "out.tif", identity))
    empty = kit.write_dem(tmp_path / "empty.tif", np.full((40, 40), -1.0), nodata=-1.0)
    with pytest.raises(InputError, match="no valid elevations"):
        pipeline.run(request(empty, tmp_path / "out.tif", identity))
    assert files(tmp_path) == ["empty.tif", "x.tif"]


def test_a_loaded_model_is_reused(tmp_path, kit, identity):
    from terraform_plugin.core.model import TerraformModel

    model = TerraformModel(identity, threads=1)
    for name in ("a", "b"):
        dem = kit.write_dem(tmp_path / f"{name}.tif", kit.terrain(64, 80, seed=len(name)))
        result = pipeline.run(request(dem, tmp_path / f"{name}_out.tif", "/nonexistent.onnx"), model=model)
        assert result.model_name == "test-identity"


@pytest.mark.parametrize("width", [4096, 16384, 46080, 400_000])
def test_buffers_are_bounded_whatever_the_raster_width(width):
    """Structural memory check: the stripes' accumulators do not grow with the raster, and stripes tile the
    grid in whole TIFF blocks with every chip they need."""
    layout = ChipLayout.build(width, 1000, 256, 64)
    stripes = plan_stripes(layout, STRIPE_WIDTH)
    assert stripes[0].x0 == 0 and stripes[-1].x1 == width
    for a, b in zip(stripes, stripes[1:]):
        assert a.x1 == b.x0 and a.x1 % 256 == 0
    for s in stripes:
        assert s.width <= STRIPE_WIDTH + 2 * 256  # accumulator: stripe plus chip overhang
        assert s.ax0 <= s.x0 and s.ax0 + s.width >= s.x1
        assert list(s.columns) == list(layout.columns_touching(s.x0, s.x1))
    # Bytes held per stripe: float32 RGB + weight accumulators, one chip row high.
    assert max(s.width for s in stripes) * 256 * 16 < 40e6
    # Recomputed chips at the joins stay a few percent.
    runs = sum(len(s.columns) for s in stripes)
    assert runs <= len(layout.xs) * 1.05 + 1


def test_shared_mola_tharsis_when_present(tmp_path, kit, identity):
    path = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "dem", "mars",
                        "mars_mola_megdr4ppd_tharsis_256.tif")
    if not os.path.exists(path):
        pytest.skip("../shared/data/dem/mars not present")
    pipeline.run(request(path, tmp_path / "out.tif", identity, sea_level=-1000.0, resolution_m=15000.0))
    rgb, valid, grid = kit.expected(path, 15000.0, sea_level=-1000.0)
    out = gdal.Open(str(tmp_path / "out.tif"))
    assert out.GetProjection() == gdal.Open(path).GetProjection()
    np.testing.assert_array_equal(kit.read_rgba(tmp_path / "out.tif")[..., :3][valid], rgb[valid])


def test_output_must_be_a_geotiff_name(tmp_path, kit, identity):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(50, 50))
    with pytest.raises(OutputError, match="writes GeoTIFF: give the output a .tif name"):
        pipeline.run(request(dem, tmp_path / "out.png", identity))
    assert files(tmp_path) == ["dem.tif"]


def test_one_stripe_on_its_own_from_a_pickled_plan_matches_the_whole_run(tmp_path, kit, identity):
    """What a distributed runner does: ship the plan, open the source where the stripe is computed, run the
    same chiprows -> mosaic -> blockrows recipe for that stripe only. It must give the run's own pixels."""
    import pickle

    from terraform_plugin.core.chiprows import read_chip_rows
    from terraform_plugin.core.model import TerraformModel
    from terraform_plugin.core.profile import StageClock
    from terraform_plugin.core.source import ResampledSource

    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(300, 900, seed=4))
    req = request(dem, tmp_path / "out.tif", identity, stripe_width=256, batch_size=5)
    pipeline.run(req)
    whole = kit.read_rgba(tmp_path / "out.tif")

    model = TerraformModel(identity, threads=1)
    dataset, band = pipeline.open_input(req)
    plan = pickle.loads(pickle.dumps(pipeline.make_plan(req, str(tmp_path / "out.tif"), dataset, band, model, print)))
    assert len(plan.stripes) == 4
    stripe = plan.stripes[2]
    source = ResampledSource(pipeline.dem_source.open_dem(dem), 1, plan.grid)
    clock, chips = StageClock(), []
    rows = read_chip_rows(plan, source, stripe, clock)
    got = np.zeros((300, stripe.x1 - stripe.x0, 4), np.uint8)
    for x0, y0, planes in pipeline.stripe_blocks(plan, stripe, rows, model, chips.append, clock):
        got[y0 : y0 + planes.shape[1]] = planes.transpose(1, 2, 0)
    np.testing.assert_array_equal(got, whole[:, stripe.x0 : stripe.x1])
    assert sum(chips) == len(stripe.columns) * len(plan.layout.ys)
