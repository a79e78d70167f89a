"""The user-visible artefact scores: they must see a lattice and a seam that L1 hardly notices."""

import numpy as np
import pytest

from terraform_plugin.core.chips import chip_origins
from terraform_plugin.core.ramp import training_ramp
from scipy.ndimage import gaussian_filter

from training.metrics import (RegionScore, chip_grid_score, octave_bands, octave_power, periodic_pattern,
                              periodic_share, seam_score, spectrum_ratio)
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


@pytest.mark.parametrize("period", [4, 8, 32])
def test_periodic_pattern_gives_a_grid_locked_patterns_size_in_grey_levels_whatever_the_pictures_contrast(period):
    x = np.arange(1024)
    wave = 2.0 * np.cos(2 * np.pi * x / period)  # 2 DN peak: 1.41 DN rms, as faint as a pattern gets seen
    found = {}
    for contrast in (1.0, 0.25):  # the same pattern on a picture and on a soft, low-contrast version of it
        base = 128 + (natural(1024).astype(np.float64) - 128) * contrast
        found[contrast] = periodic_pattern(np.rint(base + wave[None, :, None]).astype(np.uint8))
        assert found[contrast]["amplitude"] == pytest.approx(2.0 / np.sqrt(2), rel=0.15)
        assert found[contrast]["period_px"] == pytest.approx(period, rel=0.02)
    # the share divides by the picture's own energy: it grows as the picture softens, the amplitude does not
    assert found[0.25]["share"] > 8 * found[1.0]["share"]
    clean = periodic_pattern(natural(1024))
    assert clean["amplitude"] < 0.1  # a natural picture's chance peaks: a few hundredths of a grey level


@pytest.mark.parametrize("overlap", [0, 64])
def test_chip_grid_score_sees_a_line_at_every_chip_row(overlap):
    clean = natural(1024, seed=1)
    seamed = clean.astype(np.int16)
    for y in chip_origins(1024, 256, overlap)[1:]:
        seamed[y:, :] += 6  # a tone step at each chip row, as per-chip statistics give
    seamed = np.clip(seamed, 0, 255).astype(np.uint8)
    assert chip_grid_score(clean, 256, overlap) < 1.3
    assert chip_grid_score(seamed, 256, overlap) > 1.5 * chip_grid_score(clean, 256, overlap)


def grey_rgb(grey):
    return np.repeat(np.clip(grey, 0, 255)[..., None], 3, axis=2).astype(np.uint8)


def test_power_per_octave_is_flat_for_white_noise_and_a_blur_loses_the_short_octaves():
    rng = np.random.default_rng(0)
    noise = rng.normal(128, 30, (512, 512))
    power = octave_power(grey_rgb(noise))
    assert len(power) == 6 and octave_bands(6)[0] == [2, 4] and octave_bands(6)[-1] == [64, 128]
    assert np.all(np.abs(power / power.mean() - 1) < 0.2)  # white: the same power per bin at every scale
    assert abs(power.mean() / 30**2 - 1) < 0.1  # normalised: the noise's variance per bin, whatever the size
    blurred = spectrum_ratio(octave_power(grey_rgb(gaussian_filter(noise, 2.0))), power)
    ratio = blurred["spectrum_ratio"]
    assert ratio[0] < 1e-3 and ratio[1] < 0.05  # 2-8 px wavelengths gone
    assert ratio[-1] > 0.8  # 64-128 px kept
    assert list(ratio) == sorted(ratio)  # blur takes more the shorter the wavelength
    assert blurred["spectrum_worst_factor"] == pytest.approx(1 / ratio[0])


def test_region_score_reports_the_spectrum_of_its_chips_against_real():
    rng = np.random.default_rng(1)
    score = RegionScore()
    for _ in range(2):
        real = rng.normal(128, 30, (256, 256))
        score.add(grey_rgb(gaussian_filter(real, 1.5)), grey_rgb(real))
    result = score.result()
    assert result["spectrum_octaves_px"] == octave_bands(5)
    assert result["spectrum_ratio"][0] < 0.01 < 0.5 < result["spectrum_ratio"][-1]
    assert result["spectrum_worst_factor"] > 100


def test_seam_score_sees_kept_tile_edges_on_their_own_strides():
    clean = natural(1024, seed=2)
    seamed = clean.astype(np.int16)
    for x in range(0, 1024, 320)[1:]:  # columns of tiles whose centres step by 320 px from the origin
        seamed[:, x:] += 6
    seamed = np.clip(seamed, 0, 255).astype(np.uint8)
    assert seam_score(clean, 448, 320) < 1.5
    assert seam_score(seamed, 448, 320) > 1.5 * seam_score(clean, 448, 320)
    # Cropped by 100 px at the left, the grid's origin lies 100 px before the crop: the same seams are found.
    assert seam_score(seamed[:, 100:], 448, 320, 0, -100) == pytest.approx(seam_score(seamed, 448, 320), rel=0.2)
    assert seam_score(clean[:200, :200], 448, 320) == 1.0  # one tile: no seam to see


def test_mosaic_inversion_recovers_elevation_and_sea():
    ramp = training_ramp()
    z = np.linspace(0, 8000, 256 * 64, dtype=np.float32).reshape(64, 256)
    z[:8] = -20.0  # sea
    back = mosaic_elevation(ramp.colourise(z, sea=z <= 0), ramp)
    assert (back[:8] == SEA_Z).all()
    step = 9000 / 255  # one ramp stop
    assert np.abs(back[8:] - z[8:]).max() <= step
    assert (back[8:] > 0).all()  # land at 0 m stays land under the at-or-below sea rule
