"""A colour guide through the real engine (GDAL, onnxruntime): the planes the model is fed, tiling independence
with a guide, what the output records, and the guides and models that must be refused.

The echo model (tests/v2models.py) returns its guide planes: the guide's colours where the mask is 1, 0 DN where
it is 0, per 8 x 8 block, so the output shows what the engine fed it. The guide's colours are linear in
longitude and latitude (tests/guides.py), so what each block should get is known from pyproj alone.
"""

import os
import pickle

import numpy as np
import pytest
from osgeo import gdal

import guides
import v2models
from terraform_plugin.core import parts, pipeline
from terraform_plugin.core.errors import InputError, OutputError
from terraform_plugin.core.plan import make_plan

# The DEM: UTM 33N, 200 m pixels from (500000, 4600000): about 15.0-15.8°E, 41.1-41.55°N.
UTM = "EPSG:32633"
ORIGIN = (500000.0, 4600000.0)
EDGE_LON = 15.4  # where the partial guide stops


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    return v2models.write_guide_echo(tmp_path_factory.mktemp("models") / "echo.onnx", coarse_px=32)


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    """The random U-Net with latitude, look and guide planes (R = 21, A = 8, guide cells of 64 px)."""
    return v2models.write_unet(tmp_path_factory.mktemp("models") / "unet.onnx")


def run(dem, out, model, **kw):
    kw.setdefault("threads", 1)
    logs = []
    result = pipeline.run(pipeline.TerraformRequest(str(dem), str(out), model, **kw), log=logs.append)
    return gdal.Open(str(out)).ReadAsArray().astype(np.int16), result, logs


def partial_guide(path, edge_lon=EDGE_LON):
    """The guide west of ``edge_lon``, with a no-data hole (0 in all three bands) inside the DEM's west part."""
    rgb = guides.colours(cols=int(round((edge_lon - guides.GT[0]) / guides.GT[1])))
    hole = guides.box(15.1, 15.25, 41.25, 41.37)
    rgb[:, hole[0], hole[1]] = 0
    return guides.write(path, rgb, nodata=0)


def test_guide_planes_reach_the_model_from_another_crs_partly_covering_with_no_data(tmp_path, kit, echo):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(256, 320), origin=ORIGIN)
    guide = partial_guide(tmp_path / "guide.tif")
    # Strength 0: what the model is fed, not moved towards the guide afterwards (tests/core/test_palette.py).
    out, _, logs = run(dem, tmp_path / "out.tif", echo, guide_path=guide, tile_size=256, guide_strength=0.0)
    ds = gdal.Open(str(tmp_path / "out.tif"))
    x, y = guides.block_centres(ds.GetGeoTransform(), 320, 256)
    lon, lat = guides.lonlat(UTM, x, y)
    blocks = out[:3, 4::8, 4::8]  # each 8 x 8 block's centre pixel holds the block's plane value
    assert (out[3] == 255).all()  # the guide does not touch the DEM's own validity
    # Every pixel of a block carries its block's value: the planes come at 1/8, one value a block.
    np.testing.assert_array_equal(out[:3], np.repeat(np.repeat(blocks, 8, axis=1), 8, axis=2))
    cell_deg = 32 * 200.0 / 84000.0  # a 6.4 km cell is about 0.076° of longitude here
    in_hole = (lon > 15.13) & (lon < 15.22) & (lat > 41.28) & (lat < 41.34)
    east = lon > EDGE_LON + cell_deg
    clear = (lon < EDGE_LON - 2 * cell_deg) & ~((lon > 15.1 - 2 * cell_deg) & (lon < 15.25 + 2 * cell_deg)
                                               & (lat > 41.25 - cell_deg) & (lat < 41.37 + cell_deg))
    assert in_hole.sum() >= 4 and east.sum() > 100 and clear.sum() > 100
    assert (blocks[:, in_hole] == 0).all() and (blocks[:, east] == 0).all()  # mask 0: no colour fed
    # Guide colours (0-255) -> the model's input range -> its output range -> DN: the field itself, to rounding.
    np.testing.assert_allclose(blocks[0][clear], guides.red_at(lon)[clear], atol=1.5)
    np.testing.assert_allclose(blocks[1][clear], guides.green_at(lat)[clear], atol=1.5)
    assert (np.abs(blocks[2][clear] - guides.BLUE) <= 1).all()
    meta = ds.GetMetadata()
    assert meta["TERRAFORM_GUIDE"] == "guide.tif" and meta["TERRAFORM_GUIDE_COARSE_PX"] == "32"
    assert meta["TERRAFORM_GUIDE_SHA256"] == pipeline.file_sha256(guide)
    line = next(line for line in logs if line.startswith("Colour guide guide.tif"))
    assert "cells of 32 px (6.4 km)" in line and "painted without a guide" in line
    share = int(line.split("it colours ")[1].split("%")[0])
    assert 30 <= share <= 60  # about the west half, less the hole


