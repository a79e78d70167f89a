"""scripts/gpu_ablation.sh is issue 19's lever ablation in the one command a GPU session gets: run here end to
end in its CPU mode on a tiny archive, every arm must start from the held-out weights, make the same steps, take
its own lever, and come back as one tar whose model the plugin loads and whose metadata names the lever."""

import json
import os
import tarfile

from terraform_plugin.core.model import TerraformModel
from training.lineage import describe_source

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HELDOUT = os.path.join(ROOT, "models", "terraform_trainable_heldout.pt")


def test_one_call_trains_every_arm_from_the_held_out_weights_and_returns_one_tar_each(tmp_path, run_gpu_script):
    done, out = run_gpu_script("gpu_ablation.sh", ARMS="recipe;hinge --gan-loss hinge --spectrum-loss 1")
    assert "fit 3 s per arm (2 arms)" in done.stdout
    assert sorted(os.listdir(out)) == ["hinge.tar", "recipe.tar"]
    inherited = [lk["id"] for lk in describe_source(HELDOUT)["looks"]] if os.path.isfile(HELDOUT) else []
    steps, levers = set(), {}
    for arm in ("recipe", "hinge"):
        with tarfile.open(out / f"{arm}.tar") as tar:
            assert {f"{arm}.onnx", f"{arm}.summary.json", f"{arm}.losses.csv"} <= set(tar.getnames())
            (tmp_path / f"{arm}.onnx").write_bytes(tar.extractfile(f"{arm}.onnx").read())
            steps.add(json.load(tar.extractfile(f"{arm}.summary.json"))["steps"])
        meta = TerraformModel(str(tmp_path / f"{arm}.onnx"), threads=1).metadata  # the plugin loads it
        assert meta.schema == 2 and meta.extra["data"]["train_regions"] == ["ANDES"]  # CALI, ITALY held out
        assert [lk.id for lk in meta.looks][: len(inherited)] == inherited  # from the held-out line's weights
        training = meta.extra["training"]
        levers[arm] = (training["gan_loss"], training["spectrum_loss"])
    assert len(steps) == 1  # the same steps, so the same images, for every arm
    assert levers == {"recipe": ("bce", 0.0), "hinge": ("hinge", 1.0)}
