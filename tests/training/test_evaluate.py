import json
import os

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
