"""Contract-2 models through the real engine (GDAL, onnxruntime): tiling independence and conditioning.

The models are random-weight U-Nets (tests/v2models.py) whose receptive radius R = 21 and alignment A = 8 are
true for their graphs. Independence holds by construction, so it is checked exactly: the same DEM cropped by a
multiple of A gives the same pixels more than R from the crop's edges (a crop by 4 px does not: the check can
fail), and any tile size, stripe width or split into parts gives the same pixels everywhere.
"""

import os
import sys

import numpy as np
import pytest
from osgeo import gdal

import v2models
from terraform_plugin.core import parts, pipeline
from terraform_plugin.core.chiprows import FILL_DISTANCE
from terraform_plugin.core.errors import InputError
from terraform_plugin.core.plan import make_plan

R, A = v2models.UNET_RADIUS, v2models.ALIGNMENT
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ORIGIN = (500000.0, 4500000.0)


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    return v2models.write_unet(tmp_path_factory.mktemp("models") / "unet.onnx")


def run(dem, out, model, **kw):
    kw.setdefault("threads", 1)
    logs = []
    result = pipeline.run(pipeline.TerraformRequest(str(dem), str(out), model, **kw), log=logs.append)
    return gdal.Open(str(out)).ReadAsArray().astype(np.int16), result, logs


def crop_dem(kit, path, z, dx, dy, nodata=None):
    """``z`` without its first ``dy`` rows and ``dx`` columns, georeferenced where those pixels were."""
    return kit.write_dem(path, z[dy:, dx:], origin=(ORIGIN[0] + 200.0 * dx, ORIGIN[1] - 200.0 * dy), nodata=nodata)


def unseen_dem():
    """A DEM the project has never trained or tested on: scripts/synthetic_dem.py's procedural terrain (another
    seed than the demo's), cut to an odd size, with its no-data hole."""
    sys.path.insert(0, os.path.join(ROOT, "scripts"))
    try:
        import synthetic_dem
    finally:
        sys.path.pop(0)
    z = synthetic_dem.synthetic_terrain(768, seed=2026)[:601, :747].copy()
    h, w = z.shape
    yy, xx = np.ogrid[:h, :w]
    z[(yy - 0.45 * h) ** 2 + (xx - 0.5 * w) ** 2 < 30.0**2] = synthetic_dem.NODATA  # away from every crop edge
    return z, synthetic_dem.NODATA


def compare_crop(whole, cropped, dx, dy, keep):
    """|difference| over the common area farther than ``keep`` px from the crop's edges (all four)."""
    h, w = whole.shape[1:]
    a = whole[:, dy + keep : h - keep, dx + keep : w - keep]
    b = cropped[:, keep : h - dy - keep, keep : w - dx - keep]
    assert a.shape == b.shape and a.size
    return np.abs(a - b)


