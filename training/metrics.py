"""Image-quality metrics on uint8 RGB chips (H, W, 3), each with the direction that is better.

L1 (mean |a-b|, 0-255 units, lower better); PSNR (dB, higher); SSIM (Gaussian 11 px, sigma 1.5, per channel,
higher); sharpness (mean gradient magnitude of the luminance: the GAN's job is to beat the blur an L1-only or
lookup model produces); colour distance (per-channel 1-D Wasserstein between the value histograms, 0-255
units, lower: whether the palette is right, regardless of where it is put).
"""

import numpy as np
import torch
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


class RegionScore:
    """Accumulates one prediction source over the chips of one region."""

    def __init__(self):
        self.n = 0
        self.sums = {"l1": 0.0, "psnr": 0.0, "ssim": 0.0, "colour_distance": 0.0}
        self.grad_pred = self.grad_real = 0.0

    def add(self, pred, real):
        self.n += 1
        self.sums["l1"] += l1(pred, real)
        self.sums["psnr"] += psnr(pred, real)
        self.sums["ssim"] += ssim(pred, real)
        self.sums["colour_distance"] += colour_distance(pred, real)
        self.grad_pred += gradient_magnitude(pred)
        self.grad_real += gradient_magnitude(real)

    def result(self) -> dict:
        out = {k: v / self.n for k, v in self.sums.items()}
        # Ratio of region totals: per-chip ratios explode on flat (sea) chips.
        out["sharpness_ratio"] = self.grad_pred / self.grad_real if self.grad_real else float("nan")
        out["chips"] = self.n
        return out

    def merge(self, other):
        self.n += other.n
        for k in self.sums:
            self.sums[k] += other.sums[k]
        self.grad_pred += other.grad_pred
        self.grad_real += other.grad_real
        return self


BETTER = {"l1": "lower", "psnr": "higher", "ssim": "higher", "sharpness_ratio": "closer to 1", "colour_distance": "lower"}
