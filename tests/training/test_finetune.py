"""Fine-tuning on your own region, end to end on a tiny synthetic one: GeoTIFFs -> training.prepare -> trainable
weights -> training.finetune -> the ONNX the plugin's engine loads, with the region as a new look after the old."""

import json
import os

import numpy as np
import pytest
from osgeo import gdal

from terraform_plugin.core import pipeline
from terraform_plugin.core.model import TerraformModel
from terraform_plugin.core.ramp import training_ramp
from terraform_plugin.core.request import TerraformRequest
from training import checkpoint as ckpt
from training.finetune import main as finetune
from training.prepare import main as prepare
from training.trainable import main as pack
from rasters import terrain, write_tif

gdal.UseExceptions()
LABEL = "Test fjords — spruce slopes, bare rock above"
# Tiny nets on the CPU (tests/training/conftest.py TINY), less the build flags the trainable weights fix.
RUN_FLAGS = ["--batch-size", "1", "--device", "cpu", "--val-chips", "2", "--precision", "fp32"]


def region(tmp_path):
    """A DEM and imagery of 560 x 300 px at 200 m in UTM 33N, about 63.1 N: two chips, far north of the tiny
    model's 44-45 N."""
    z = terrain(300, 560, seed=7, low=-100.0, high=1800.0)
    rgb = training_ramp().colourise(z).astype(np.float32)
    imagery = np.clip(np.stack([0.5 * rgb[..., 1], 0.4 * rgb[..., 0] + 0.3 * rgb[..., 2], 180 - 0.5 * rgb[..., 2]]),
                      0, 255).astype(np.uint8)
    origin = (450000.0, 7000000.0)
    dem = write_tif(tmp_path / "dem.tif", z[None], 32633, origin, 200.0)
    img = write_tif(tmp_path / "ortho.tif", imagery, 32633, origin, 200.0)
    return dem, img


@pytest.fixture(scope="module")
def weights(tiny_run, tmp_path_factory):
    out, _ = tiny_run
    path = str(tmp_path_factory.mktemp("weights") / "terraform_trainable.pt")
    pack(["--checkpoint", os.path.join(out, "checkpoints", "last.pt"), "--output", path, "--version", "0.9.0"])
    return path


def test_fine_tune_adds_the_region_as_a_look_the_plugin_runs(weights, tmp_path):
    dem, img = region(tmp_path)
    data = tmp_path / "data"
    prepare(["--dem", dem, "--imagery", img, "--region", "FJORDS", "--label", LABEL, "--out", str(data),
             "--licence", "own survey, CC BY 4.0"])
    model_path = str(tmp_path / "models" / "fjords.onnx")
    result = finetune(["--data", str(data), "--out", str(tmp_path / "run"), "--weights", weights, "--steps", "4",
                       "--export", model_path, *RUN_FLAGS])

    # Both nets started from the weights; the count of images goes on from theirs (3) by 4 steps of 1.
    state = ckpt.load(str(tmp_path / "run" / "checkpoints" / "last.pt"))
    d = state["warm_start"]["discriminator"]
    assert d["parameters"] == d["of_parameters"]
    assert state["images_seen"] == 7 and state["args"]["lr"] == 1e-4

    model = TerraformModel(model_path, use_gpu=False)
    meta = model.metadata
    assert [lk.id for lk in meta.looks] == ["ALPHA", "FJORDS"] == result["looks"]
    assert [lk.label for lk in meta.looks] == ["Alpha land", LABEL]
    assert meta.version == "0.9.0+fjords" and meta.extra["images_seen"] == 7
    assert "own survey, CC BY 4.0" in meta.extra["licence"] and "CC BY-NC-SA 4.0" in meta.extra["licence"]
    # The trained latitude range keeps the old model's 44-45 N and reaches the new region's ~63 N.
    low, high = meta.plane("latitude").options["range_deg"]
    assert low <= 44.0 and 63.0 < high < 63.5

    # The new look's channel learnt something: the same tile painted as FJORDS differs from "auto".
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (1, 3, 64, 64)).astype(np.float32)
    planes = {"latitude": np.full((1, 1, 8, 8), 0.7, np.float32), "guide_rgb": np.zeros((1, 3, 8, 8), np.float32),
              "guide_mask": np.zeros((1, 1, 8, 8), np.float32), "look": np.zeros((1, 2, 8, 8), np.float32)}
    auto = model.run(x, planes)
    planes["look"][:, 1] = 1.0
    assert np.abs(model.run(x, planes) - auto).max() > 1e-5

    # The engine runs it with the new look, and says so in the output.
    out = str(tmp_path / "terraformed.tif")
    pipeline.run(TerraformRequest(dem, out, model_path, look="FJORDS", threads=1))
    ds = gdal.Open(out)
    assert (ds.RasterXSize, ds.RasterYSize) == (560, 300)
    assert ds.GetMetadataItem("TERRAFORM_LOOK").startswith("FJORDS")
    assert ds.GetRasterBand(1).ReadAsArray().std() > 0

    # ... and what the next fine-tune starts from: this run's trainable weights, both looks, 7 images.
    again = ckpt.load(str(tmp_path / "run" / "trainable.pt"))
    assert [lk["id"] for lk in again["conditioning"]["looks"]] == ["ALPHA", "FJORDS"] and again["images_seen"] == 7


def test_fine_tune_refuses_what_would_not_take_the_weights(weights, tmp_path):
    with pytest.raises(SystemExit):  # the build is the weights'
        finetune(["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--weights", weights, "--ngf", "8"])
    released = tmp_path / "terraform_generator.onnx"  # refused by its kind, before it is read
    released.write_bytes(b"not read")
    with pytest.raises(SystemExit, match="no discriminator"):
        finetune(["--data", str(tmp_path), "--out", str(tmp_path / "run"), "--weights", str(released)])
    dem, img = region(tmp_path)
    data = tmp_path / "data100"
    prepare(["--dem", dem, "--imagery", img, "--region", "FJORDS", "--out", str(data), "--resolution", "100"])
    with pytest.raises(SystemExit, match="Prepare your region with --resolution 200"):
        finetune(["--data", str(data), "--out", str(tmp_path / "run"), "--weights", weights])
    assert not os.path.exists(tmp_path / "run")
    manifest = json.loads((data / "manifest.json").read_text())
    assert manifest["regions"]["FJORDS"]["resolution_m"] == 100.0