@pytest.mark.parametrize("source", ["terrain", "unseen"])
def test_crops_by_multiples_of_the_alignment_give_the_same_pixels(tmp_path, kit, unet, source):
    if source == "terrain":
        z, nodata = kit.terrain(457, 613, seed=11), None
    else:
        z, nodata = unseen_dem()
    dem = kit.write_dem(tmp_path / "dem.tif", z, nodata=nodata)
    whole, result, _ = run(dem, tmp_path / "whole.tif", unet, tile_size=304)
    assert result.chips > 4  # several tiles each way: the crops move every join
    if nodata is not None:
        assert (whole[3] == 0).any() and (whole[3] == 255).any()  # the hole came out transparent
    for dx, dy in [(A, 2 * A), (5 * A, 12 * A), (25 * A, A)]:
        cropped, _, _ = run(crop_dem(kit, tmp_path / "crop.tif", z, dx, dy, nodata), tmp_path / "crop_out.tif",
                            unet, tile_size=304)
        diff = compare_crop(whole, cropped, dx, dy, R)
        assert diff.max() <= 1, (dx, dy, diff.max(), (diff > 0).mean())
    # The check can fail: off the alignment, the model's downsampling sees other pixel groups.
    off, _, _ = run(crop_dem(kit, tmp_path / "off.tif", z, A // 2, 0, nodata), tmp_path / "off_out.tif", unet,
                    tile_size=304)
    diff = compare_crop(whole, off, A // 2, 0, R)
    assert diff.max() > 1 and (diff > 0).mean() > 0.01


def holey(kit, shape=(457, 1613)):
    z = kit.terrain(*shape, seed=5)
    z[100:150, 500:800] = -9999.0  # across the stripe joins of 256 and 512 px centres
    return z


@pytest.mark.parametrize("nodata_mode", ["transparent", "ocean"])
def test_tile_sizes_stripe_widths_and_parts_agree_everywhere(tmp_path, kit, unet, nodata_mode):
    """One grid, any tiling: the same pixels, edges included (the mirror is the grid's, not the tile's)."""
    dem = kit.write_dem(tmp_path / "dem.tif", holey(kit), nodata=-9999.0)
    base, result, logs = run(dem, tmp_path / "a.tif", unet, tile_size=304, stripe_width=8192,
                             nodata_mode=nodata_mode)
    assert any("tiles of 304 x" in line for line in logs)
    runs = {"560 px tiles, 256 px stripes": dict(tile_size=560, stripe_width=256),
            "default tiles, 512 px stripes": dict(stripe_width=512),
            "304 px tiles, 768 px stripes, batches of 2": dict(tile_size=304, stripe_width=768, batch_size=2)}
    for name, kw in runs.items():
        got, other, _ = run(dem, tmp_path / "b.tif", unet, nodata_mode=nodata_mode, **kw)
        np.testing.assert_array_equal(got[3], base[3], err_msg=name)
        assert np.abs(got - base).max() <= 1, name
    # Parts (what the Dask runner computes), one stripe each, in any order, assembled.
    request = pipeline.TerraformRequest(str(dem), str(tmp_path / "parts.tif"), unet, tile_size=560,
                                        stripe_width=256, threads=1, nodata_mode=nodata_mode)
    output = pipeline.check_request(request)
    dataset, band = pipeline.open_input(request)
    model = pipeline.load_model(request)
    plan = make_plan(request, output, dataset, band, model, lambda _: None)
    assert len(plan.stripes) == 4 and plan.chip_runs == plan.layout.count  # no column computed twice
    folder = parts.parts_dir(output)
    parts.Manifest.open(folder, "x")
    for index in reversed(range(len(plan.stripes))):
        parts.compute_part(plan, index, folder, model)
    parts.assemble(plan, model, folder, pipeline.output_metadata(plan, model))
    got = gdal.Open(output).ReadAsArray().astype(np.int16)
    assert np.abs(got - base).max() <= 1


def test_stripes_join_between_centres_on_tiff_blocks(tmp_path, kit, unet):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(300, 2100))
    request = pipeline.TerraformRequest(str(dem), str(tmp_path / "o.tif"), unet, tile_size=560, stripe_width=1024,
                                        threads=1)
    dataset, band = pipeline.open_input(request)
    plan = make_plan(request, pipeline.check_request(request), dataset, band, pipeline.load_model(request),
                     lambda _: None)
    layout = plan.layout
    centres = [(int(x) + layout.margin, int(x) + layout.tile_w - layout.margin) for x in layout.xs]
    assert [s.x0 for s in plan.stripes] == [0, 1024, 2048] and plan.stripes[-1].x1 == 2100
    for s in plan.stripes:
        assert s.x0 % 256 == 0 and s.x0 in [c[0] for c in centres]
        owned = [c for c in centres if s.x0 <= c[0] < s.x1]
        assert [centres.index(c) for c in owned] == list(s.columns)
    assert plan.chip_runs == layout.count


def test_a_small_raster_gets_the_smallest_sufficient_tile(tmp_path, kit, unet):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(37, 100))
    out, result, logs = run(dem, tmp_path / "out.tif", unet)  # default tile: 1280 px centres
    margin = 24  # R = 21 rounded up to A = 8
    assert result.chips == 1 and any(f"1 tile of {104 + 2 * margin} x {40 + 2 * margin} px" in line for line in logs)
    assert out.shape == (4, 37, 100) and (out[3] == 255).all()
    meta = gdal.Open(str(tmp_path / "out.tif")).GetMetadata()
    assert meta["TERRAFORM_TILE"] == "152x88" and meta["TERRAFORM_MARGIN"] == "24"


