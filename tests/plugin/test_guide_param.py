"""GUIDE in QGIS: a raster file GDAL reads, and a web (XYZ) layer QGIS renders over the DEM first - in-process
and through qgis_process; the engine's refusals reach the user intact; a web layer's secrets stay out of the
output. The XYZ tiles are PNG files served through file:// (tests/guides.py): there is no network.

The echo model returns the guide planes it is fed (tests/v2models.py), so the output shows the guide's colours
per 8 x 8 block, which tests/guides.py knows for any longitude and latitude.
"""

import glob
import os
import tempfile

import numpy as np
import pytest
from osgeo import gdal

import guides
import v2models

UTM = "EPSG:32633"
ORIGIN = (500000.0, 4600000.0)  # 15.0°E, 41.5°N: inside the guide (14.5-16.7°E, 40.2-42.2°N)


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    return v2models.write_guide_echo(tmp_path_factory.mktemp("models") / "echo.onnx", coarse_px=32)


@pytest.fixture(scope="module")
def guide_files(tmp_path_factory):
    """(GeoTIFF guide, XYZ URL template of the same guide as web tiles)."""
    folder = tmp_path_factory.mktemp("guide")
    tif = guides.write(folder / "guide.tif")
    return tif, guides.write_xyz_tiles(str(folder / "tiles"), tif)


@pytest.fixture
def dem(tmp_path, kit):
    """300 x 280 px of UTM 33N at 200 m, from 15.0°E 41.5°N."""
    return kit.write_dem(tmp_path / "dem.tif", kit.terrain(280, 300), origin=ORIGIN)


def xyz_uri(template):
    return f"type=xyz&url={template}&zmin=0&zmax=8"