def test_without_a_guide_a_guided_model_gets_mask_zero_and_the_output_says_none(tmp_path, kit, echo):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 64), origin=ORIGIN)
    out, _, logs = run(dem, tmp_path / "out.tif", echo)
    assert (out[:3] == 0).all()
    assert gdal.Open(str(tmp_path / "out.tif")).GetMetadata()["TERRAFORM_GUIDE"] == "none"
    assert not any(line.startswith("Colour guide") for line in logs)


def holey_dem(kit, path, z=None, dx=0, dy=0):
    """613 x 457 px (15.0-16.5°E) with a no-data hole; ``dx``, ``dy``: cropped by that many columns and rows."""
    z = kit.terrain(457, 613, seed=11) if z is None else z
    z = z.copy()
    z[200:230, 300:380] = -9999.0
    return kit.write_dem(path, z[dy:, dx:], origin=(ORIGIN[0] + 200.0 * dx, ORIGIN[1] - 200.0 * dy),
                         nodata=-9999.0), z


# The unet's guide cells are 64 px; held to the guide (the default strength), a pixel depends on the model's output
# in the two cells around it along each axis - up to 1.5 cells away - and so on the DEM within R + 96 px.
HELD_REACH = v2models.UNET_RADIUS + 96


def test_crops_keep_their_pixels_with_a_guide(tmp_path, kit, unet):
    """Guide cells sit on multiples of coarse_px (64 here) from the raster's origin: a crop by a multiple of both
    A and coarse_px (the trained model's A = coarse_px = 32) gives the same pixels more than R + 1.5 cells from
    its edges, the colours held to the guide's included (tiles of 512 px: the held margins are R + one cell,
    rounded to the cells)."""
    guide = partial_guide(tmp_path / "guide.tif", edge_lon=16.0)  # the DEM's east third has no guide
    dem, z = holey_dem(kit, tmp_path / "dem.tif")
    whole, _, _ = run(dem, tmp_path / "whole.tif", unet, guide_path=guide, look="ALPS", tile_size=512)
    r = HELD_REACH
    for dx, dy in [(64, 128), (192, 64)]:
        crop, _ = holey_dem(kit, tmp_path / "crop.tif", z, dx, dy)
        cropped, _, _ = run(crop, tmp_path / "crop_out.tif", unet, guide_path=guide, look="ALPS", tile_size=512)
        h, w = whole.shape[1:]
        a = whole[:, dy + r : h - r, dx + r : w - r]
        b = cropped[:, r : h - dy - r, r : w - dx - r]
        assert np.abs(a - b).max() <= 1, (dx, dy)
    # The check can fail: a crop by A alone moves the guide's cells against the pixels (hence A = coarse_px).
    crop, _ = holey_dem(kit, tmp_path / "off.tif", z, 8, 0)
    off, _, _ = run(crop, tmp_path / "off_out.tif", unet, guide_path=guide, look="ALPS", tile_size=512)
    h, w = whole.shape[1:]
    assert np.abs(whole[:, r : h - r, 8 + r : w - r] - off[:, r : h - r, r : w - 8 - r]).max() > 1
    # The guide matters to this model: without it, other pixels.
    bare, _, _ = run(dem, tmp_path / "bare.tif", unet, look="ALPS", tile_size=512)
    assert np.abs(bare[:3] - whole[:3]).mean() > 0.5