def test_tile_size_must_fit_the_model(tmp_path, kit, unet, models):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(50, 50))
    with pytest.raises(InputError, match="multiple of 8 px of at least 304"):
        run(dem, tmp_path / "out.tif", unet, tile_size=300)
    with pytest.raises(InputError, match="contract-1 model with fixed 256 px chips"):
        run(dem, tmp_path / "out.tif", models["identity"], tile_size=512)
    assert sorted(os.listdir(tmp_path)) == ["dem.tif"]


# -- conditioning ----------------------------------------------------------------------------------------------


def echo_dem(kit, path, lat_top, rows=96, cols=64, crs="EPSG:4326"):
    """A geographic DEM whose top edge is at ``lat_top``, pixels of 0.0018° (about 200 m)."""
    return kit.write_dem(path, kit.terrain(rows, cols), crs=crs, pixel=0.0018, origin=(10.0, lat_top))


def test_the_latitude_plane_reaches_the_model(tmp_path, kit):
    """The echo model returns its latitude plane: each 8 x 8 block of the output (from the grid's origin) holds
    the latitude of its centre, from the output's own georeference."""
    model = v2models.write_latitude_echo(tmp_path / "echo.onnx",
                                         latitude={"absolute": False, "scale": 1.0, "range_deg": [-60.0, 60.0]})
    dem = echo_dem(kit, tmp_path / "dem.tif", 0.08)
    out, result, logs = run(dem, tmp_path / "out.tif", model, tile_size=256)
    ds = gdal.Open(str(tmp_path / "out.tif"))
    top, yres = ds.GetGeoTransform()[3], ds.GetGeoTransform()[5]
    rows = np.arange(out.shape[1])
    lat = top + yres * ((rows // 8) * 8 + 4)  # the centre of each row's block
    want = np.rint(np.clip(lat * 127.5 + 127.5, 0, 255))
    assert lat.min() < 0 < lat.max()  # the equator crosses it: values on both sides of 127.5
    np.testing.assert_allclose(out[0], np.repeat(want[:, None], out.shape[2], axis=1), atol=1)
    assert (out[0] == out[1]).all() and len(np.unique(out[0][:, 0])) > 5
    meta = ds.GetMetadata()
    assert meta["TERRAFORM_LATITUDE"] == "georeference" and "TERRAFORM_LOOK" not in meta
    assert any(line.startswith("Latitude ") and "from the georeference" in line for line in logs)


def test_latitudes_beyond_the_models_range_are_clamped_and_said_so(tmp_path, kit):
    model = v2models.write_latitude_echo(tmp_path / "echo.onnx",
                                         latitude={"absolute": True, "scale": 1.0 / 60.0, "range_deg": [0.0, 60.0]})
    dem = echo_dem(kit, tmp_path / "north.tif", 71.0)
    out, _, logs = run(dem, tmp_path / "north_out.tif", model)
    assert (out[:3] == 255).all()  # 70.8-71° north, clamped to 60: the top of the output range
    assert any("clamped to the model's trained range, |latitude| 0..60°" in line for line in logs)
    meta = gdal.Open(str(tmp_path / "north_out.tif")).GetMetadata()
    assert meta["TERRAFORM_LATITUDE"] == "georeference, clamped" and meta["TERRAFORM_LATITUDE_DEG"].startswith("70.8")
    # Southern latitudes are made absolute: 30°S is fed as 30 (0.5 -> 191), as is LATITUDE -30.
    south, _, _ = run(echo_dem(kit, tmp_path / "south.tif", -30.0, rows=8), tmp_path / "south_out.tif", model)
    assert abs(int(np.median(south[0])) - 191) <= 1
    forced, _, logs = run(dem, tmp_path / "forced.tif", model, latitude=-30.0)
    assert (np.abs(forced[:3] - 191) <= 1).all() and not any("clamped" in line for line in logs)
    meta = gdal.Open(str(tmp_path / "forced.tif")).GetMetadata()
    assert meta["TERRAFORM_LATITUDE"] == "LATITUDE" and meta["TERRAFORM_LATITUDE_DEG"] == "-30"


def test_a_crs_without_latitudes_needs_latitude(tmp_path, kit, unet):
    local = ('LOCAL_CS["site grid",LOCAL_DATUM["local",0],UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]')
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(40, 40), crs=local)
    with pytest.raises(InputError, match="LATITUDE"):
        run(dem, tmp_path / "out.tif", unet)
    out, _, _ = run(dem, tmp_path / "out.tif", unet, latitude=45.0)
    assert out.shape == (4, 40, 40)


def test_looks_reach_the_model_and_an_undeclared_look_is_refused(tmp_path, kit, unet):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 64))
    auto, _, _ = run(dem, tmp_path / "auto.tif", unet)
    andes, _, logs = run(dem, tmp_path / "andes.tif", unet, look="andes")  # ids are case-insensitive
    alps, _, _ = run(dem, tmp_path / "alps.tif", unet, look="ALPS")
    assert np.abs(andes - auto).mean() > 0.5 and np.abs(alps - andes).mean() > 0.5
    assert any("Look: ANDES (Bolivian Altiplano - arid high plateau)" in line for line in logs)
    assert gdal.Open(str(tmp_path / "andes.tif")).GetMetadata()["TERRAFORM_LOOK"] == "ANDES"
    assert gdal.Open(str(tmp_path / "auto.tif")).GetMetadata()["TERRAFORM_LOOK"] == "auto"
    with pytest.raises(InputError, match=r"'SAHARA' is not one of test-unet-v2's looks: auto, ANDES \(Bolivian"):
        run(dem, tmp_path / "bad.tif", unet, look="SAHARA")
    assert not os.path.exists(tmp_path / "bad.tif")