def blocks_and_lonlat(path):
    ds = gdal.Open(str(path))
    out = ds.ReadAsArray().astype(np.int16)
    x, y = guides.block_centres(ds.GetGeoTransform(), ds.RasterXSize // 8 * 8, ds.RasterYSize // 8 * 8)
    lon, lat = guides.lonlat(UTM, x, y)
    return out[:3, 4::8, 4::8][:, : lon.shape[0], : lon.shape[1]], lon, lat, ds.GetMetadata()


def scratch_folders():
    return set(glob.glob(os.path.join(tempfile.gettempdir(), "terraform-guide-*")))


def test_a_geotiff_guide_and_the_same_guide_as_a_web_layer(run_alg, echo, guide_files, dem, tmp_path):
    from qgis.core import QgsRasterLayer

    tif, template = guide_files
    # GUIDE_STRENGTH 0: the planes as the model is fed them (the colours held to the guide: tests/core/test_palette.py).
    _, feedback = run_alg({"INPUT": dem, "MODEL": echo, "GUIDE": tif, "GUIDE_STRENGTH": 0,
                           "OUTPUT": str(tmp_path / "file.tif")})
    blocks, lon, lat, meta = blocks_and_lonlat(tmp_path / "file.tif")
    np.testing.assert_allclose(blocks[0], guides.red_at(lon), atol=1.5)
    np.testing.assert_allclose(blocks[1], guides.green_at(lat), atol=1.5)
    assert meta["TERRAFORM_GUIDE"] == "guide.tif" and meta["TERRAFORM_GUIDE_SHA256"]
    assert meta["TERRAFORM_GUIDE_STRENGTH"] == "0.0"

    layer = QgsRasterLayer(xyz_uri(template), "guide tiles", "wms")
    assert layer.isValid() and layer.providerType() == "wms"
    before = scratch_folders()
    _, feedback = run_alg({"INPUT": dem, "MODEL": echo, "GUIDE": layer, "OUTPUT": str(tmp_path / "web.tif")})
    web, _, _, web_meta = blocks_and_lonlat(tmp_path / "web.tif")
    # Resampled twice more (into 1.2 km tiles, rendered at a quarter cell), averaged over the same cells.
    assert np.abs(web - blocks).max() <= 3
    assert web_meta["TERRAFORM_GUIDE"] == f"guide tiles (wms xyz layer {template})"  # file:// on every QGIS
    assert web_meta["TERRAFORM_GUIDE_STRENGTH"] == "1.0"  # the default: held to the guide
    assert scratch_folders() == before  # the rendering is gone with its run


def test_a_web_layers_secrets_stay_out_of_the_output(qgis_app):
    from qgis.core import QgsRasterLayer

    from terraform_plugin.guide_layer import public_source

    uri = ("type=xyz&url=https://user:pw@tiles.example.com/sat/{z}/{x}/{y}.jpg?key%3DSECRET&username=me"
           "&password=hunter2&authcfg=abc1234")
    label = public_source(QgsRasterLayer(uri, "satellite", "wms"))
    assert label == "satellite (wms xyz layer https://tiles.example.com/sat/{z}/{x}/{y}.jpg)"


def test_guides_the_run_cannot_use_are_refused_in_the_engines_words(run_alg, echo, models, guide_files, dem,
                                                                     tmp_path, kit):
    from qgis.core import QgsProcessingException, QgsRasterLayer

    tif, template = guide_files
    wide = guides.write(tmp_path / "wide.tif", guides.colours().astype(np.uint16) * 40)
    with pytest.raises(QgsProcessingException, match="UInt16 colour values .* gdal_translate -ot Byte -scale"):
        run_alg({"INPUT": dem, "MODEL": echo, "GUIDE": wide, "OUTPUT": str(tmp_path / "a.tif")})
    with pytest.raises(QgsProcessingException, match="contract-1 model, which takes no colour guide"):
        run_alg({"INPUT": dem, "MODEL": models["identity"], "GUIDE": tif, "OUTPUT": str(tmp_path / "b.tif")})
    # A web layer for a model that takes no guide: refused, named by its address, and nothing rendered.
    before = scratch_folders()
    layer = QgsRasterLayer(xyz_uri(template), "guide tiles", "wms")
    with pytest.raises(QgsProcessingException, match=r"colour guide guide tiles \(wms xyz layer file:///.*\): "
                                                     "test-identity is a contract-1 model"):
        run_alg({"INPUT": dem, "MODEL": models["identity"], "GUIDE": layer, "OUTPUT": str(tmp_path / "c.tif")})
    assert scratch_folders() == before
    # A web layer with no tiles over the DEM (27°N; the tiles cover 40-42°N): named by its address, not by the
    # temporary rendering, which is gone.
    south = kit.write_dem(tmp_path / "south.tif", kit.terrain(64, 64), origin=(500000.0, 3000000.0))
    with pytest.raises(QgsProcessingException, match=r"the guide guide tiles \(wms xyz layer file:///.*\) has no colour "
                                                     r"\(only no-data or transparent pixels\) over the DEM"):
        run_alg({"INPUT": south, "MODEL": echo, "GUIDE": layer, "OUTPUT": str(tmp_path / "d.tif")})
    assert scratch_folders() == before
    assert sorted(os.listdir(tmp_path)) == ["dem.tif", "south.tif", "wide.tif"]


def test_qgis_process_takes_a_file_and_a_web_layer_and_reports_refusals_whole(qgis_process, echo, models,
                                                                              guide_files, tmp_path, kit):
    tif, template = guide_files
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(96, 128), origin=ORIGIN)
    runs = {"file.tif": tif, "web.tif": f"wms://{xyz_uri(template)}"}
    for name, guide in runs.items():
        done = qgis_process("run", "terraform:terraformdem", "--", f"INPUT={dem}", f"MODEL={echo}", f"GUIDE={guide}",
                            f"OUTPUT={tmp_path / name}")
        assert done.returncode == 0, done.stdout + done.stderr
    file_blocks, lon, _, meta = blocks_and_lonlat(tmp_path / "file.tif")
    web_blocks, _, _, web_meta = blocks_and_lonlat(tmp_path / "web.tif")
    np.testing.assert_allclose(file_blocks[0], guides.red_at(lon), atol=1.5)
    assert np.abs(web_blocks - file_blocks).max() <= 3
    assert meta["TERRAFORM_GUIDE"] == "guide.tif" and web_meta["TERRAFORM_GUIDE"].endswith(f"xyz layer {template})")
    # A guide east of the DEM: the engine's whole message, both extents and the way out.
    east = guides.write(tmp_path / "east.tif", gt=(20.0, 0.01, 0.0, 45.0, 0.0, -0.01))
    bad = qgis_process("run", "terraform:terraformdem", "--", f"INPUT={dem}", f"MODEL={echo}", f"GUIDE={east}",
                       f"OUTPUT={tmp_path / 'bad.tif'}")
    text = bad.stdout + bad.stderr
    assert bad.returncode != 0
    assert f"the guide {east} does not overlap the DEM: the guide covers x " in text
    assert "(both in the DEM's CRS); choose a guide that covers the DEM's area, or run without one" in text
    refused = qgis_process("run", "terraform:terraformdem", "--", f"INPUT={dem}", f"MODEL={models['identity']}",
                           f"GUIDE={tif}", f"OUTPUT={tmp_path / 'bad.tif'}")
    assert refused.returncode != 0
    assert "test-identity is a contract-1 model, which takes no colour guide" in refused.stdout + refused.stderr
    assert not [name for name in os.listdir(tmp_path) if name.startswith(("bad", ".bad"))]  # nor a temporary
