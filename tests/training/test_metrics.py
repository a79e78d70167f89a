"""The user-visible artefact scores: they must see a lattice and a seam that L1 hardly notices."""

import numpy as np
import pytest

from terraform_plugin.core.chips import chip_origins
from terraform_plugin.core.ramp import training_ramp
from training.metrics import chip_grid_score, periodic_share
from training.mosaic_eval import SEA_Z, mosaic_elevation


def natural(size, seed=0):
    """Power-law (1/f) noise as RGB: a smooth spectrum like real imagery's, no peaks."""
    rng = np.random.default_rng(seed)
    fy, fx = np.meshgrid(np.fft.fftfreq(size), np.fft.fftfreq(size), indexing="ij")
    f = np.hypot(fy, fx)
    f[0, 0] = 1.0
    spectrum = (rng.normal(size=(size, size)) + 1j * rng.normal(size=(size, size))) / f**1.5
    grey = np.real(np.fft.ifft2(spectrum))
    grey = (grey - grey.min()) / np.ptp(grey) * 180 + 30
    return np.repeat(grey[..., None], 3, axis=2).astype(np.uint8)


def test_periodic_share_sees_a_two_pixel_lattice():
    clean = natural(256)
    lattice = clean.astype(np.int16)
    lattice[::2, ::2] += 8  # a faint transposed-convolution dot pattern
    lattice = np.clip(lattice, 0, 255).astype(np.uint8)
    assert periodic_share(clean) < 1e-3
    assert periodic_share(lattice) > 30 * max(periodic_share(clean), 1e-4)


@pytest.mark.parametrize("overlap", [0, 64])
def test_chip_grid_score_sees_a_line_at_every_chip_row(overlap):
    clean = natural(1024, seed=1)
    seamed = clean.astype(np.int16)
    for y in chip_origins(1024, 256, overlap)[1:]:
        seamed[y:, :] += 6  # a tone step at each chip row, as per-chip statistics give
    seamed = np.clip(seamed, 0, 255).astype(np.uint8)
    assert chip_grid_score(clean, 256, overlap) < 1.3
    assert chip_grid_score(seamed, 256, overlap) > 1.5 * chip_grid_score(clean, 256, overlap)


def test_mosaic_inversion_recovers_elevation_and_sea():
    ramp = training_ramp()
    z = np.linspace(0, 8000, 256 * 64, dtype=np.float32).reshape(64, 256)
    z[:8] = -20.0  # sea
    back = mosaic_elevation(ramp.colourise(z, sea=z <= 0), ramp)
    assert (back[:8] == SEA_Z).all()
    step = 9000 / 255  # one ramp stop
    assert np.abs(back[8:] - z[8:]).max() <= step
    assert (back[8:] > 0).all()  # land at 0 m stays land under the at-or-below sea rule
