"""The mosaic: chips of one stripe through the model, blended (or their centres kept) into finished rows.

Each chip's prediction is weighted (``ChipLayout.weights``) and added into an accumulator one chip row high;
when the next chip row no longer touches a grid row, that row is finished: weighted sum / weight sum, scaled
to 0-255, rounded, with the alpha of the DEM's validity. The weight sums are never accumulated: the chip
weights are separable (row ramp x column ramp), so their sum over all chips is the outer product of two 1-D
sums. Kept-centre tiles (a tiling-independent model) are the case of 0/1 weights that partition the grid: each
tile's centre is copied into the accumulator (with a held guide, ``core.palette`` writes it with its coarse cells'
colours moved to the guide's), the margins dropped, and the same finishing gives each pixel the model's own value,
scaled and rounded.

Two threads: the caller's only runs the model on batches, as a bare onnxruntime loop would; the blender
thread (``workers.Behind``, at the helpers' lower priority) weights the predictions, adds them up and finishes
rows, in the gaps the model leaves on the cores, while the model runs the next batch. Batches are blended in
the order they ran, so the sums - and the pixels - are those of one thread doing it all. Reading, colourising
and cutting chip rows into batches are ``chiprows``' job, in the reader thread.
"""

from collections import deque

import numpy as np

from .blockrows import BlockRows
from .chiprows import chip_offsets, rows_per_chunk
from .profile import StageClock
from .workers import Behind


def _column_weight_sum(layout, stripe):
    window = layout.window(layout.tile_w)
    total = np.zeros(stripe.width, dtype=np.float64)
    for c in stripe.columns:
        o = int(layout.xs[c]) - stripe.ax0
        total[o : o + layout.tile_w] += window
    return total


def blend_stripe(plan, stripe, chip_rows, model, on_batch, clock: StageClock):
    """Yield (y0, planes) finished rows of ``stripe`` from its ``chip_rows`` (ChipRows, in order), in whole
    TIFF block rows (``blockrows``; the last may be shorter).

    ``planes`` is (4, rows, stripe.x1 - stripe.x0) uint8 RGBA, band first (GDAL interleaves it as it writes),
    for grid rows from ``y0``; ``on_batch(chips)`` is called after every batch (progress, cancel).
    """
    layout = plan.layout
    blender = _Blender(plan, stripe, clock)
    with Behind(blender.add, name="terraform-blender") as behind:
        for row in range(len(layout.ys)):
            with clock.stage("wait_reader"):
                chip_row = next(chip_rows)
            if chip_row.stripe is not stripe or chip_row.row != row:  # not an assert (Bandit B101 blocks uploads)
                raise RuntimeError(f"chip rows arrive out of order: row {chip_row.row}, expected {row}")
            first = 0
            for b, batch in enumerate(chip_row.batches):
                chunk = range(first, first + len(batch))
                first = chunk.stop
                planes = chip_row.conditions[b] if chip_row.conditions else None
                with clock.stage("infer"):
                    predicted = model.run(batch, planes)  # a new array: the blender owns it
                with clock.stage("wait_blender"):
                    behind.put((predicted, row, chunk, chip_row.valid))
                on_batch(len(chunk))
                yield from blender.take()
        behind.finish()
    yield from blender.take()


