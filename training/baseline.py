"""The elevation-lookup baseline: each ramp colour -> the mean real satellite colour seen with it.

What a model with no spatial context at all achieves. A GAN worth shipping must beat it on sharpness and
colour distance without losing on L1.
"""

import numpy as np

from terraform_plugin.core.ramp import training_ramp

_BITS = 6  # quantise input colours to 64 levels per channel for the nearest-ramp-colour table


class ElevationLookup:
    def __init__(self, ramp=None):
        ramp = ramp or training_ramp()
        # Classes: every ramp stop, then the below/sea colour.
        self.palette = np.vstack([ramp.colours, np.asarray(ramp.below, np.float64)])
        levels = (np.arange(2**_BITS) + 0.5) * (256 / 2**_BITS)
        grid = np.stack(np.meshgrid(levels, levels, levels, indexing="ij"), -1).reshape(-1, 3)
        # Nearest palette colour for each quantised RGB (JPEG noise moves chips a few levels off the ramp):
        # |g - p|^2 = |g|^2 - 2 g.p + |p|^2, one matrix product instead of a (N, K, 3) difference array.
        pal = self.palette.astype(np.float32)
        nearest = np.argmin((pal**2).sum(1)[None, :] - 2 * grid.astype(np.float32) @ pal.T, axis=1)
        self.lut = nearest.reshape(2**_BITS, 2**_BITS, 2**_BITS)
        self.table = None

    def classes(self, rgb):
        q = rgb >> (8 - _BITS)
        return self.lut[q[..., 0], q[..., 1], q[..., 2]]

    def fit(self, chips):
        """chips: iterable of (elevation_rgb, satellite_rgb) uint8 HWC pairs."""
        k = len(self.palette)
        sums, counts = np.zeros((k, 3)), np.zeros(k)
        for elevation, satellite in chips:
            c = self.classes(elevation).ravel()
            counts += np.bincount(c, minlength=k)
            for ch in range(3):
                sums[:, ch] += np.bincount(c, weights=satellite[..., ch].ravel().astype(np.float64), minlength=k)
        if not counts.any():
            raise ValueError("the baseline needs at least one training chip")
        seen = counts > 0
        table = np.zeros((k, 3))
        table[seen] = sums[seen] / counts[seen, None]
        # Ramp colours never seen in training take the nearest seen elevation's colour.
        ramp_idx = np.arange(k - 1)
        ramp_seen = seen[:-1]
        if ramp_seen.any():
            for ch in range(3):
                table[:-1, ch] = np.interp(ramp_idx, ramp_idx[ramp_seen], table[:-1][ramp_seen, ch])
        if not seen[-1]:
            table[-1] = sums.sum(0) / counts.sum()
        self.table = np.rint(table).clip(0, 255).astype(np.uint8)
        self.counts = counts
        return self

    def predict(self, elevation_rgb):
        return self.table[self.classes(elevation_rgb)]
