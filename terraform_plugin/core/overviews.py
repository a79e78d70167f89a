"""Overviews built from the stream: each finished block row is averaged into the overview levels as it is
written, instead of reading the whole output back (and decompressing it) in a second pass.

The pixels are GDAL's own AVERAGE overviews of an RGBA image (``BuildOverviews("AVERAGE")``, GDAL 3.6 and
later), which ``tests/core/test_overviews.py`` checks bit for bit:

- each level is computed from the one before it (the full image for the first);
- destination pixel ``i`` of an axis covers source ``[i * r, (i + 1) * r)``, ``r`` = source / destination
  size; its edge pixels weigh by the fraction of them inside (``r`` is 2 exactly on an axis of even size: plain
  pairs; an odd size makes ``r`` a little under 2 and windows of three pixels);
- every band, alpha included, averages only the pixels whose alpha is not 0 (0 where none is), and the mean is
  rounded half up.

Even-sized levels, the common case, are integer sums; other axes go through float64 like GDAL's.
"""

import numpy as np

BLOCK = 256


class _Axis:
    """Source windows of every destination pixel along one axis: ``first``/``last`` (exclusive) and, when
    the ratio is not exactly 2, ``taps`` (index, weight) arrays of shape (n_dst, K) with zero-weight padding."""

    def __init__(self, n_src: int, n_dst: int):
        self.n_src, self.n_dst = n_src, n_dst
        self.pairs = n_src == 2 * n_dst
        # GDAL's windows, computed for all destination pixels at once (float64, the same operations in the same
        # order as a per-pixel loop, so the same bits): [lo_f, hi_f) in source pixels, widened to whole pixels.
        ratio = n_src / n_dst
        i = np.arange(n_dst, dtype=np.float64)
        lo_f, hi_f = i * ratio, (i + 1) * ratio
        lo = (lo_f + 1e-8).astype(np.int64)  # int(): truncation, i.e. floor for these non-negative values
        hi = np.ceil(hi_f - 1e-8).astype(np.int64)
        hi += hi == lo
        np.minimum(hi, n_src, out=hi)
        size = hi - lo
        k = int(size.max())
        j = np.arange(k)
        self.first, self.last = lo, hi
        self.index = lo[:, None] + np.minimum(j[None, :], size[:, None] - 1)
        weight = (j[None, :] < size[:, None]).astype(np.float64)
        wide = size > 1  # edge pixels weigh by the fraction of them inside the window
        weight[wide, 0] = 1 - (lo_f[wide] - lo[wide])
        rows = np.nonzero(wide)[0]
        weight[rows, size[wide] - 1] = 1 - (hi[wide] - hi_f[wide])
        self.weight = weight

    def reduce(self, a, axis, src0=0, dst=slice(None)):
        """Weighted sums of ``a`` along ``axis`` for destination pixels ``dst``; ``a`` starts at source ``src0``."""
        index, weight = self.index[dst] - src0, self.weight[dst]
        shape = [1] * a.ndim
        shape[axis] = len(index)
        total = None
        for j in range(index.shape[1]):
            term = np.take(a, index[:, j], axis=axis) * weight[:, j].reshape(shape)
            total = term if total is None else total + term
        return total


def _pairs(a, axis):
    """Sums of adjacent pairs along ``axis`` (integer arrays stay integer)."""
    first = [slice(None)] * a.ndim
    second = [slice(None)] * a.ndim
    first[axis], second[axis] = slice(0, None, 2), slice(1, None, 2)
    return a[tuple(first)] + a[tuple(second)]


def _average(chunk, ys: _Axis, xs: _Axis, src0: int, dst: slice) -> np.ndarray:
    """(4, rows, n_dst) uint8: AVERAGE of destination rows ``dst`` from ``chunk`` (4, rows, n_src) uint8
    RGBA whose first row is source row ``src0``."""
    if ys.pairs and xs.pairs:
        alpha = chunk[3]
        if alpha.all():  # nothing masked: (sum of 4 + 2) // 4 is the mean rounded half up; alpha stays 255
            total = np.add(chunk[:3, 0::2], chunk[:3, 1::2], dtype=np.uint16)
            total = _pairs(total, 2)
            total += 2
            total >>= 2
            out = np.empty((4,) + total.shape[1:], dtype=np.uint8)
            out[:3] = total
            out[3] = 255
            return out
        v = chunk.astype(np.uint16)
        valid = alpha != 0
        v *= valid
        count = _pairs(_pairs(valid.astype(np.uint16), 0), 1)
        total = _pairs(_pairs(v, 1), 2)
        # floor(total / count + 0.5) = (2 total + count) // (2 count), exactly, in integers; 0 where count is 0
        out = (2 * total + count) // np.maximum(2 * count, 1)
        out *= count != 0
        return out.astype(np.uint8)
    valid = (chunk[3] != 0).astype(np.float64)
    v = chunk * valid
    if xs.pairs:
        v, valid = _pairs(v, 2), _pairs(valid, 1)
    else:
        v, valid = xs.reduce(v, 2), xs.reduce(valid, 1)
    if ys.pairs:
        v, valid = _pairs(v, 1), _pairs(valid, 0)
    else:
        v, valid = ys.reduce(v, 1, src0, dst), ys.reduce(valid, 0, src0, dst)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.floor(v / valid + 0.5)
    mean[:, valid == 0] = 0
    return mean.astype(np.uint8)


