import json
import os
import numpy as np

from training.evaluate import main as evaluate


def test_evaluate_scores_model_and_baseline_per_region(exported, pairs_dir, tmp_path):
    model = exported[0]
    report = str(tmp_path / "report")
    summary = evaluate(["--model", model, "--data", pairs_dir, "--out", report])
    with open(os.path.join(report, "metrics.json")) as f:
        metrics = json.load(f)
    assert metrics == json.loads(json.dumps(summary))
    assert {r: v["role"] for r, v in metrics["regions"].items()} == {"ALPHA": "train", "BETA": "validation"}
    beta = metrics["regions"]["BETA"]
    assert beta["model"]["chips"] == beta["baseline"]["chips"] == 2
    for key in ("l1", "psnr", "ssim", "sharpness_ratio", "colour_distance"):
        assert key in beta["model"] and key in beta["baseline"]
    # The synthetic imagery is a pure colour function of the ramp: the lookup baseline must nearly solve it,
    # and a 3-step generator must not.
    assert beta["baseline"]["l1"] < 3 < beta["model"]["l1"]
    text = open(os.path.join(report, "report.md")).read()
    assert "BETA (validation) baseline" in text and "grid.png" in text
    assert os.path.getsize(os.path.join(report, "grid.png")) > 0


def test_evaluate_needs_only_model_and_data(exported, pairs_dir, tmp_path, monkeypatch):
    """A folder without the model's training regions: the baseline comes from --baseline-data; no --out."""
    only_beta = tmp_path / "data"
    only_beta.mkdir()
    os.symlink(os.path.join(pairs_dir, "BETA"), only_beta / "BETA")
    monkeypatch.chdir(tmp_path)
    summary = evaluate(["--model", exported[0], "--data", str(only_beta), "--baseline-data", pairs_dir,
                        "--no-mosaics"])
    assert summary["baseline_fit_regions"] == ["ALPHA"]
    assert set(summary["regions"]) == {"BETA"}
    assert os.path.isfile(tmp_path / "runs" / f"eval-{summary['model_name']}" / "metrics.json")


def test_evaluate_runs_held_out_mosaics_through_the_engine(exported, pairs_dir, tmp_path):
    """A 2x2-chip mosaic of the held-out region, whole through core.pipeline: scores and pictures."""
    from PIL import Image

    beta = sorted(os.listdir(os.path.join(pairs_dir, "BETA")))
    elev = [Image.open(os.path.join(pairs_dir, "BETA", n)) for n in beta if n.endswith("c.jpg")]
    sat = [Image.open(os.path.join(pairs_dir, "BETA", n)) for n in beta if not n.endswith("c.jpg")]
    mosaics = tmp_path / "mosaics"
    mosaics.mkdir()
    for name, chips in (("2BETAc.jpg", elev), ("2BETA.jpg", sat)):
        big = Image.new("RGB", (512, 512))
        for i in range(4):
            big.paste(chips[i % len(chips)], ((i % 2) * 256, (i // 2) * 256))
        big.save(mosaics / name, quality=95)
    report = tmp_path / "report"
    summary = evaluate(["--model", exported[0], "--data", pairs_dir, "--out", str(report), "--mosaics",
                        str(mosaics), "--overlaps", "0", "64"])
    got = {(m["region"], m["overlap"]) for m in summary["mosaics"]}
    assert got == {("BETA", 0), ("BETA", 64)}  # only the held-out region; ALPHA has no mosaic anyway
    for m in summary["mosaics"]:
        assert m["chips"] == (4 if m["overlap"] == 0 else 9)
        for key in ("l1", "colour_distance", "sharpness_ratio", "periodic_share", "chip_grid_score",
                    "chip_grid_score_real"):
            assert np.isfinite(m[key])
        for picture in m["pictures"]:
            assert os.path.getsize(report / picture) > 0
    assert "Whole mosaics through the engine" in open(report / "report.md").read()
