"""The guide's palette, held: a guided run's colours at the guide's scale are the guide's, the model paints the detail.

A model that takes a colour guide leans on it, but only so far: measured on held-out regions, the whole mosaic's
colour distance was 1.5-2.5x the guide's own. So the engine finishes the job the way pansharpening's high-pass
fusion does: in each coarse cell (the model's ``coarse_px``, 32 px = 6.4 km at 200 m) the output's mean colour is
moved to the guide's, by the difference of the two cell means interpolated bilinearly between cell centres. What
the model painted within a cell (relief, drainage, land-cover texture) stays as it is; its kilometre-scale colour
becomes the guide's. ``strength`` scales the move (0: the model's own palette, 1: the guide's), and a cell only
partly covered by the guide moves by its covered share, so the correction fades out where the guide ends.

Tiling independence: cells sit on multiples of ``coarse_px`` from the grid's origin, and a tile's centre pixel
interpolates between the cells around it, which reach ``coarse_px`` beyond the centre at most. Tiles therefore get
margins of R + ``coarse_px`` (``plan.make_layout``, with origins on the cells too): every cell a kept pixel uses is
then made only of pixels at least R inside the tile, which do not depend on where the tile lies.
"""

import math
import numbers

import numpy as np

from .errors import InputError
from .guide import bilinear


def check_strength(strength) -> float:
    """A guide strength: a number from 0 (the model's palette) to 1 (the guide's)."""
    ok = isinstance(strength, numbers.Real) and not isinstance(strength, bool) and math.isfinite(strength)
    if not ok or not 0.0 <= strength <= 1.0:
        raise InputError(f"guide strength must be a number from 0 (the model's own colours) to 1 (the guide's "
                         f"colours at its scale), got {strength!r}")
    return float(strength)


def held_cell_px(request, metadata):
    """The cell side (px) whose colours the run holds to the guide's, or None: no guide, strength 0, or a model
    that takes no guide (which the conditioning then refuses with the reason)."""
    if request.guide_path is None or not request.guide_strength or not metadata.tiling_independent:
        return None
    spec = metadata.plane("guide_rgb")
    return int(spec.options["coarse_px"]) if spec is not None else None


def held_margin(radius: int, alignment: int, cell_px) -> tuple:
    """(radius, alignment) the tiles need when cells of ``cell_px`` are held to the guide (None: as given): the
    cells around a kept pixel reach ``cell_px`` further, and tile origins must fall on cell boundaries."""
    if not cell_px:
        return radius, alignment
    return radius + cell_px, math.lcm(alignment, cell_px)


class PaletteHold:
    """Moves each tile's centre so that its coarse cells' mean colours are the guide's (``strength`` of the way)."""

    def __init__(self, guide, strength: float, output_scaling: tuple):
        self.guide = guide  # core.guide.GuidePlanes on the whole processing grid
        self.cell = guide.coarse_px
        self.strength = np.float32(check_strength(strength))
        self.output_scaling = output_scaling  # (scale, offset): RGB 0-255 = model output * scale + offset

    def centre(self, tile, x0: int, y0: int, margin: int, height: int, width: int, out=None) -> np.ndarray:
        """The centre ``height`` x ``width`` from ``margin`` of ``tile`` ((3, rows, cols) model output whose first
        pixel is grid pixel (x0, y0), all on cell boundaries), in model units, its cell colours moved; written
        into ``out`` when given (the blender's accumulator: no tile-sized array is allocated)."""
        c = self.cell
        channels, rows, cols = tile.shape
        if x0 % c or y0 % c or rows % c or cols % c or margin % c:
            raise ValueError(f"tile at ({x0}, {y0}), {cols} x {rows} px, margin {margin}: not on {c} px cells")
        model_cells = tile.reshape(channels, rows // c, c, cols // c, c).mean(axis=(2, 4), dtype=np.float32)
        colour, cover = self.guide.cell_window(x0 // c, y0 // c, cols // c, rows // c)
        scale, offset = self.output_scaling
        move = self.strength * cover * ((colour - np.float32(offset)) / np.float32(scale) - model_cells)
        # Cell k's centre is at tile pixel (k + 0.5) c: a pixel's position in cell units, from the first cell's centre.
        u = (margin + np.arange(width) + 0.5) / c - 0.5
        v = (margin + np.arange(height) + 0.5) / c - 0.5
        out = bilinear(move.astype(np.float32), u, v, out)
        out += tile[:, margin:margin + height, margin:margin + width]
        return out
