"""Chips: where the model's tiles sit on the processing grid, and how each output pixel is taken from them.

One layout for both model contracts:

- Blended chips (contract 1: a fixed 256 px chip whose every pixel depends on the whole chip). Chips step by
  ``tile - overlap`` and the run of chips is centred on the grid so that it sticks out by at least
  ``overlap // 2`` on every side: the raster's own border pixels then sit inside a chip, with reflected context
  around them, instead of on the chip edge where a U-Net (zero-padded convolutions) is at its worst. Each chip's
  prediction is weighted by a flat-top window whose edges fall off over ``overlap`` pixels as sin² (a Tukey
  window). The rising sin² of one chip and the falling cos² of its neighbour sum to 1, so the centre of every
  chip, where the model sees the most context, dominates, and the hand-over is smooth. Weights are strictly
  positive and the mosaic divides by their sum, so a model that returns its input gives back the input exactly
  (after rounding to uint8) - no seams, no darkened edges.
- Kept centres (contract 2: tiling-independent models, any tile side that is a multiple of the alignment A,
  each output pixel depending only on input within the receptive radius R). Tiles have margins of
  ``margin`` >= R (a multiple of A) around centres that partition the grid exactly; tile origins sit on
  multiples of A counted from the grid's origin, and each output pixel is taken from the one tile whose centre
  holds it. The window is then 1 on the centre and 0 on the margins: nothing is blended, and the same DEM
  cropped by a multiple of A gives the same pixels away from the crop's edges, whatever the tile size.
"""

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .blockrows import BLOCK
from .errors import InputError

DEFAULT_OVERLAP = 64


def check_overlap(overlap, tile: Optional[int] = None) -> int:
    """Validated overlap in pixels: 0 <= overlap <= tile / 2 (``tile`` None, the model not known yet: >= 0).

    Half a tile is the largest useful overlap: the two edge ramps then meet in the middle (a full Hann window,
    the classic 50 % overlap); beyond it every pixel would be computed more than twice per axis for nothing.
    """
    if isinstance(overlap, bool) or not isinstance(overlap, (int, np.integer)):
        if isinstance(overlap, float) and overlap.is_integer():
            overlap = int(overlap)
        else:
            raise InputError(f"overlap must be a whole number of pixels, got {overlap!r}")
    overlap = int(overlap)
    if tile is None:
        if overlap < 0:
            raise InputError(f"overlap must be 0 pixels or more, got {overlap}")
        return overlap
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


def keep_window(tile: int, margin: int) -> np.ndarray:
    """1-D window of a kept-centre tile: 1 on the centre, 0 on the ``margin`` px at each end."""
    w = np.zeros(tile, dtype=np.float64)
    w[margin : tile - margin] = 1.0
    return w


