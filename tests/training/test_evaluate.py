import json
import math
import os

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

from terraform_plugin.core.ramp import training_ramp
from training.chip_eval import ChipRunner, GuideRecipe, guide_recipes
from training.conditioning import guide_planes
from v1models import write_model
from training.data import find_pairs, load_rgb
from training.evaluate import main as evaluate
from training.mosaic_eval import GUIDE_UNSUPPORTED, guide_supported
from training.regions import dataset_regions

import v2models  # tests/: the contract-2 test models

CONTRACT2_SOURCES = {"model", "model_guide", "model_guide_other", "guide", "guide_other", "baseline"}


def write_guide_echo(path):
    """A contract-2 model (latitude, guide; receptive radius 0) that returns the DEM's colours where it has no
    guide and the guide plane (nearest x8) where it has one: what the engine fed it, read back as a picture."""
    specs = v2models.input_specs(["latitude", "guide_rgb", "guide_mask"])
    nodes = [
        helper.make_node("Resize", ["guide_rgb", "", "up"], ["guide_up"], mode="nearest"),
        helper.make_node("Resize", ["guide_mask", "", "up"], ["mask_up"], mode="nearest"),
        helper.make_node("Sub", ["guide_up", "dem_rgb"], ["towards_guide"]),
        helper.make_node("Mul", ["towards_guide", "mask_up"], ["guided"]),
        helper.make_node("Resize", ["latitude", "", "up"], ["latitude_up"], mode="nearest"),
        helper.make_node("Mul", ["latitude_up", "zero"], ["unused"]),
        helper.make_node("Add", ["dem_rgb", "guided"], ["with_guide"]),
        helper.make_node("Add", ["with_guide", "unused"], ["satellite_rgb"]),
    ]
    inits = [numpy_helper.from_array(np.array([1, 1, v2models.STRIDE, v2models.STRIDE], np.float32), "up"),
             numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    output = helper.make_tensor_value_info("satellite_rgb", TensorProto.FLOAT, ["N", 3, "H", "W"])
    return v2models._save(nodes, inits, v2models._value_infos(specs), output, v2models.v2_metadata(specs, radius=0),
                          path)


def test_evaluate_scores_a_contract2_model_as_a_user_runs_a_place(exported, pairs_dir, tmp_path):
    """Its own latitude and look auto without a guide (the headline), with the guide training makes and with one
    made differently, the guides scored as pictures themselves, beside the baseline; per role."""
    report = str(tmp_path / "report")
    summary = evaluate(["--model", exported[0], "--data", pairs_dir, "--out", report])
    with open(os.path.join(report, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics == json.loads(json.dumps(summary))
    assert metrics["contract"] == 2
    assert {r: v["role"] for r, v in metrics["regions"].items()} == {"ALPHA": "train", "BETA": "validation"}
    assert set(metrics["by_role"]) == {"train", "validation"}
    beta = metrics["regions"]["BETA"]
    assert set(beta) - {"role"} == CONTRACT2_SOURCES
    assert all(beta[s]["chips"] == 2 for s in CONTRACT2_SOURCES)
    for source in CONTRACT2_SOURCES:
        for key in ("l1", "psnr", "ssim", "sharpness_ratio", "colour_distance", "spectrum_worst_factor"):
            assert np.isfinite(beta[source][key]), (source, key)
        assert len(beta[source]["spectrum_ratio"]) == 5  # 2-4 ... 32-64 px on 256 px chips
    # The synthetic imagery is a pure colour function of the ramp: the lookup baseline must nearly solve it,
    # and a 3-step generator must not.
    assert beta["baseline"]["l1"] < 3 < beta["model"]["l1"]
    # The guide is really fed: the same chips come out otherwise with it.
    assert beta["model_guide"]["l1"] != beta["model"]["l1"]
    # A guide is palette without detail; the one made differently is further off than training's.
    assert beta["guide"]["sharpness_ratio"] < 0.5
    assert beta["guide"]["colour_distance"] < beta["guide_other"]["colour_distance"]
    assert metrics["conditioning"]["guides"] == {"guide": "32 px cells", "guide_other": "64 px cells, colours x "
                                                 "1.04/0.98/0.94"}
    assert metrics["conditioning"]["places"]["BETA"]["latitude_deg"] == [39.0, 40.0]
    text = open(os.path.join(report, "report.md")).read()
    assert "BETA (validation) model + other guide" in text and "Spectrum per octave" in text
    grid = Image.open(os.path.join(report, "grid.png"))
    assert metrics["grid_columns"] == ["input", "real", "model", "model + guide", "guide alone", "baseline"]
    assert grid.width == round((6 * 256 + 5 * 4) * 0.5)


def test_evaluate_guide_cell_flag_and_no_guides(exported, pairs_dir, tmp_path):
    summary = evaluate(["--model", exported[0], "--data", pairs_dir, "--out", str(tmp_path / "a"), "--regions",
                        "BETA", "--no-mosaics", "--guide-cell", "128"])
    assert summary["conditioning"]["guides"]["guide_other"].startswith("128 px cells")
    summary = evaluate(["--model", exported[0], "--data", pairs_dir, "--out", str(tmp_path / "b"), "--regions",
                        "BETA", "--no-mosaics", "--no-guides"])
    assert set(summary["regions"]["BETA"]) == {"role", "model", "baseline"}
    assert summary["grid_columns"] == ["input", "real", "model", "baseline"]


def test_chips_get_their_own_latitude_rows_north_to_south(pairs_dir, tmp_path):
    """The latitude-echo model returns the latitude plane it was fed: a BETA chip (40 N at its top edge, 39 N
    at its bottom, from the dataset's manifest) reads back its block centres' latitudes, north row first."""
    model_path = v2models.write_latitude_echo(tmp_path / "echo.onnx",
                                              latitude={"absolute": True, "scale": 1 / 45, "range_deg": [0, 45]})
    from terraform_plugin.core.model import TerraformModel

    model = TerraformModel(model_path, threads=1)
    pair = [p for p in find_pairs([pairs_dir]) if p.region == "BETA"][1]
    runner = ChipRunner(model, dataset_regions([pairs_dir]))
    elev, real = np.asarray(load_rgb(pair.elevation)), np.asarray(load_rgb(pair.satellite))
    out = runner.predict([pair], elev[None], real[None])["model"][0, :, :, 0].astype(float)
    degrees = out / 127.5 - 1.0  # the output's scaling back to the plane, then x 45
    first, last = 40.0 - 4 / 256, 39.0 + 4 / 256  # centres of the first and last 8 px blocks
    assert np.allclose(degrees[:8] * 45, first, atol=0.2) and np.allclose(degrees[-8:] * 45, last, atol=0.2)
    assert (np.diff(out[::8, 0]) <= 0).all()


def test_guide_recipes_make_the_guide_training_makes_and_a_coarser_shifted_one():
    rng = np.random.default_rng(3)
    image = rng.integers(0, 256, (256, 256, 3)).astype(np.uint8)
    same, other = guide_recipes(32)
    assert np.allclose(same.planes(image, 8), guide_planes(image, 32, 8))
    assert other.cell == 64 and other.gain != (1.0, 1.0, 1.0)
    # A cell cut by the image's edge averages the pixels it holds, as GDAL's average resampling does.
    cells = GuideRecipe("guide", 32).cells(image[:40, :40])
    assert cells.shape == (2, 2, 3)
    assert np.allclose(cells[1, 1], image[32:40, 32:40].reshape(-1, 3).mean(0))
    # As a picture: the cells' colours interpolated back, no detail left.
    picture = same.picture(image)
    assert picture.shape == image.shape and picture.std() < image.std() / 10


def test_evaluate_contract1_models_as_before(pairs_dir, tmp_path):
    """A contract-1 model (here the identity) is scored as ever: model and baseline only, no conditioning."""
    model = write_model(tmp_path / "identity.onnx")
    summary = evaluate(["--model", model, "--data", pairs_dir, "--regions", "BETA", "--out", str(tmp_path / "r"),
                        "--no-mosaics"])
    assert summary["contract"] == 1 and "conditioning" not in summary
    assert set(summary["regions"]["BETA"]) == {"role", "model", "baseline"}
    assert summary["baseline_fit_regions"] == ["ALPHA"]
    assert summary["grid_columns"] == ["input", "real", "model", "baseline"]
    beta = summary["regions"]["BETA"]
    # The identity returns the ramp's colours, which the synthetic imagery transforms: far from it.
    assert beta["model"]["l1"] > 10 * beta["baseline"]["l1"]


def test_evaluate_needs_only_model_and_data(exported, pairs_dir, tmp_path, monkeypatch):
    """A folder without the model's training regions: the baseline comes from --baseline-data; no --out. The
    region's place comes from the seed table or a manifest: a folder without either is refused by name."""
    only_beta = tmp_path / "data"
    only_beta.mkdir()
    os.symlink(os.path.join(pairs_dir, "BETA"), only_beta / "BETA")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match="region BETA: its place on the planet is unknown"):
        evaluate(["--model", exported[0], "--data", str(only_beta), "--baseline-data", pairs_dir, "--no-mosaics"])
    os.symlink(os.path.join(pairs_dir, "manifest.json"), only_beta / "manifest.json")
    summary = evaluate(["--model", exported[0], "--data", str(only_beta), "--baseline-data", pairs_dir,
                        "--no-mosaics", "--no-guides"])
    assert summary["baseline_fit_regions"] == ["ALPHA"]
    assert set(summary["regions"]) == {"BETA"}
    assert os.path.isfile(tmp_path / "runs" / f"eval-{summary['model_name']}" / "metrics.json")


def _paste_mosaics(pairs_dir, folder, region="BETA", number=2):
    """A 2x2-chip mosaic of the region's chips (elevation and imagery), named as the seed mosaics are."""
    beta = sorted(os.listdir(os.path.join(pairs_dir, region)))
    elev = [Image.open(os.path.join(pairs_dir, region, n)) for n in beta if n.endswith("c.jpg")]
    sat = [Image.open(os.path.join(pairs_dir, region, n)) for n in beta if not n.endswith("c.jpg")]
    folder.mkdir()
    for name, chips in ((f"{number}{region}c.jpg", elev), (f"{number}{region}.jpg", sat)):
        big = Image.new("RGB", (512, 512))
        for i in range(4):
            big.paste(chips[i % len(chips)], ((i % 2) * 256, (i // 2) * 256))
        big.save(folder / name, quality=95)
    return folder


def test_evaluate_runs_held_out_mosaics_through_the_engine_contract1(pairs_dir, tmp_path):
    """A contract-1 model's 2x2-chip mosaic of the held-out region, whole through core.pipeline, at each overlap:
    scores (chip grid included) and pictures."""
    mosaics = _paste_mosaics(pairs_dir, tmp_path / "mosaics")
    model = write_model(tmp_path / "identity.onnx")
    report = tmp_path / "report"
    summary = evaluate(["--model", model, "--data", pairs_dir, "--regions", "BETA", "--out", str(report),
                        "--mosaics", str(mosaics), "--overlaps", "0", "64"])
    got = {(m["region"], m["overlap"]) for m in summary["mosaics"]}
    assert got == {("BETA", 0), ("BETA", 64)}
    for m in summary["mosaics"]:
        assert m["chips"] == (4 if m["overlap"] == 0 else 9)
        for key in ("l1", "colour_distance", "sharpness_ratio", "periodic_share", "chip_grid_score",
                    "chip_grid_score_real", "spectrum_worst_factor"):
            assert np.isfinite(m[key])
        for picture in m["pictures"]:
            assert os.path.getsize(report / picture) > 0
    assert "Whole mosaics through the engine" in open(report / "report.md").read()


def test_evaluate_runs_a_placed_mosaic_through_the_engine_contract2(pairs_dir, tmp_path):
    """A contract-2 model and a small mosaic placed on Earth (EPSG:4326 bounds in the dataset's manifest, 190 m
    east-west pixels that the engine resamples to 200 m): the real image warped onto the output's grid lines up
    with it pixel for pixel, the guides are made and scored, and the guided runs go through the engine's GUIDE."""
    from training.prepare import update_manifest

    ramp = training_ramp()
    size = 512
    y, x = np.mgrid[0:size, 0:size]
    z = 300 + 3000 * x / size + 600 * np.sin(2 * np.pi * y / 23) * np.cos(2 * np.pi * x / 17)
    mosaics = tmp_path / "mosaics"
    mosaics.mkdir()
    colourised = ramp.colourise(z)
    Image.fromarray(colourised).save(mosaics / "2BETAc.jpg", quality=95)
    # The "real" mosaic is the elevation's own colours: an identity model must reproduce it where aligned.
    Image.fromarray(colourised).save(mosaics / "2BETA.jpg", quality=95)
    data = tmp_path / "data"
    data.mkdir()
    os.symlink(os.path.join(pairs_dir, "BETA"), data / "BETA")
    top, dy = 40.0, 0.2 / 111.32
    dx = 0.19 / (111.32 * math.cos(math.radians(top - size * dy / 2)))
    update_manifest(str(data), {"BETA": {"chips": 2, "top_lat": top, "bottom_lat": top - size * dy,
                                         "left_lon": -105.0, "right_lon": -105.0 + size * dx, "side_px": size,
                                         "projection": "equirectangular", "uncertainty_deg": 0.0}})
    model = write_guide_echo(tmp_path / "guide_echo.onnx")
    report = tmp_path / "report"
    summary = evaluate(["--model", model, "--data", str(data), "--baseline-data", pairs_dir, "--out", str(report),
                        "--mosaics", str(mosaics), "--max-per-region", "1"])
    [run] = summary["mosaics"]
    assert run["source"] == "model" and run["region"] == "BETA"
    width, height = run["grid"]
    assert abs(width - size * 0.95) <= 3 and abs(height - size) <= 3  # 190 m -> 200 m pixels east-west
    y0, y1, x0, x1 = run["window"]
    assert (y1 - y0) >= height - 2 and (x1 - x0) >= width - 2
    # Aligned, the engine's colours of the bilinear elevation and the bilinear warp of the colours differ by
    # ~2 DN on this rough relief; one pixel off they differ by 5-6.
    assert run["l1"] < 3.0
    for key in ("colour_distance", "sharpness_ratio", "periodic_share", "spectrum_worst_factor"):
        assert np.isfinite(run[key])
    assert 0.8 < run["sharpness_ratio"] < 1.2
    # the relief's waves (17 and 23 px, and their sums and differences through the ramp), reproduced: the
    # pattern's size comes out as the real image's, whatever the two pictures' shares
    assert run["periodic_amplitude_real"] > 1.0
    assert run["periodic_amplitude"] == pytest.approx(run["periodic_amplitude_real"], rel=0.25)
    by_source = {m["source"]: m for m in summary["mosaic_guides"]}
    assert set(by_source) == {"model_guide", "model_guide_own", "model_guide_other", "guide", "guide_other"}
    # The guides as pictures: palette, no texture; the coarser, shifted one further off.
    assert by_source["guide"]["sharpness_ratio"] < 0.3
    assert by_source["guide"]["l1"] < by_source["guide_other"]["l1"]
    if guide_supported():
        # The guide-echo model paints the guide the engine made of the guide GeoTIFF: near the guide itself.
        # (measured: L1 14.5 against the guide's own 14.3 on this mosaic).
        # Held to the guide or not (strength 0, "own"), an echo of the guide stays near the guide.
        for echo, guide in (("model_guide", "guide"), ("model_guide_own", "guide"), ("model_guide_other", "guide_other")):
            assert by_source[echo]["l1"] == pytest.approx(by_source[guide]["l1"], rel=0.1)
            assert by_source[echo]["colour_distance"] == pytest.approx(by_source[guide]["colour_distance"], rel=0.15)
    else:
        assert by_source["model_guide"]["skipped"] == GUIDE_UNSUPPORTED
    for picture in run["pictures"]:
        assert Image.open(report / picture).width > 0
    text = open(report / "report.md").read()
    assert "Whole mosaics on their place on Earth" in text and "| BETA | guide alone |" in text
    if guide_supported():
        assert "| BETA | model + guide, not held (strength 0) |" in text