class _Level:
    """One overview level: source rows wait here until the destination rows they make are complete."""

    def __init__(self, dataset, src_size, dst_size):
        self.dataset = dataset  # the level's own GDAL dataset (all four bands: tiles written once)
        self.xs = _Axis(src_size[0], dst_size[0])
        self.ys = _Axis(src_size[1], dst_size[1])
        self.pending, self.pending_y0 = [], 0  # source rows not yet used up
        self.done = 0  # destination rows computed
        self.out, self.out_y0 = [], 0  # destination rows waiting for a whole block row

    def add(self, y0, planes):
        """Source rows from ``y0``; returns the destination rows (y0, planes) this completes, or None."""
        self.pending.append(planes)
        rows = np.concatenate(self.pending, axis=1) if len(self.pending) > 1 else planes
        end = self.pending_y0 + rows.shape[1]
        ready = int(np.searchsorted(self.ys.last, end, side="right"))  # destination rows whose window is in
        if ready <= self.done:
            self.pending = [rows]
            return None
        if self.ys.pairs:
            rows_needed = rows[:, 2 * self.done - self.pending_y0 : 2 * ready - self.pending_y0]
            made = _average(rows_needed, self.ys, self.xs, 0, slice(self.done, ready))
        else:
            made = _average(rows, self.ys, self.xs, self.pending_y0, slice(self.done, ready))
        start, self.done = self.done, ready
        keep = int(self.ys.first[ready]) if ready < self.ys.n_dst else end
        self.pending = [rows[:, keep - self.pending_y0 :]]
        self.pending_y0 = keep
        return start, made


class OverviewStream:
    """Averages whole-width block rows into the ``dataset``'s overview levels (made empty beforehand with
    ``BuildOverviews("NONE", ...)``) as they are written; ``write(x0, y0, (4, rows, width) uint8)`` writes
    one level's whole block rows."""

    def __init__(self, dataset, write):
        self.write = write
        band = dataset.GetRasterBand(1)
        size = (dataset.RasterXSize, dataset.RasterYSize)
        self.levels = []
        for i in range(band.GetOverviewCount()):
            overview = band.GetOverview(i)
            dst = (overview.XSize, overview.YSize)
            self.levels.append(_Level(overview.GetDataset(), size, dst))
            size = dst
        self.height = dataset.RasterYSize
        self.fed = 0

    def add(self, y0, planes):
        """The full-resolution rows from ``y0`` (they arrive in order, whole width)."""
        if y0 != self.fed:  # not an assert (Bandit B101)
            raise RuntimeError(f"overview rows arrive out of order: {y0} after {self.fed}")
        self.fed += planes.shape[1]
        self._cascade(0, y0, planes)

    def _cascade(self, i, y0, planes):
        if i == len(self.levels):
            return
        level = self.levels[i]
        made = level.add(y0, planes)
        if made is None:
            return
        start, rows = made
        level.out.append(rows)
        waiting = np.concatenate(level.out, axis=1) if len(level.out) > 1 else rows
        end = level.out_y0 + waiting.shape[1]
        complete = end if end >= level.ys.n_dst else end // BLOCK * BLOCK
        if complete > level.out_y0:
            cut = complete - level.out_y0
            self.write(level.dataset, level.out_y0, waiting[:, :cut])
            rest = waiting[:, cut:]
            level.out, level.out_y0 = ([rest] if rest.shape[1] else []), complete
        else:
            level.out = [waiting]
        self._cascade(i + 1, start, rows)

    def finished(self) -> bool:
        return self.fed == self.height and all(level.done == level.ys.n_dst for level in self.levels)
