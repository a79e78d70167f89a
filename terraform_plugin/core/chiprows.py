"""Chip rows: the model's input for one stripe, one chip row (256 grid rows, or one row of tall tiles) at a time.

read (resampled, mirrored at the grid's edges) -> no-data fill -> colourise with the model's ramp, straight
into the model's input range, channel first (the ramp's table maps elevations to input values in one pass). Done once per chip row rather than once per chip: the chips of a row
are then plain slices of it. A conditioned model's planes (latitude, look...) are made per batch beside them.
"""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from . import source as dem_source
from .profile import StageClock

# Transparent mode fills nodata from valid pixels up to this far (grid px) so the model sees a plausible
# surface next to holes; windows are read with the same margin, so neighbouring chips fill identically.
FILL_DISTANCE = 64
# GDAL's block cache may keep this much of the source (warped blocks shared by consecutive chip rows) before
# the reader flushes it; GDAL's default limit (5 % of RAM) would let it grow with the raster.
GDAL_CACHE_KEEP = 64 * 2**20
# Pixels per chunk of the per-pixel passes (colourise, finishing rows): their temporaries - a dozen arrays of
# 1-8 bytes a pixel - then stay in a core's L2 cache (a few MB) instead of streaming chip-row-sized arrays
# (25 MB at 8192 px) through memory, where they also evict the model's data. Measured: colourising a
# 192 x 8192 chip row takes 0.33 ms of CPU per chip whole, 0.21 in chunks of 16 rows, on an idle core.
CHUNK_PIXELS = 1 << 17


@dataclass(frozen=True, eq=False)
class ChipRow:
    stripe: object
    row: int  # index into layout.ys
    batches: tuple  # the chip row's chips, in the model's input range, cut into its batches (``cut_batches``)
    valid: Optional[np.ndarray]  # (tile_h, stripe.width) bool where the DEM has data; None in ocean mode
    conditions: Optional[tuple] = None  # per batch, the conditioning planes by kind (``conditioning``); or None


def rows_per_chunk(width: int) -> int:
    """Rows of a ``width``-pixel wide array to work on at a time, so that the temporaries stay in cache."""
    return max(1, CHUNK_PIXELS // width)


def colourise_rows(plan, z, levels, out):
    """Elevations ``z`` (rows, width) -> ``out`` (3, rows, width): the plan's ramp through ``levels``, in chunks of
    rows (the same values as all at once: every pixel is coloured on its own)."""
    step = rows_per_chunk(z.shape[1])
    for r in range(0, len(z), step):
        part = z[r : r + step]
        plan.ramp.colourise_planes(plan.relief.ramp_elevation(part), plan.relief.sea_mask(part), levels,
                                   out=out[:, r : r + step])


def chip_offsets(layout, stripe) -> list:
    """Where each chip of ``stripe`` starts in its chip rows (and accumulator): columns from ``stripe.ax0``."""
    return [int(layout.xs[c]) - stripe.ax0 for c in stripe.columns]


def cut_batches(x, offsets, tile: int, batch_size: int) -> tuple:
    """The chips of chip row ``x`` (3, tile_h, width) at ``offsets``, ``tile`` px wide, in order, as the model's
    batches: contiguous (n, 3, tile_h, tile) arrays of at most ``batch_size`` chips. A chip row that is one
    chip (a stripe of one kept-centre tile: 2048 px at the defaults) is its own batch, not copied (47 MB)."""
    if len(offsets) == 1 and offsets[0] == 0 and x.shape[2] == tile:
        return (x[None],)
    batches = []
    for b in range(0, len(offsets), batch_size):
        chunk = offsets[b : b + batch_size]
        batch = np.empty((len(chunk), 3, x.shape[1], tile), dtype=x.dtype)
        for k, o in enumerate(chunk):
            batch[k] = x[:, :, o : o + tile]
        batches.append(batch)
    return tuple(batches)


def input_levels(scale, offset) -> np.ndarray:
    """Model input of each colour value 0-255: v * scale + offset, in float32 as ``TerraformModel.predict``."""
    levels = np.arange(256, dtype=np.float32)
    levels *= scale
    levels += offset
    return levels


def read_chip_rows(plan, source, stripe, clock: StageClock):
    """Yield the ChipRow of every chip row of ``stripe``, top to bottom, already cut into the model's batches:
    the copy is done here, in the reader thread, rather than between the model's batches."""
    layout = plan.layout
    tile = layout.tile_h
    offsets = chip_offsets(layout, stripe)
    levels = input_levels(*plan.input_scaling)
    previous = None  # (end row, window) of the last chip row: its bottom rows are this one's top
    last = None  # (end row, model input, filled) of the last chip row
    for row, y0 in enumerate(layout.ys):
        y0, y1 = int(y0), int(y0) + tile
        with clock.stage("read"):
            if previous is not None and previous[0] > y0:
                reused = previous[1][y0 - previous[0] :]
                fresh = source.read(stripe.ax0, previous[0], stripe.width, y1 - previous[0])
                z = np.concatenate([reused, fresh])
            else:
                z = source.read(stripe.ax0, y0, stripe.width, tile)
            previous = (y1, z)
            valid = np.isfinite(z)
        filled = plan.transparent and not valid.all()
        if filled:
            with clock.stage("fill"):
                # From a window FILL_DISTANCE wider on every side, so that neighbouring chip rows and stripes
                # see the same filled surface where they overlap.
                m = FILL_DISTANCE
                wide = source.read(stripe.ax0 - m, y0 - m, stripe.width + 2 * m, tile + 2 * m)
                z = dem_source.fill_nodata(wide, m)[m : m + tile, m : m + stripe.width]
        with clock.stage("read"):
            source.release_cache(keep_bytes=GDAL_CACHE_KEEP)
        with clock.stage("colourise"):  # straight into the model's input range, channel first
            x = np.empty((3, tile, stripe.width), dtype=levels.dtype)
            # The rows shared with the last chip row (the overlap) are already colourised, unless either row
            # was filled (fills from different windows need not agree to the bit).
            done = last[0] - y0 if last is not None and last[0] > y0 and not (filled or last[2]) else 0
            if done:
                x[:, :done] = last[1][:, tile - done :]
            colourise_rows(plan, z[done:], levels, x[:, done:])
            # Kept-centre tiles share only their margins with the row before: keeping a whole tile row's colours
            # for them would cost more memory than colourising them again costs time.
            last = (y1, x, filled) if layout.blend else None
        with clock.stage("batch"):
            batches = cut_batches(x, offsets, layout.tile_w, plan.batch_size)
            x = None
            conditions = None
            if plan.conditioning is not None:
                origins = [int(layout.xs[c]) for c in stripe.columns]
                sizes = np.cumsum([0] + [len(b) for b in batches])
                conditions = tuple(
                    plan.conditioning.batch(origins[a:b], y0, layout.tile_w, tile) for a, b in zip(sizes, sizes[1:])
                )
        yield ChipRow(stripe, row, batches, valid if plan.transparent else None, conditions)