def test_a_contract_1_model_refuses_a_look_and_a_latitude(tmp_path, kit, models):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 64))
    with pytest.raises(InputError, match="contract-1 model, which has no looks"):
        run(dem, tmp_path / "out.tif", models["identity"], look="ANDES")
    with pytest.raises(InputError, match="contract-1 model, which takes no latitude"):
        run(dem, tmp_path / "out.tif", models["identity"], latitude=45.0)
    out, _, _ = run(dem, tmp_path / "out.tif", models["identity"], look="auto")
    assert gdal.Open(str(tmp_path / "out.tif")).GetMetadata()["TERRAFORM_TILE"] == "256"


@pytest.mark.parametrize("bad", [91.0, -90.5, float("nan"), "45", True])
def test_latitude_must_be_degrees(tmp_path, kit, unet, bad):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(20, 20))
    with pytest.raises(InputError, match="latitude must be a number of degrees from -90"):
        run(dem, tmp_path / "out.tif", unet, latitude=bad)


def test_fill_is_local_so_holes_stay_tiling_independent(tmp_path, kit, unet):
    """The no-data fill reads FILL_DISTANCE px around each tile row: holes wider than that, next to the joins
    of 256 px centres, filled the same whatever the tile size."""
    z = kit.terrain(600, 600, seed=9)
    for y in (240, 250, 500):
        z[y : y + 30, 200 : 200 + 3 * FILL_DISTANCE] = -9999.0
    dem = kit.write_dem(tmp_path / "dem.tif", z, nodata=-9999.0)
    a, _, _ = run(dem, tmp_path / "a.tif", unet, tile_size=304)
    b, _, _ = run(dem, tmp_path / "b.tif", unet, tile_size=560)
    assert (a[3] == 0).any()
    assert np.abs(a - b).max() <= 1


def test_a_dem_without_a_crs_is_refused_as_before(tmp_path, kit, unet):
    """Its pixel size in metres is unknown, which LATITUDE cannot mend: the usual refusal, no LATITUDE advice."""
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(40, 40), crs=None)
    for latitude in (None, 45.0):
        with pytest.raises(InputError, match="no coordinate reference system") as caught:
            run(dem, tmp_path / "out.tif", unet, latitude=latitude)
        assert "LATITUDE" not in str(caught.value)
    assert sorted(os.listdir(tmp_path)) == ["dem.tif"]
