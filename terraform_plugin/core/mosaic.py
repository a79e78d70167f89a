"""The mosaic: chips of one stripe through the model, blended into finished rows.

Each chip's prediction is weighted (``chips.blend_weights``) and added into an accumulator one chip row high;
when the next chip row no longer touches a grid row, that row is finished: weighted sum / weight sum, scaled
to 0-255, rounded, with the alpha of the DEM's validity. The weight sums are never accumulated: the chip
weights are separable (row ramp x column ramp), so their sum over all chips is the outer product of two 1-D
sums.

Only what must be serial with inference happens here (copy chips into the batch, run the model, add the
weighted predictions); reading and colourising are ``chiprows``' job, in the reader thread.
"""

import numpy as np

from .chips import blend_weights, edge_ramp
from .profile import StageClock


def _column_weight_sum(layout, stripe, ramp_1d):
    total = np.zeros(stripe.width, dtype=np.float64)
    for c in stripe.columns:
        o = int(layout.xs[c]) - stripe.ax0
        total[o : o + layout.tile] += ramp_1d
    return total


def blend_stripe(plan, stripe, chip_rows, model, on_batch, clock: StageClock):
    """Yield (y0, planes) finished rows of ``stripe`` from its ``chip_rows`` (ChipRows, in order).

    ``planes`` is (4, rows, stripe.x1 - stripe.x0) uint8 RGBA, band first (GDAL interleaves it as it writes),
    for grid rows from ``y0``; ``on_batch(chips)`` is called after every batch (progress, cancel).
    """
    layout = plan.layout
    tile, stride, overlap, batch_size = layout.tile, layout.stride, layout.overlap, plan.batch_size
    ramp_1d = edge_ramp(tile, overlap)
    weights = blend_weights(tile, overlap)
    acc = np.zeros((3, tile, stripe.width), dtype=np.float32)
    batch = np.empty((batch_size, 3, tile, tile), dtype=np.float32)
    column_sum = _column_weight_sum(layout, stripe, ramp_1d)
    cols = slice(stripe.x0 - stripe.ax0, stripe.x1 - stripe.ax0)
    cache = {}

    def norms(row, local):  # the same for every chip row but the first and the last: computed once each
        key = (row > 0, local.start, local.stop)
        if key not in cache:
            cache[key] = _norm(plan, row, local, column_sum, cols, ramp_1d)
        return cache[key]

    offsets = [int(layout.xs[c]) - stripe.ax0 for c in stripe.columns]
    for row in range(len(layout.ys)):
        with clock.stage("wait_reader"):
            chip_row = next(chip_rows)
        if chip_row.stripe is not stripe or chip_row.row != row:  # not an assert (Bandit B101 blocks uploads)
            raise RuntimeError(f"chip rows arrive out of order: row {chip_row.row}, expected {row}")
        x = chip_row.x
        with clock.stage("blend"):
            if row:  # slide the accumulator down one stride; the overlap rows carry over
                acc[:, :overlap] = acc[:, stride:]
                acc[:, overlap:] = 0
        for b in range(0, len(offsets), batch_size):
            chunk = offsets[b : b + batch_size]
            with clock.stage("batch"):
                for k, o in enumerate(chunk):
                    batch[k] = x[:, :, o : o + tile]
            with clock.stage("infer"):
                predicted = model.run(batch[: len(chunk)])
            with clock.stage("blend"):
                predicted *= weights
                for k, o in enumerate(chunk):
                    acc[:, :, o : o + tile] += predicted[k]
            on_batch(len(chunk))
        y0, y1 = layout.finished_rows(row)
        if y1 > y0:
            with clock.stage("rows"):
                planes = _finish(plan, acc, row, y0, y1, stripe, norms, chip_row.valid)
            yield y0, planes


def _norm(plan, row, local, column_sum, cols, ramp_1d):
    """out_scale / (sum of the chip weights) over rows ``local`` of chip row ``row``: (1, rows, cols)."""
    layout = plan.layout
    row_sum = ramp_1d.copy()
    if row:  # the previous chip row's bottom edge overlaps this row's top
        row_sum[: layout.overlap] += ramp_1d[layout.stride :]
    norm = np.outer(row_sum[local], column_sum[cols]).astype(np.float32)
    return (plan.output_scaling[0] / norm)[None]


def _finish(plan, acc, row, y0, y1, stripe, norms, valid):
    """Finished rows [y0, y1) of the stripe: weighted mean -> 0-255 -> uint8, band first (4, rows, width)."""
    layout = plan.layout
    local = slice(y0 - int(layout.ys[row]), y1 - int(layout.ys[row]))
    cols = slice(stripe.x0 - stripe.ax0, stripe.x1 - stripe.ax0)
    # (weighted sum / weight sum) * scale + offset, with the weight sum folded into one factor.
    mean = acc[:, local, cols] * norms(row, local)
    mean += plan.output_scaling[1]
    np.clip(mean, 0.0, 255.0, out=mean)
    np.rint(mean, out=mean)
    planes = np.empty((4, y1 - y0, stripe.x1 - stripe.x0), dtype=np.uint8)
    planes[:3] = mean
    planes[3] = 255 if valid is None else valid[local, cols] * np.uint8(255)
    return planes
