"""Image-quality metrics on uint8 RGB chips (H, W, 3), each with the direction that is better.

L1 (mean |a-b|, 0-255 units, lower better); PSNR (dB, higher); SSIM (Gaussian 11 px, sigma 1.5, per channel,
higher); sharpness (mean gradient magnitude of the luminance: the GAN's job is to beat the blur an L1-only or
lookup model produces); colour distance (per-channel 1-D Wasserstein between the value histograms, 0-255
units, lower: whether the palette is right, regardless of where it is put); periodic share (the share of the
spectrum's energy in sharp peaks: dot lattices and repeated tiles, which L1 barely sees but a person sees at
once - with the pattern's amplitude in grey levels, which says whether a person could); power per octave (the
radially averaged power spectrum in octaves of wavelength, against real's: blur loses the short octaves, grain
and ripples inflate them, where a mean gradient can only say "more" or "less"); chip-grid score (whether the
colour jumps more across the chip grid's lines than elsewhere).
"""

import numpy as np
import torch
from scipy.ndimage import median_filter
import torch.nn.functional as F


def l1(a, b) -> float:
    return float(np.mean(np.abs(a.astype(np.float32) - b.astype(np.float32))))


def psnr(a, b) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


def _gaussian(size=11, sigma=1.5):
    x = torch.arange(size, dtype=torch.float64) - size // 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


_WINDOW = _gaussian()


def ssim(a, b) -> float:
    """Mean SSIM over the valid area and the three channels (Wang et al. 2004 constants, L = 255)."""
    x = torch.from_numpy(a.astype(np.float64)).permute(2, 0, 1).unsqueeze(1)  # (3, 1, H, W)
    y = torch.from_numpy(b.astype(np.float64)).permute(2, 0, 1).unsqueeze(1)
    gh, gw = _WINDOW.view(1, 1, 1, -1), _WINDOW.view(1, 1, -1, 1)

    def blur(t):
        return F.conv2d(F.conv2d(t, gh), gw)

    mx, my = blur(x), blur(y)
    sxx, syy, sxy = blur(x * x) - mx**2, blur(y * y) - my**2, blur(x * y) - mx * my
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    s = ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx**2 + my**2 + c1) * (sxx + syy + c2))
    return float(s.mean())


def gradient_magnitude(a) -> float:
    """Mean |grad| of the luminance (forward differences): texture and edges, not colour."""
    lum = a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    gy, gx = np.diff(lum, axis=0)[:, :-1], np.diff(lum, axis=1)[:-1, :]
    return float(np.mean(np.sqrt(gx * gx + gy * gy)))


def colour_distance(a, b) -> float:
    """Mean over R, G, B of the 1-D Wasserstein distance between the two images' value distributions."""
    total = 0.0
    for c in range(3):
        ha = np.bincount(a[..., c].ravel(), minlength=256) / a[..., c].size
        hb = np.bincount(b[..., c].ravel(), minlength=256) / b[..., c].size
        total += float(np.sum(np.abs(np.cumsum(ha) - np.cumsum(hb))))  # W1 on a unit-spaced grid
    return total / 3


def _luminance(a) -> np.ndarray:
    return a.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)


# Periodic-artefact score (the dot lattice a transposed convolution paints, see nets.SEAMLESS): a bin is a peak
# when its power exceeds PEAK_FACTOR times the median of its PEAK_WINDOW x PEAK_WINDOW neighbourhood; bins
# within DC_RADIUS of the zero frequency are left out.
# Radius 4, not 2: the Hann window's main lobe spans +-2 bins and the spectrum's steep low-frequency slope
# just outside it beats any 9x9 median; at radius 2 real CALI chips scored 0.022, at 4 they score 6e-5
# (a 2 px lattice of +10 grey levels on the real mosaic: 0.04, whatever the radius).
PEAK_FACTOR = 20.0
PEAK_WINDOW = 9
DC_RADIUS = 4