class _Blender:
    """The blender thread's state: one chip row of weighted sums, and the rows it finished for the caller."""

    def __init__(self, plan, stripe, clock):
        layout = self.layout = plan.layout
        self.plan, self.stripe, self.clock = plan, stripe, clock
        self.window_y = layout.window(layout.tile_h)
        self.weights = layout.weights() if layout.blend else None
        self.acc = np.zeros((3, layout.tile_h, stripe.width), dtype=np.float32)
        self.offsets = chip_offsets(layout, stripe)
        self.column_sum = _column_weight_sum(layout, stripe)
        self.cols = slice(stripe.x0 - stripe.ax0, stripe.x1 - stripe.ax0)
        # Finished rows, joined into whole TIFF block rows here (a copy of up to 8 MB each, off the model's
        # thread), appended by the blender thread, taken by the caller's.
        self.blocks = BlockRows(plan.grid.height, clock)
        self.finished = deque()  # (y0, planes)
        self._norms = {}

    def add(self, job):
        """Blender thread: weight one batch's predictions into the sums; after a chip row's last batch, finish
        the rows no later chip row touches."""
        predicted, row, chunk, valid = job
        layout, acc = self.layout, self.acc
        with self.clock.stage("blend"):
            if not layout.blend:  # each centre pixel is written once, by its own tile: nothing to add up
                m, h, w = layout.margin, layout.stride_y, layout.stride_x
                palette = self.plan.palette
                for k, c in enumerate(chunk):
                    o = self.offsets[c] + m
                    if palette is None:
                        acc[:, m : m + h, o : o + w] = predicted[k, :, m : m + h, m : m + w]
                    else:
                        x0, y0 = self.offsets[c] + self.stripe.ax0, int(layout.ys[row])  # grid pixels
                        palette.centre(predicted[k], x0, y0, m, h, w, out=acc[:, m : m + h, o : o + w])
            else:
                if chunk.start == 0 and row:  # slide the accumulator down one stride; the overlap rows carry over
                    acc[:, : layout.overlap] = acc[:, layout.stride_y :]
                    acc[:, layout.overlap :] = 0
                predicted *= self.weights
                for k, c in enumerate(chunk):
                    o = self.offsets[c]
                    acc[:, :, o : o + layout.tile_w] += predicted[k]
        if chunk.stop == len(self.offsets):
            y0, y1 = layout.finished_rows(row)
            if y1 > y0:
                with self.clock.stage("rows"):
                    planes = _finish(self.plan, acc, row, y0, y1, self.stripe, self.norms, valid)
                self.finished.extend(self.blocks.add(y0, planes))

    def take(self):
        """Caller's thread: the rows finished so far, in order."""
        while self.finished:
            yield self.finished.popleft()

    def norms(self, row, local):  # the same for every chip row but the first and the last: computed once each
        key = (row > 0, local.start, local.stop)
        if key not in self._norms:
            self._norms[key] = _norm(self.plan, row, local, self.column_sum, self.cols, self.window_y)
        return self._norms[key]


def _norm(plan, row, local, column_sum, cols, window_y):
    """out_scale / (sum of the chip weights) over rows ``local`` of chip row ``row``: (1, rows, cols)."""
    layout = plan.layout
    row_sum = window_y.copy()
    if row:  # the previous chip row's bottom edge overlaps this row's top
        row_sum[: layout.lap] += window_y[layout.stride_y :]
    norm = np.outer(row_sum[local], column_sum[cols]).astype(np.float32)
    return (plan.output_scaling[0] / norm)[None]


def _finish(plan, acc, row, y0, y1, stripe, norms, valid):
    """Finished rows [y0, y1) of the stripe: weighted mean -> 0-255 -> uint8, band first (4, rows, width)."""
    layout = plan.layout
    top = y0 - int(layout.ys[row])
    local = slice(top, y1 - int(layout.ys[row]))
    cols = slice(stripe.x0 - stripe.ax0, stripe.x1 - stripe.ax0)
    norm = norms(row, local)
    planes = np.empty((4, y1 - y0, stripe.x1 - stripe.x0), dtype=np.uint8)
    step = rows_per_chunk(stripe.x1 - stripe.x0)
    for r in range(0, y1 - y0, step):  # in chunks of rows, so that ``mean`` stays in cache
        end = min(r + step, y1 - y0)
        # (weighted sum / weight sum) * scale + offset, with the weight sum folded into one factor.
        mean = acc[:, top + r : top + end, cols] * norm[:, r:end]
        mean += plan.output_scaling[1]
        np.clip(mean, 0.0, 255.0, out=mean)
        np.rint(mean, out=mean)
        planes[:3, r:end] = mean
    planes[3] = 255 if valid is None else valid[local, cols] * np.uint8(255)
    return planes
