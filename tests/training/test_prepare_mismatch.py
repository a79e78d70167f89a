"""Issue 11: training.prepare on mismatched inputs - specific errors, or handled (reprojected, alpha dropped) - and
its outputs damaged after the fact (manifest, a chip) named when read."""

import hashlib
import json
import os
import re

import numpy as np
import pytest
from osgeo import gdal
from PIL import Image

from training.data import PairDataset, find_pairs
from training.prepare import main as prepare
from training.train import data_resolution_m
from rasters import transformed_bounds, write_tif

gdal.UseExceptions()


def dem(tmp_path, size=600):
    z = np.tile(np.linspace(10, 3000, size, dtype=np.float32), (size, 1))
    return write_tif(tmp_path / "dem.tif", z[None])


def rgb(size=600, bands=3):
    values = [np.full((size, size), v, np.uint8) for v in (200, 120, 60, 255)][:bands]
    return np.stack(values)


def run(tmp_path, dem_path, img_path):
    return prepare(["--dem", dem_path, "--imagery", img_path, "--region", "R", "--out", str(tmp_path / "out"),
                    "--resolution", "100"])


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def refused(tmp_path, dem_path, img_path, *fragments):
    before = {p: sha(p) for p in (dem_path, img_path)}
    with pytest.raises(SystemExit) as caught:
        run(tmp_path, dem_path, img_path)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment in message, message
    assert {p: sha(p) for p in before} == before  # the inputs' checksums unchanged
    assert not os.path.exists(tmp_path / "out")  # nothing half-made
    return message


def test_imagery_that_does_not_overlap_the_dem(tmp_path):
    far = write_tif(tmp_path / "rgb.tif", rgb(), origin=(900000.0, 4600000.0))  # 400 km east
    refused(tmp_path, dem(tmp_path), far, "do not overlap", "the DEM covers", "the imagery x 900000")


@pytest.mark.parametrize("bands, fragment", [(1, "one band"), (2, "two bands")])
def test_imagery_without_three_colour_bands(tmp_path, bands, fragment):
    img = write_tif(tmp_path / "grey.tif", rgb(bands=bands))
    refused(tmp_path, dem(tmp_path), img, "imagery must be colour", fragment)


def test_rgb_plus_alpha_band_ignores_alpha_and_masks_transparent_pixels(tmp_path):
    bands = rgb(bands=4)
    bands[3, :, :250] = 0  # the west chips transparent (their colour values are garbage)
    bands[:3, :, :250] = 0
    img = write_tif(tmp_path / "rgba.tif", bands, alpha=True)
    manifest = run(tmp_path, dem(tmp_path), img)
    entry = manifest["regions"]["R"]
    assert entry["chips"] == 2 and entry["skipped_nodata"] == 2  # only the opaque east chips
    for pair in find_pairs([str(tmp_path / "out")]):
        assert pair.col == 256
        sat = np.asarray(Image.open(pair.satellite)).astype(int)
        assert sat.shape == (256, 256, 3)
        assert np.abs(sat - [200, 120, 60]).max() <= 3  # the colour, not alpha, not the black west part


def test_rgba_without_colour_interpretation_treats_band_4_as_alpha(tmp_path):
    bands = rgb(bands=4)
    bands[3, :, :250] = 0
    img = write_tif(tmp_path / "rgba.tif", bands, alpha=False)
    assert run(tmp_path, dem(tmp_path), img)["regions"]["R"]["chips"] == 2


def test_imagery_in_another_crs_is_reprojected(tmp_path):
    """UTM 33N DEM, imagery in Web Mercator over the same place: reprojected onto the DEM's grid."""
    d = dem(tmp_path)
    x0, y0, x1, y1 = transformed_bounds(32633, 3857, 490000.0, 4530000.0, 570000.0, 4610000.0)
    img = write_tif(tmp_path / "merc.tif", rgb(size=800), epsg=3857, origin=(x0, y1), pixel=(x1 - x0) / 800)
    manifest = run(tmp_path, d, img)
    assert manifest["regions"]["R"]["chips"] == 4 and manifest["regions"]["R"]["crs"] == "EPSG:32633"


def test_chips_are_written_whole(tmp_path):
    """No temporary files are left and every chip decodes: chips go through a hidden temp and a rename."""
    run(tmp_path, dem(tmp_path), write_tif(tmp_path / "rgb.tif", rgb()))
    folder = tmp_path / "out" / "R"
    assert not [n for n in os.listdir(folder) if n.startswith(".")]
    for name in os.listdir(folder):
        Image.open(folder / name).load()


def test_a_damaged_manifest_is_named_by_prepare_and_train(tmp_path):
    """manifest.json is written atomically; one cut short (a copy, an edit) is named, not a bare JSON error."""
    img = write_tif(tmp_path / "rgb.tif", rgb())
    run(tmp_path, dem(tmp_path), img)
    manifest = tmp_path / "out" / "manifest.json"
    text = manifest.read_text()
    json.loads(text)
    manifest.write_text(text[: len(text) // 2])
    with pytest.raises(SystemExit, match=r"manifest\.json is truncated or damaged"):
        data_resolution_m([str(tmp_path / "out")])
    with pytest.raises(SystemExit, match=r"manifest\.json is truncated or damaged"):
        run(tmp_path, dem(tmp_path), img)


def test_a_damaged_chip_is_named(tmp_path):
    run(tmp_path, dem(tmp_path), write_tif(tmp_path / "rgb.tif", rgb()))
    pairs = find_pairs([str(tmp_path / "out")])
    with open(pairs[0].satellite, "r+b") as f:
        f.truncate(os.path.getsize(pairs[0].satellite) // 2)
    with pytest.raises(OSError, match=re.escape(f"chip {pairs[0].satellite} is truncated or damaged")):
        PairDataset(pairs)[0]