def periodic_pattern(a) -> dict:
    """The sharp peaks of the (grey, mean-removed, Hann-windowed) 2-D power spectrum: a lattice or grid-locked
    pattern, which natural imagery lacks.

    ``share``: the peaks' share of the spectrum's energy. Natural imagery has a smooth, roughly power-law
    spectrum: ~0.2 % of a chip's energy passes the test (JPEG's 8 px blocks among it); a transposed-convolution
    lattice or chip-periodic tone puts energy in isolated bins at the lattice's frequencies and their harmonics.
    A share alone does not say whether anyone could see the pattern, so ``amplitude`` is its size in grey levels
    (0-255 luminance, root mean square over the image, from the peaks' energy by Parseval's theorem, the
    window's energy divided out) and ``period_px`` the wavelength of the strongest peak (None: no peak).
    """
    grey = _luminance(a).astype(np.float64)
    grey -= grey.mean()
    h, w = grey.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    grey *= window
    power = np.abs(np.fft.fftshift(np.fft.fft2(grey))) ** 2
    log_power = np.log(power + 1e-12)
    # The median of log power is the log of the median power: one filter on the log, a factor as a shift.
    local = median_filter(log_power, size=PEAK_WINDOW, mode="wrap")
    peaks = log_power > local + np.log(PEAK_FACTOR)
    fy, fx = np.ogrid[-(h // 2) : h - h // 2, -(w // 2) : w - w // 2]
    counted = fy * fy + fx * fx > DC_RADIUS * DC_RADIUS
    peaks &= counted
    total = power[counted].sum()
    peak_power = power[peaks]
    period = None
    if peak_power.size:
        iy, ix = np.argwhere(peaks)[np.argmax(peak_power)]
        period = float(1.0 / np.hypot((iy - h // 2) / h, (ix - w // 2) / w))
    # Parseval: sum |FFT|^2 = pixels * sum of squares; the window scaled the pattern's energy by mean(window^2).
    amplitude = float(np.sqrt(peak_power.sum() / (h * w * h * w * np.mean(window**2))))
    return {"share": float(peak_power.sum() / total) if total > 0 else 0.0, "amplitude": amplitude,
            "period_px": period}


def periodic_share(a) -> float:
    """``periodic_pattern``'s share of the spectrum's energy in sharp peaks."""
    return periodic_pattern(a)["share"]


def octave_count(height, width) -> int:
    """Octaves of wavelength from 2 px up to a quarter of the shorter side: 5 for a 256 px chip (2-4 ... 32-64
    px). Longer ones lie within a few bins of the zero frequency, where the Hann window's main lobe drains them."""
    return max(1, int(np.log2(min(height, width))) - 3)


def octave_bands(n) -> list:
    """[[shortest, longest] wavelength in px] of the ``n`` octaves ``octave_power`` returns."""
    return [[2 ** (k + 1), 2 ** (k + 2)] for k in range(n)]


def octave_power(a, octaves=None) -> np.ndarray:
    """Radially averaged power spectrum of the luminance in octaves of wavelength: (octaves,) float64.

    Octave k holds the frequencies of wavelength 2^(k+1) to 2^(k+2) px (cycles per px in (0.5 / 2^(k+1),
    0.5 / 2^k]); each value is the mean power per frequency bin there (grey mean removed, Hann window,
    normalised by the window's energy), so white noise is flat and images of any size compare: the ratio of two
    images' values per octave is how much texture of that scale one has against the other.
    """
    grey = _luminance(a).astype(np.float64)
    grey -= grey.mean()
    h, w = grey.shape
    window = np.outer(np.hanning(h), np.hanning(w))
    power = np.abs(np.fft.fft2(grey * window)) ** 2 / np.sum(window**2)
    radius = np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    octave = np.floor(-np.log2(np.maximum(radius, 1e-12) / 0.5)).astype(np.int64)  # 0: (0.25, 0.5] cycles/px
    n = octaves or octave_count(h, w)
    inside = (radius > 0) & (radius <= 0.5) & (octave < n)
    sums = np.bincount(octave[inside], weights=power[inside], minlength=n)
    counts = np.bincount(octave[inside], minlength=n)
    return sums / np.maximum(counts, 1)


def spectrum_ratio(pred_power, real_power) -> dict:
    """Per-octave power of a prediction over real's, and the worst factor either way (1 = real's texture)."""
    pred_power, real_power = np.asarray(pred_power, np.float64), np.asarray(real_power, np.float64)
    ratio = pred_power / np.maximum(real_power, 1e-12)
    worst = np.maximum(ratio, 1.0 / np.maximum(ratio, 1e-12))
    return {"spectrum_octaves_px": octave_bands(len(ratio)), "spectrum_ratio": [float(r) for r in ratio],
            "spectrum_worst_factor": float(worst.max())}


def _step_profile(lum, axis, origins, stride) -> np.ndarray:
    """Mean |luminance step| between neighbouring lines along ``axis``, folded by phase in the chip stride."""
    steps = np.abs(np.diff(lum, axis=axis)).mean(axis=1 - axis)  # step i lies between line i and i + 1
    # Step i crosses a chip edge of phase 0 when line i + 1 is a chip origin.
    phase = (np.arange(1, len(steps) + 1) - int(origins[0])) % stride
    sums = np.bincount(phase, weights=steps, minlength=stride)
    counts = np.bincount(phase, minlength=stride)
    return sums[counts > 0] / counts[counts > 0]


def chip_grid_score(a, tile: int, overlap: int) -> float:
    """How much more the colour steps at the worst phase of the chip grid than at a typical one; 1 = invisible.

    A mosaic from ``tile`` px chips at ``overlap`` repeats every stride = tile - overlap pixels from the
    layout's origin (``terraform_plugin.core.chips.chip_origins``). Folding the mean luminance step between
    neighbouring rows (and columns) by phase in that stride, a seam shows as one phase standing out. The
    score is the largest phase over the median phase, the worse of rows and columns. Real imagery, folded
    the same way, gives the reference value (slightly above 1: a maximum over noise).
    """
    from terraform_plugin.core.chips import chip_origins

    lum = _luminance(a)
    stride = tile - overlap
    scores = []
    for axis in (0, 1):
        profile = _step_profile(lum, axis, chip_origins(lum.shape[axis], tile, overlap), stride)
        scores.append(float(profile.max() / np.median(profile)))
    return max(scores)


def seam_score(a, stride_y: int, stride_x: int, origin_y: int = 0, origin_x: int = 0) -> float:
    """``chip_grid_score`` for kept-centre tiles: their centres step by ``stride_y`` / ``stride_x`` px from
    (``origin_y``, ``origin_x``) (the raster's origin, in ``a``'s pixels); the worse of rows and columns."""
    lum = _luminance(a)
    scores = []
    for axis, stride, origin in ((0, stride_y, origin_y), (1, stride_x, origin_x)):
        if lum.shape[axis] <= stride:  # one tile along this axis: no seam to see
            continue
        profile = _step_profile(lum, axis, [origin % stride], stride)
        typical = float(np.median(profile))
        # Flat between a few steps (a blocky picture): any step at all is a seam beyond measure.
        scores.append(float(profile.max()) / typical if typical > 0 else (float("inf") if profile.max() > 0 else 1.0))
    return max(scores) if scores else 1.0


def reference_stats(real) -> dict:
    """What RegionScore needs of the real chip alone (the periodic share costs a median filter: once per chip)."""
    return {"gradient": gradient_magnitude(real), "periodic_share": periodic_share(real),
            "octave_power": octave_power(real)}


class RegionScore:
    """Accumulates one prediction source over the chips of one region."""

    def __init__(self):
        self.n = 0
        self.sums = {"l1": 0.0, "psnr": 0.0, "ssim": 0.0, "colour_distance": 0.0}
        self.grad_pred = self.grad_real = 0.0
        self.periodic_pred = self.periodic_real = 0.0
        self.power_pred = self.power_real = 0.0  # per-octave spectra, summed over the (same-size) chips

    def add(self, pred, real, reference=None):
        """One chip; ``reference``: ``reference_stats(real)`` when several sources are scored on the same chip."""
        reference = reference or reference_stats(real)
        self.n += 1
        self.sums["l1"] += l1(pred, real)
        self.sums["psnr"] += psnr(pred, real)
        self.sums["ssim"] += ssim(pred, real)
        self.sums["colour_distance"] += colour_distance(pred, real)
        self.grad_pred += gradient_magnitude(pred)
        self.grad_real += reference["gradient"]
        self.periodic_pred += periodic_share(pred)
        self.periodic_real += reference["periodic_share"]
        self.power_pred = self.power_pred + octave_power(pred)
        self.power_real = self.power_real + reference["octave_power"]

    def result(self) -> dict:
        out = {k: v / self.n for k, v in self.sums.items()}
        # Ratio of region totals: per-chip ratios explode on flat (sea) chips.
        out["sharpness_ratio"] = self.grad_pred / self.grad_real if self.grad_real else float("nan")
        out["periodic_share"] = self.periodic_pred / self.n
        out["periodic_share_real"] = self.periodic_real / self.n
        out["chips"] = self.n
        out.update(spectrum_ratio(self.power_pred, self.power_real))
        return out

    def merge(self, other):
        self.n += other.n
        for k in self.sums:
            self.sums[k] += other.sums[k]
        self.grad_pred += other.grad_pred
        self.grad_real += other.grad_real
        self.periodic_pred += other.periodic_pred
        self.periodic_real += other.periodic_real
        self.power_pred = self.power_pred + other.power_pred
        self.power_real = self.power_real + other.power_real
        return self


BETTER = {"l1": "lower", "psnr": "higher", "ssim": "higher", "sharpness_ratio": "closer to 1", "colour_distance": "lower",
          "periodic_share": "closer to real's", "chip_grid_score": "closer to real's (1 = no seam)",
          "spectrum_ratio": "1 in every octave", "spectrum_worst_factor": "closer to 1 (a release wants at most 2)"}
