"""scripts/gpu_release.sh is the one command a GPU session gets (15 minutes of device time, no second try):
run here end to end in its CPU mode on a tiny archive, it must unpack, plan the runs from the measured rate,
train the held-out and the all-regions model, export both and leave exactly the files a device call brings
back, which join into models the plugin loads."""

import json
import os
import tarfile

from terraform_plugin.core.model import TerraformModel
from training import pack
from training.lineage import describe_source

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Each run starts from its own line of shipped weights: the held-out run never from weights that saw CALI, ITALY.
WEIGHTS = {"all7": os.path.join(ROOT, "models", "terraform_trainable.pt"),
           "heldout": os.path.join(ROOT, "models", "terraform_trainable_heldout.pt")}


def test_one_call_trains_exports_and_returns_both_models(tmp_path, run_gpu_script):
    done, out = run_gpu_script("gpu_release.sh")
    assert "steps of batch 1 fit 3 s per run" in done.stdout
    names = sorted(os.listdir(out))
    assert len(names) <= 8  # what one device call can bring back
    assert names == sorted(f"{run}.{what}" for run in ("all7", "heldout")
                           for what in ("onnx.part000", "onnx.parts.json", "extras.tar"))
    regions = {}
    for run in ("heldout", "all7"):
        model_path = tmp_path / f"{run}.onnx"
        pack.join(str(out / f"{run}.onnx.parts.json"), str(model_path))
        model = TerraformModel(str(model_path), threads=1)  # the plugin's loader accepts it
        meta = model.metadata
        assert (meta.extra["name"], meta.extra["version"]) == ("terraform-pix2pix-contract2", "0.5.0")
        assert meta.schema == 2 and meta.extra["architecture"]["ngf"] == 16
        assert meta.extra["batchnorm_statistics"]["recalibrated_on_chips"] > 0
        regions[run] = meta.extra["data"]["train_regions"]
        # A look per training region, after the looks of the weights the run started from (its own line's)
        source = describe_source(WEIGHTS[run]) if os.path.isfile(WEIGHTS[run]) else {"looks": [], "images_seen": 0}
        inherited = [lk["id"] for lk in source["looks"]]
        assert [lk.id for lk in meta.looks] == inherited + [r for r in regions[run] if r not in inherited]
        assert meta.extra["images_seen"] > source["images_seen"]  # the run's images add to its source's
        with tarfile.open(out / f"{run}.extras.tar") as tar:
            assert sorted(tar.getnames()) == sorted(f"{run}.{what}" for what in ("trainable.pt", "summary.json",
                                                                                 "loss_curve.png"))
            assert json.load(tar.extractfile(f"{run}.summary.json"))["steps"] >= 1
    assert regions == {"heldout": ["ANDES"], "all7": ["ANDES", "CALI", "ITALY"]}
