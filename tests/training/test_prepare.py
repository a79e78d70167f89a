import json
import os

import numpy as np
from osgeo import gdal
from PIL import Image

from terraform_plugin.core.ramp import training_ramp
from training.data import find_pairs
from training.prepare import main as prepare
from rasters import transformed_bounds, write_tif

gdal.UseExceptions()


def test_dem_and_imagery_in_different_crs_become_aligned_chips(tmp_path):
    # DEM: geographic, ~80 x 110 m pixels, elevation rising west -> east, a no-data corner. Imagery: UTM 33N
    # at 100 m, red rising west -> east over its own grid. Aligned chips keep the two gradients together.
    lon0, lat0, step = 14.0, 46.0, 0.001
    h, w = 1000, 1400
    z = np.tile(np.linspace(-50, 4000, w, dtype=np.float32), (h, 1))
    z[:40, :40] = -32767
    dem = write_tif(tmp_path / "dem.tif", z[None], 4326, (lon0, lat0), step, nodata=-32767)
    b = transformed_bounds(4326, 32633, lon0, lat0 - h * step, lon0 + w * step, lat0)
    x0, y1 = b[0] - 2000, b[3] + 2000
    cols, rows = int((b[2] - x0) / 100) + 40, int((y1 - b[1]) / 100) + 40
    xs = x0 + 100 * (np.arange(cols) + 0.5)
    red = np.tile(((xs - b[0]) / (b[2] - b[0]) * 255).clip(0, 255), (rows, 1)).astype(np.uint8)
    rgb = np.stack([red, np.full_like(red, 90), np.full_like(red, 30)])
    img = write_tif(tmp_path / "rgb.tif", rgb, 32633, (x0, y1), 100.0)

    out = tmp_path / "dataset"
    manifest = prepare(["--dem", dem, "--imagery", img, "--region", "ALPS", "--out", str(out),
                        "--licence", "test data"])
    entry = manifest["regions"]["ALPS"]
    assert entry["crs"] == "EPSG:32633" and entry["chips"] >= 2 and entry["licence"] == "test data"
    assert json.load(open(out / "manifest.json"))["total_chips"] == entry["chips"]
    pairs = find_pairs([str(out)])
    assert len(pairs) == entry["chips"] and {p.region for p in pairs} == {"ALPS"}
    ramp = training_ramp()
    for p in pairs:
        elev = np.asarray(Image.open(p.elevation)).astype(float)
        sat = np.asarray(Image.open(p.satellite)).astype(float)
        assert elev.shape == sat.shape == (256, 256, 3)
        # Both images run west -> east: the ramp colour's position and the red channel agree column by column.
        dist = ((elev[128][:, None, :] - ramp.colours[None]) ** 2).sum(-1)  # (256 columns, K stops)
        z_est = ramp.elevations[dist.argmin(1)]
        land = elev[128].min(1) < 200  # white = sea (below 0 m): not on the ramp
        assert np.corrcoef(z_est[land], sat[128, land, 0])[0, 1] > 0.95
    sea_chip = [p for p in pairs if p.col == 0 and p.row > 0]  # the west edge, below 0 m
    assert sea_chip and np.all(np.asarray(Image.open(sea_chip[0].elevation))[128, 0] > 240)


def test_seed_layout_folders_are_linked_and_counted(pairs_dir, tmp_path):
    out = tmp_path / "linked"
    manifest = prepare(["--pairs", pairs_dir, "--out", str(out)])
    assert {r: e["chips"] for r, e in manifest["regions"].items()} == {"ALPHA": 3, "BETA": 2}
    assert os.path.islink(out / "ALPHA")
    assert len(find_pairs([str(out)])) == 5
