import numpy as np
import pytest

from training.baseline import ElevationLookup
from training.metrics import RegionScore, colour_distance, gradient_magnitude, l1, psnr, ssim
from terraform_plugin.core.ramp import training_ramp


def texture(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (64, 64, 3), dtype=np.uint8)


def test_identical_images():
    a = texture()
    assert l1(a, a) == 0 and psnr(a, a) == float("inf") and ssim(a, a) == pytest.approx(1.0)
    assert colour_distance(a, a) == 0


def test_metrics_see_the_right_defects():
    a = texture()
    shifted = np.clip(a.astype(int) + 10, 0, 255).astype(np.uint8)
    assert 5 < colour_distance(a, shifted) <= 10  # a shift of the palette
    flat = np.full_like(a, int(a.mean()))
    assert gradient_magnitude(flat) == 0 and gradient_magnitude(a) > 50
    score = RegionScore()
    score.add(flat, a)
    assert score.result()["sharpness_ratio"] == 0  # blur is what sharpness catches
    assert ssim(flat, a) < 0.1 and psnr(shifted, a) > psnr(flat, a)


def test_baseline_learns_the_colour_of_each_elevation():
    ramp = training_ramp()
    z = np.linspace(-100, 5000, 64 * 64).reshape(64, 64)
    elev = ramp.colourise(z)
    sat = np.where((z < 2000)[..., None], [30, 120, 40], [200, 200, 210]).astype(np.uint8)
    base = ElevationLookup(ramp).fit([(elev, sat)])
    assert l1(base.predict(elev), sat) < 5
