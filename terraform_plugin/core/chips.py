"""Chips: where the model's square tiles sit on the processing grid, and how their overlaps are blended.

Layout: chips step by ``tile - overlap`` and the run of chips is centred on the grid so that it sticks out by
at least ``overlap // 2`` on every side. The raster's own border pixels then sit inside a chip, with reflected
context around them, instead of on the chip edge where a U-Net (zero-padded convolutions) is at its worst.

Blending: each chip's prediction is weighted by a flat-top window whose edges fall off over ``overlap`` pixels
as sin² (a Tukey window). The rising sin² of one chip and the falling cos² of its neighbour sum to 1, so the
centre of every chip, where the model sees the most context, dominates, and the hand-over is smooth. Weights
are strictly positive and the mosaic divides by their sum, so a model that returns its input gives back the
input exactly (after rounding to uint8) - no seams, no darkened edges.
"""

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError

DEFAULT_OVERLAP = 64


def check_overlap(overlap, tile: int) -> int:
    """Validated overlap in pixels: 0 <= overlap <= tile / 2.

    Half a tile is the largest useful overlap: the two edge ramps then meet in the middle (a full Hann window,
    the classic 50 % overlap); beyond it every pixel would be computed more than twice per axis for nothing.
    """
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)):
        if isinstance(overlap, float) and overlap.is_integer():
            overlap = int(overlap)
        else:
            raise InputError(f"overlap must be a whole number of pixels, got {overlap!r}")
    overlap = int(overlap)
    if not 0 <= overlap <= tile // 2:
        raise InputError(
            f"overlap must lie between 0 and {tile // 2} pixels (half of the model's {tile} px chip), got {overlap}"
        )
    return overlap


def chip_origins(size: int, tile: int, overlap: int) -> np.ndarray:
    """Start offsets (may be negative or run past ``size``) of the chips along one axis of ``size`` pixels."""
    stride = tile - overlap
    margin = overlap // 2
    needed = size + 2 * margin
    count = 1 if needed <= tile else math.ceil((needed - tile) / stride) + 1
    span = (count - 1) * stride + tile
    start = -((span - size) // 2)
    return start + stride * np.arange(count, dtype=np.int64)


def edge_ramp(tile: int, overlap: int) -> np.ndarray:
    """1-D flat-top window: sin² rise over ``overlap`` pixels, 1 in the middle, mirrored fall. All > 0."""
    w = np.ones(tile, dtype=np.float64)
    if overlap:
        rise = np.sin(0.5 * np.pi * (np.arange(overlap) + 0.5) / overlap) ** 2
        w[:overlap] = rise
        w[tile - overlap :] = rise[::-1]
    return w


def blend_weights(tile: int, overlap: int) -> np.ndarray:
    """(tile, tile) float32 weights of one chip's prediction in the mosaic."""
    w = edge_ramp(tile, overlap)
    return np.outer(w, w).astype(np.float32)


@dataclass(frozen=True, eq=False)
class ChipLayout:
    """The chips covering a ``width`` x ``height`` grid: column origins ``xs`` and row origins ``ys``."""

    width: int
    height: int
    tile: int
    overlap: int
    xs: np.ndarray
    ys: np.ndarray

    @classmethod
    def build(cls, width: int, height: int, tile: int, overlap: int = DEFAULT_OVERLAP) -> "ChipLayout":
        overlap = check_overlap(overlap, tile)
        return cls(
            width, height, tile, overlap, chip_origins(width, tile, overlap), chip_origins(height, tile, overlap)
        )

    @property
    def stride(self) -> int:
        return self.tile - self.overlap

    @property
    def count(self) -> int:
        return len(self.xs) * len(self.ys)

    def weights(self) -> np.ndarray:
        return blend_weights(self.tile, self.overlap)

    def columns_touching(self, x0: int, x1: int) -> range:
        """Indices of the chip columns whose pixels intersect grid columns [x0, x1)."""
        first = int(np.searchsorted(self.xs + self.tile, x0, side="right"))
        last = int(np.searchsorted(self.xs, x1, side="left"))
        return range(first, last)

    def finished_rows(self, row: int) -> tuple:
        """Grid rows [y0, y1) that no chip after chip row ``row`` touches, clipped to the grid."""
        y0 = int(self.ys[row])
        y1 = int(self.ys[row + 1]) if row + 1 < len(self.ys) else y0 + self.tile
        return max(0, y0), min(self.height, y1)
