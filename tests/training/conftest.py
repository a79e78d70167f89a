"""Small data the training tests write themselves: seed-layout pairs and a tiny trained run."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from terraform_plugin.core.ramp import training_ramp

SHARED_PAIRS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "seed-pairs")


def synthetic_elevation(seed, size=256):
    """Smooth relief 0-4000 m with a sea corner, different per seed."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:size, 0:size] / size
    z = np.zeros((size, size))
    for k in range(1, 4):
        a, b, p, q = rng.uniform(0.5, 2.0, 4)
        z += np.sin(2 * np.pi * a * k * y + p * 6) * np.cos(2 * np.pi * b * k * x + q * 6) / k
    z = (z - z.min()) / np.ptp(z) * 4000.0
    z[: size // 6, : size // 6] = -5.0  # sea
    return z


def satellite_for(elevation_rgb):
    """A learnable stand-in for imagery: a fixed colour transform of the ramp colours."""
    e = elevation_rgb.astype(np.float32)
    sat = np.stack([0.6 * e[..., 1], 0.3 * e[..., 0] + 0.4 * e[..., 2], 255 - 0.7 * e[..., 2]], -1)
    return np.clip(sat, 0, 255).astype(np.uint8)


def write_pairs(root, regions=(("ALPHA", 3), ("BETA", 2)), places=True):
    """Seed-layout pairs; with ``places`` a manifest.json puts each region on Earth (as the seed regions'
    fitted bounds do), 5 degrees of latitude apart from 45 N southwards: what contract-2 training needs."""
    ramp = training_ramp()
    seed = 0
    os.makedirs(root, exist_ok=True)
    if places:
        from training.prepare import update_manifest

        update_manifest(str(root), {
            region: {"chips": n, "top_lat": 45.0 - 5 * k, "bottom_lat": 44.0 - 5 * k, "side_px": 256,
                     "projection": "equirectangular", "uncertainty_deg": 0.0, "label": f"{region.title()} land"}
            for k, (region, n) in enumerate(regions)})
    for region, n in regions:
        d = os.path.join(root, region)
        os.makedirs(d, exist_ok=True)
        for i in range(n):
            rgb = ramp.colourise(synthetic_elevation(seed))
            seed += 1
            Image.fromarray(rgb).save(os.path.join(d, f"0,{i * 256}c.jpg"), quality=95)
            Image.fromarray(satellite_for(rgb)).save(os.path.join(d, f"0,{i * 256}.jpg"), quality=95)
    return str(root)


@pytest.fixture
def make_pairs():
    """``write_pairs(root, regions)`` for a test that needs its own regions (a fixture: test modules should not
    import conftest)."""
    return write_pairs


@pytest.fixture(scope="session")
def pairs_dir(tmp_path_factory):
    return write_pairs(tmp_path_factory.mktemp("pairs"))


# fp32: "auto" times a step of each precision on CPUs with native bf16 (this one), so under load two runs
# could choose differently and the resume test would compare a bf16 run with an fp32 one.
TINY = ["--ngf", "4", "--ndf", "8", "--batch-size", "1", "--device", "cpu", "--val-chips", "2", "--precision", "fp32"]


@pytest.fixture
def tiny_flags():
    """Trainer flags of a tiny, fast CPU net (a fixture: test modules should not import conftest)."""
    return list(TINY)


@pytest.fixture(scope="session")
def tiny_run(pairs_dir, tmp_path_factory):
    """A 3-step run of a tiny generator holding out region BETA: its folder and summary."""
    from training.train import main

    out = str(tmp_path_factory.mktemp("run"))
    summary = main(["--data", pairs_dir, "--out", out, "--max-steps", "3", "--val-regions", "BETA", *TINY])
    return out, summary


@pytest.fixture
def shared_pairs():
    if not os.path.isdir(SHARED_PAIRS):
        pytest.skip(f"shared seed pairs not present at {os.path.abspath(SHARED_PAIRS)} (a fresh clone lacks them)")
    return os.path.abspath(SHARED_PAIRS)


@pytest.fixture(scope="session")
def exported(tiny_run, tmp_path_factory):
    """The tiny run exported once (the exporter takes seconds): (path, export report, run folder)."""
    from training.export import main as export

    out, _ = tiny_run
    path = str(tmp_path_factory.mktemp("export") / "model.onnx")
    report = export(["--checkpoint", os.path.join(out, "checkpoints", "last.pt"), "--output", path,
                     "--name", "tiny", "--version", "9.9.9"])
    return path, report, out


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def run_gpu_script(tmp_path):
    """``run(script, budget, **env)``: one of the one-call GPU scripts end to end in its CPU mode on a tiny archive
    of ANDES, CALI and ITALY pairs, checked to succeed; returns (the finished process, its OUT folder)."""
    from training import pack

    def run(script, budget="3", **env):
        source = tmp_path / "src" / "seed-pairs"
        write_pairs(source, regions=(("ANDES", 3), ("CALI", 2), ("ITALY", 2)))
        pack.pack([str(source)], str(tmp_path / "data.tar"))
        out = tmp_path / "out"
        out.mkdir()
        env = dict(os.environ, DEVICE="cpu", TIMING_STEPS="2", WORKERS="0", BATCH="1", MARGIN_S="600",
                   ARCHIVE=str(tmp_path / "data.tar"), DATA_ROOT=str(tmp_path / "data"), RUNS=str(tmp_path / "runs"),
                   OUT=str(out), PYTHON=sys.executable, **env)
        # errors="replace": the script's `tail -c` of the logs may cut a progress bar's character in two
        done = subprocess.run(["bash", os.path.join(ROOT, "scripts", script), budget], cwd=ROOT, env=env,
                              capture_output=True, encoding="utf-8", errors="replace", timeout=900)
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
        return done, out

    return run
