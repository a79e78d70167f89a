"""LOOK, LATITUDE and TILE_SIZE in QGIS: the dialog's looks are the bundled model's, read without onnxruntime;
the command line takes a look by index or id; the engine judges the look and latitude against the chosen
model and QGIS reports its words."""

import os
import shutil

import onnx
import pytest
from osgeo import gdal

import v2models


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    return v2models.write_unet(tmp_path_factory.mktemp("models") / "unet.onnx", kinds=("latitude", "look"))


def metadata(path):
    return gdal.Open(str(path)).GetMetadata()


def test_look_by_id_or_index_and_latitude_reach_the_run(run_alg, unet, dem, tmp_path):
    out = tmp_path / "andes.tif"
    _, feedback = run_alg({"INPUT": dem, "MODEL": unet, "LOOK": "andes", "LATITUDE": -19.5, "TILE_SIZE": 304,
                           "OUTPUT": str(out)})
    meta = metadata(out)
    assert (meta["TERRAFORM_LOOK"], meta["TERRAFORM_LATITUDE"], meta["TERRAFORM_LATITUDE_DEG"]) == (
        "ANDES", "LATITUDE", "-19.5")
    assert meta["TERRAFORM_TILE"] == "304x192" and meta["TERRAFORM_MARGIN"] == "24"  # 300 x 280 px: 2 x 2 tiles
    # Index 0 (what the dialog, batch mode and the Model Designer store) is auto; the default too.
    for params in ({"LOOK": 0}, {}):
        run_alg({"INPUT": dem, "MODEL": unet, "OUTPUT": str(tmp_path / "auto.tif"), **params})
        assert metadata(tmp_path / "auto.tif")["TERRAFORM_LOOK"] == "auto"


def test_an_undeclared_look_or_a_latitude_for_a_contract_1_model_is_refused(run_alg, unet, models, dem, tmp_path):
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match=r"'SAHARA' is not one of test-unet-v2's looks: auto, ANDES"):
        run_alg({"INPUT": dem, "MODEL": unet, "LOOK": "SAHARA", "OUTPUT": str(tmp_path / "a.tif")})
    with pytest.raises(QgsProcessingException, match="contract-1 model, which takes no latitude"):
        run_alg({"INPUT": dem, "MODEL": models["identity"], "LATITUDE": 45, "OUTPUT": str(tmp_path / "b.tif")})
    with pytest.raises(QgsProcessingException, match="LOOK 9 is no option"):
        run_alg({"INPUT": dem, "MODEL": unet, "LOOK": 9, "OUTPUT": str(tmp_path / "c.tif")})
    assert sorted(os.listdir(tmp_path)) == ["dem.tif"]


@pytest.fixture(scope="module")
def v2_bundled(built_plugin, unet, tmp_path_factory):
    """The built plugin with the test U-Net as its bundled model, and no onnxruntime (deps/ left out)."""
    plugins = tmp_path_factory.mktemp("v2plugins")
    shutil.copytree(built_plugin / "terraform_plugin", plugins / "terraform_plugin", symlinks=True,
                    ignore=shutil.ignore_patterns("deps"))
    models = plugins / "terraform_plugin" / "models"
    models.mkdir(exist_ok=True)
    shutil.copy(unet, models / "terraform_generator.onnx")
    return plugins


def test_the_dialog_lists_the_bundled_models_looks_without_onnxruntime(v2_bundled, unet, tmp_path,
                                                                       qgis_process_factory):
    run = qgis_process_factory(v2_bundled, tmp_path / "profile")
    helped = run("help", "terraform:terraformdem")
    assert helped.returncode == 0, helped.stdout + helped.stderr
    looks = [e for e in onnx.load(unet).metadata_props if e.key == "looks"]
    assert looks  # read here with the onnx package, the plugin reads the file itself
    text = helped.stdout
    assert "LOOK:" in text and "0: auto - latitude and elevation decide" in text
    for index, look in enumerate(v2models.LOOKS, start=1):
        assert f"{index}: {look['id']} - {look['label']}" in text


@pytest.fixture(scope="module")
def look_unet(tmp_path_factory):
    return v2models.write_unet(tmp_path_factory.mktemp("models") / "look_unet.onnx", kinds=("look",))


def test_qgis_process_takes_a_look_by_id_and_reports_a_wrong_one(qgis_process, look_unet, tmp_path, kit):
    unet = look_unet
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 80))
    out = tmp_path / "out.tif"
    done = qgis_process("run", "terraform:terraformdem", "--", f"INPUT={dem}", f"MODEL={unet}", "LOOK=HIMALAYA",
                        "TILE_SIZE=304", f"OUTPUT={out}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert metadata(out)["TERRAFORM_LOOK"] == "HIMALAYA"
    bad = qgis_process("run", "terraform:terraformdem", "--", f"INPUT={dem}", f"MODEL={unet}", "LOOK=SAHARA",
                       f"OUTPUT={tmp_path / 'bad.tif'}")
    assert bad.returncode != 0 and "is not one of test-unet-v2's looks: auto, ANDES" in bad.stdout + bad.stderr
    assert not (tmp_path / "bad.tif").exists()
