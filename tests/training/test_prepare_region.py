"""training.prepare --dem/--imagery puts the region on the planet: its chip grid and label in the manifest, and from
them every chip's latitude, as the trainer's conditioning planes see it."""

import json

import numpy as np
import pytest

from training.data import PairDataset, find_pairs
from training.conditioning import ConditioningSpec, LATITUDE_SCALE
from training.prepare import main as prepare
from training.regions import dataset_regions
from rasters import write_tif


def region_rasters(tmp_path, lon0=12.0, lat0=61.0, step=0.002, rows=700, cols=1000):
    """A geographic DEM (EPSG:4326) from lat0 southwards and imagery on the same grid: 1.4 x 2 degrees of
    Norway and Sweden, about 780 x 540 px at 200 m in UTM 33N."""
    z = np.tile(np.linspace(50, 2500, cols, dtype=np.float32), (rows, 1))
    dem = write_tif(tmp_path / "dem.tif", z[None], 4326, (lon0, lat0), step)
    rgb = np.stack([np.full((rows, cols), v, np.uint8) for v in (90, 120, 60)])
    img = write_tif(tmp_path / "rgb.tif", rgb, 4326, (lon0, lat0), step)
    return dem, img, (lat0 - rows * step, lat0)


def test_the_manifest_places_the_region_and_names_its_look(tmp_path):
    dem, img, (south, north) = region_rasters(tmp_path)
    out = tmp_path / "data"
    prepare(["--dem", dem, "--imagery", img, "--region", "FJORD", "--label", "Fjord country — spruce and bare rock",
             "--out", str(out)])
    entry = json.loads((out / "manifest.json").read_text())["regions"]["FJORD"]
    assert entry["label"] == "Fjord country — spruce and bare rock"
    grid = entry["grid"]
    assert "UTM zone 33N" in grid["wkt"] and grid["geotransform"][1] == pytest.approx(200.0)
    assert grid["width"] >= 2 * 256 and grid["height"] >= 3 * 256

    geo = dataset_regions([str(out)])["FJORD"]
    assert geo.label == entry["label"]
    # The UTM grid's box holds the DEM's 59.6-61 N rectangle and a little more: in UTM a parallel bows north
    # away from the central meridian, so the box's top stands up to ~0.1 degree north of 61 N.
    low, high = geo.latitude_range()
    assert south - 0.05 < low <= south + 0.01 and north - 0.01 <= high < north + 0.15
    assert geo.describe()["latitude_deg"] == [round(low, 3), round(high, 3)]

    # Each chip's latitude plane comes from its own rows of the grid: a chip further south sees a lower
    # latitude, by 256 px of 200 m per chip row, and across one chip the plane spans 248 px (its blocks' centres).
    pairs = find_pairs([str(out)])
    spec = ConditioningSpec(("FJORD",), (low, high))
    planes = PairDataset(pairs, conditioning=(spec, {"FJORD": geo}))
    column = sorted((p for p in pairs if p.col == pairs[0].col), key=lambda p: p.row)
    assert len(column) >= 2
    lat = [planes[pairs.index(p)][2][0].numpy() / LATITUDE_SCALE for p in column]
    degree_m = 111_400.0  # a degree of latitude near 60 N
    for upper, lower, a, b in zip(column, column[1:], lat, lat[1:]):
        assert a.mean() - b.mean() == pytest.approx((lower.row - upper.row) * 200 / degree_m, abs=0.01)
    assert lat[0][0].mean() - lat[0][-1].mean() == pytest.approx(248 * 200 / degree_m, abs=0.01)
    assert lat[-1].min() >= low and lat[0].max() <= high


def test_the_label_defaults_to_the_region_and_needs_a_dem(tmp_path, pairs_dir):
    dem, img, _ = region_rasters(tmp_path)
    out = tmp_path / "data"
    manifest = prepare(["--dem", dem, "--imagery", img, "--region", "VALLEY", "--out", str(out)])
    assert manifest["regions"]["VALLEY"]["label"] == "VALLEY"
    with pytest.raises(SystemExit):
        prepare(["--pairs", pairs_dir, "--out", str(tmp_path / "linked"), "--label", "no region to name"])
    with pytest.raises(SystemExit):
        prepare(["--dem", dem, "--imagery", img, "--region", "auto", "--out", str(out)])