def test_tile_sizes_stripes_and_parts_agree_with_a_guide(tmp_path, kit, unet):
    guide = partial_guide(tmp_path / "guide.tif", edge_lon=16.0)
    dem, _ = holey_dem(kit, tmp_path / "dem.tif")
    base, _, _ = run(dem, tmp_path / "a.tif", unet, guide_path=guide, tile_size=512)
    other, _, _ = run(dem, tmp_path / "b.tif", unet, guide_path=guide, tile_size=768, stripe_width=512)
    assert np.abs(other - base).max() <= 1
    tiles = {gdal.Open(str(tmp_path / name)).GetMetadata()["TERRAFORM_TILE"] for name in ("a.tif", "b.tif")}
    assert tiles == {"512", "768"}  # held margins of 128 px: centres of 256 and 512 px
    # Parts as a Dask worker computes them: from the plan pickled and unpickled (the guide's cells travel in it,
    # the file is not read again: it is gone by then), in reverse order, assembled.
    request = pipeline.TerraformRequest(dem, str(tmp_path / "parts.tif"), unet, guide_path=guide, tile_size=768,
                                        stripe_width=512, threads=1)
    output = pipeline.check_request(request)
    dataset, band = pipeline.open_input(request)
    model = pipeline.load_model(request)
    plan = make_plan(request, output, dataset, band, model, lambda _: None)
    metadata = pipeline.output_metadata(plan, model)
    shipped = pickle.loads(pickle.dumps(plan))
    os.remove(guide)
    folder = parts.parts_dir(output)
    parts.Manifest.open(folder, parts.fingerprint(plan, metadata))
    assert len(plan.stripes) > 1
    for index in reversed(range(len(plan.stripes))):
        parts.compute_part(shipped, index, folder, model)
    parts.assemble(plan, model, folder, metadata)
    got = gdal.Open(output).ReadAsArray().astype(np.int16)
    assert np.abs(got - base).max() <= 1
    assert gdal.Open(output).GetMetadata()["TERRAFORM_GUIDE"] == "guide.tif"


def test_the_parts_fingerprint_changes_with_the_guide(tmp_path, kit, echo):
    """Parts left by a run with another guide are not reused on resume."""
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 64), origin=ORIGIN)
    first = guides.write(tmp_path / "g1.tif")
    rgb = guides.colours()
    rgb[2] = 200
    second = guides.write(tmp_path / "g2.tif", rgb)
    prints = []
    for guide in (first, second, None):
        request = pipeline.TerraformRequest(dem, str(tmp_path / "o.tif"), echo, guide_path=guide, threads=1)
        plan, _, _, model = pipeline.start(request, lambda _: None)
        prints.append(parts.fingerprint(plan, pipeline.output_metadata(plan, model)))
    assert len(set(prints)) == 3


# -- refusals --------------------------------------------------------------------------------------------------


def test_models_that_take_no_guide_refuse_one_saying_why(tmp_path, kit, models):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 64), origin=ORIGIN)
    guide = guides.write(tmp_path / "guide.tif")
    with pytest.raises(InputError, match="contract-1 model, which takes no colour guide"):
        run(dem, tmp_path / "out.tif", models["identity"], guide_path=guide)
    look_only = v2models.write_unet(tmp_path / "look.onnx", kinds=("look",))
    with pytest.raises(InputError, match=r"test-unet-v2 takes no colour guide - it declares no guide_rgb and "
                                         r"guide_mask inputs \(its inputs: dem_rgb \(ramp_rgb\), look \(look\)\)"):
        run(dem, tmp_path / "out.tif", look_only, guide_path=guide)
    assert sorted(os.listdir(tmp_path)) == ["dem.tif", "guide.tif", "look.onnx"]


def test_guides_the_engine_cannot_use_are_refused(tmp_path, kit, echo):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 64), origin=ORIGIN)
    east = guides.write(tmp_path / "east.tif", gt=(20.0, 0.01, 0.0, 45.0, 0.0, -0.01))
    with pytest.raises(InputError, match="the guide .*east.tif does not overlap the DEM: the guide covers x "):
        run(dem, tmp_path / "out.tif", echo, guide_path=east)
    wide = guides.write(tmp_path / "wide.tif", guides.colours().astype(np.uint16) * 40)
    with pytest.raises(InputError, match="UInt16 colour values .* gdal_translate -ot Byte -scale"):
        run(dem, tmp_path / "out.tif", echo, guide_path=wide)
    with pytest.raises(InputError, match="cannot be opened"):
        run(dem, tmp_path / "out.tif", echo, guide_path=str(tmp_path / "absent.tif"))
    with pytest.raises(InputError, match="the guide must be a raster's path"):
        run(dem, tmp_path / "out.tif", echo, guide_path="  ")
    assert sorted(os.listdir(tmp_path)) == ["dem.tif", "east.tif", "wide.tif"]


def test_no_output_overwrites_the_guide(tmp_path, kit, echo):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 64), origin=ORIGIN)
    guide = guides.write(tmp_path / "guide.tif")
    before = pipeline.file_sha256(guide)
    with pytest.raises(OutputError, match="the output .*guide.tif is the colour guide .* would destroy the guide"):
        run(dem, guide, echo, guide_path=guide)
    vrt = str(tmp_path / "guide.vrt")  # a VRT guide reads guide.tif: that is no output either
    gdal.BuildVRT(vrt, [guide]).FlushCache()
    with pytest.raises(OutputError, match="is a file the colour guide reads"):
        run(dem, guide, echo, guide_path=vrt)
    assert pipeline.file_sha256(guide) == before