def margin_for(radius: int, alignment: int) -> int:
    """The margin of a tiling-independent model's tiles: its receptive radius rounded up to the alignment, so
    that the centres, and with them the tile origins, stay on multiples of the alignment."""
    return -(-radius // alignment) * alignment


def check_tile(tile, margin: int, alignment: int) -> int:
    """A kept-centre tile side: a whole multiple of ``alignment`` whose centre (``tile - 2 * margin``) is at
    least one TIFF block wide (centres of several tiles across a stripe join are whole blocks)."""
    least = 2 * margin + BLOCK
    if isinstance(tile, float) and tile.is_integer():
        tile = int(tile)
    if isinstance(tile, bool) or not isinstance(tile, (int, np.integer)) or tile % alignment or tile < least:
        raise InputError(
            f"tile size must be a multiple of {alignment} px of at least {least} (margins of {margin} px on each side "
            f"- the model's reach, and one guide cell more when a colour guide is held - plus a {BLOCK} px centre), "
            f"got {tile!r}"
        )
    return int(tile)


def kept_axis(size: int, tile: int, margin: int, alignment: int, quantum: int) -> tuple:
    """(origins, tile side) of kept-centre tiles along one axis of ``size`` px, tiles at most ``tile`` px.

    The fewest tiles that cover the axis, then the smallest centre (a multiple of ``quantum``) that still
    covers it with that many: a 100 px axis gets one 100 px-and-a-bit tile, not a 1472 px one, and 3000 px get
    three 1024 px centres rather than three of 1280. Centres start at 0 and step by their side; origins are one
    margin before them. With a single tile the centre need only be a multiple of the alignment."""
    most = tile - 2 * margin
    if size <= most:
        centre = -(-size // alignment) * alignment
        return np.array([-margin], dtype=np.int64), centre + 2 * margin
    most -= most % quantum
    count = -(-size // most)
    centre = -(-(-(-size // count)) // quantum) * quantum
    return centre * np.arange(count, dtype=np.int64) - margin, centre + 2 * margin


@dataclass(frozen=True, eq=False)
class ChipLayout:
    """The chips covering a ``width`` x ``height`` grid: column origins ``xs`` and row origins ``ys``, chips of
    ``tile_w`` x ``tile_h`` px. ``blend``: blended chips (``overlap`` px ramps); else kept centres (``margin``
    px dropped at each edge of every tile)."""

    width: int
    height: int
    tile_w: int
    tile_h: int
    overlap: int  # blended: the ramps' width; kept centres: 0
    margin: int  # kept centres: px dropped at each tile edge; blended: 0
    xs: np.ndarray
    ys: np.ndarray
    blend: bool = True

    @classmethod
    def build(cls, width: int, height: int, tile: int, overlap: int = DEFAULT_OVERLAP) -> "ChipLayout":
        """Blended square chips of a fixed side (a contract-1 model)."""
        overlap = check_overlap(overlap, tile)
        return cls(
            width, height, tile, tile, overlap, 0, chip_origins(width, tile, overlap),
            chip_origins(height, tile, overlap),
        )

    @classmethod
    def kept(cls, width: int, height: int, tile: int, margin: int, alignment: int) -> "ChipLayout":
        """Kept-centre tiles of at most ``tile`` px (a tiling-independent model). Columns' centres are whole
        TIFF blocks when there are several (stripe joins fall between them); rows' need only the alignment."""
        tile = check_tile(tile, margin, alignment)
        # Whole TIFF blocks and whole alignments (the lcm: a guide held in cells of, say, 96 px is no power of 2).
        xs, tile_w = kept_axis(width, tile, margin, alignment, math.lcm(BLOCK, alignment))
        ys, tile_h = kept_axis(height, tile, margin, alignment, alignment)
        return cls(width, height, tile_w, tile_h, 0, margin, xs, ys, blend=False)

    @property
    def tile(self) -> int:
        """The side of square chips (every blended layout; kept ones only when square)."""
        if self.tile_w != self.tile_h:
            raise ValueError(f"{self.tile_w} x {self.tile_h} px tiles are not square")
        return self.tile_w

    @property
    def lap(self) -> int:
        """Px each tile shares with its neighbour: the blend's overlap, or the two margins."""
        return self.overlap if self.blend else 2 * self.margin

    @property
    def stride_x(self) -> int:
        return self.tile_w - self.lap

    @property
    def stride_y(self) -> int:
        return self.tile_h - self.lap

    @property
    def stride(self) -> int:
        """The step between square chips (blended layouts)."""
        return self.tile - self.lap

    @property
    def count(self) -> int:
        return len(self.xs) * len(self.ys)

    @property
    def computed_per_output_px(self) -> float:
        """Pixels the model computes per output pixel (without the columns stripes compute again)."""
        return self.count * self.tile_w * self.tile_h / (self.width * self.height)

    def window(self, tile: int) -> np.ndarray:
        """1-D weights of one chip along an axis of ``tile`` px."""
        return edge_ramp(tile, self.overlap) if self.blend else keep_window(tile, self.margin)

    def weights(self) -> np.ndarray:
        """(tile_h, tile_w) float32 weights of one chip's prediction in the mosaic."""
        return np.outer(self.window(self.tile_h), self.window(self.tile_w)).astype(np.float32)

    def columns_touching(self, x0: int, x1: int) -> range:
        """Indices of the chip columns whose weighted pixels (all, or the centre) meet grid columns [x0, x1)."""
        first = int(np.searchsorted(self.xs + self.tile_w - self.margin, x0, side="right"))
        last = int(np.searchsorted(self.xs + self.margin, x1, side="left"))
        return range(first, last)

    def finished_rows(self, row: int) -> tuple:
        """Grid rows [y0, y1) that no chip after chip row ``row`` weighs into, clipped to the grid."""
        y0 = int(self.ys[row]) + self.margin
        y1 = int(self.ys[row + 1]) + self.margin if row + 1 < len(self.ys) else y0 + self.tile_h - 2 * self.margin
        return max(0, y0), min(self.height, y1)

    def describe(self) -> str:
        """"12 chips of 256 px, overlap 64 px" or "6 tiles of 1472 x 1472 px, margins 96 px"."""
        n = self.count
        if self.blend:
            return f"{n} chip{'s' if n != 1 else ''} of {self.tile_w} px, overlap {self.overlap} px"
        return (f"{n} tile{'s' if n != 1 else ''} of {self.tile_w} x {self.tile_h} px, margins {self.margin} px "
                f"({self.computed_per_output_px:.2f} computed px per output px)")
