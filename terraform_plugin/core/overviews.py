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

Outputs wider than one stripe (``plan.stripes``) are written stripe after stripe, each top to bottom. A level
is then made stripe by stripe when every join falls on one of its columns (joins at multiples of 2^level: the
engine's joins, multiples of 256, stream levels 1-8). Each stripe uses its slice of the level's global x axis
(the same windows and weights); on an even source width no window crosses a join (exact pairs from an even
column), on an odd one the window at a join reaches one column into the stripe before, which that stripe kept
(one column x the level's height). Where a join is not on one of the level's tile boundaries (a 1792 px
stripe's level 1 ends at column 896, in the middle of a tile), the stripe's last columns short of a whole tile
wait (``_Seams``) until the next stripe's first columns complete that tile: every tile is still compressed
once, for less than a tile's width x the level's height in memory. The smaller levels are made after the last
stripe from the last streamed level (1/4^L of the output), read back in whole-width block rows. Joins at odd
columns keep GDAL's pass (``writer.OutputWriter``).
"""

import numpy as np

from .blockrows import BLOCK, BlockRows



class _Axis:
    """Source windows of every destination pixel along one axis: ``first``/``last`` (exclusive) and the taps:
    ``index``/``weight`` of shape (n_dst, K), zero-weight padding after a shorter window; stored tap by tap
    (``taps_index``/``taps_weight``, (K, n_dst), each tap contiguous: numpy multiplies by a contiguous weight
    row twice as fast as by a strided column)."""

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
        self.taps_index = np.ascontiguousarray((lo[:, None] + np.minimum(j[None, :], size[:, None] - 1)).T)
        weight = (j[None, :] < size[:, None]).astype(np.float64)
        wide = size > 1  # edge pixels weigh by the fraction of them inside the window
        weight[wide, 0] = 1 - (lo_f[wide] - lo[wide])
        rows = np.nonzero(wide)[0]
        weight[rows, size[wide] - 1] = 1 - (hi[wide] - hi_f[wide])
        self.taps_weight = np.ascontiguousarray(weight.T)

    @property
    def index(self):
        return self.taps_index.T

    @property
    def weight(self):
        return self.taps_weight.T

    def part(self, dst0: int, dst1: int) -> "_Axis":
        """Destination pixels [dst0, dst1) as an axis of their own, its source renumbered from ``first[dst0]``:
        the same windows and weights (slices of this axis, not derived again), for one stripe's columns."""
        part = object.__new__(_Axis)
        src0 = int(self.first[dst0])
        part.first, part.last = self.first[dst0:dst1] - src0, self.last[dst0:dst1] - src0
        part.taps_index, part.taps_weight = self.taps_index[:, dst0:dst1] - src0, self.taps_weight[:, dst0:dst1]
        part.n_src, part.n_dst = int(part.last[-1]), dst1 - dst0
        part.pairs = self.pairs and 2 * dst0 == src0  # exact pairs from an even column
        return part

    def ones(self):
        """The sums of the weights of each destination pixel (every source pixel valid), as ``_xsums`` adds them."""
        if getattr(self, "_ones", None) is None:
            self._ones = _xsums(self, np.ones((1, self.n_src), dtype=np.uint8), 1)[0]
        return self._ones

    def reduce(self, a, axis, src0=0, dst=slice(None)):
        """Weighted sums (float64) of ``a`` along ``axis`` for destination pixels ``dst``; ``a`` starts at
        source ``src0``. ``a`` may be uint8: its values times the weights are the products of float64(a)."""
        total = None
        for index, weight in zip(self.taps_index, self.taps_weight):
            index, weight = index[dst] - src0, weight[dst]
            shape = [1] * a.ndim
            shape[axis] = len(index)
            term = np.take(a, index, axis=axis)
            if total is None:
                total = term * weight.reshape(shape)
                continue
            # x * 1.0 is x: where the weights are 1 (the middle tap of three, all along an odd-sized axis but
            # its first and last pixels), add the pixels without the products; the same sums, bit for bit.
            unit = weight == 1.0
            inner = [slice(None)] * a.ndim
            inner[axis] = slice(1, -1)
            if len(unit) > 2 and unit[1:-1].all():
                total[tuple(inner)] += term[tuple(inner)]
                for end in (0, -1):
                    at = [slice(None)] * a.ndim
                    at[axis] = slice(end, end + 1 or None)
                    total[tuple(at)] += term[tuple(at)] * weight[end]
            else:
                total += term * weight.reshape(shape)
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
        low = alpha.min()
        if low:  # nothing masked: (sum of 4 + 2) // 4 is the mean rounded half up; alpha stays 255 if it is
            bands = 3 if low == 255 else 4  # (a run's alpha is 0 or 255; GDAL averages any other alpha too)
            total = np.add(chunk[:bands, 0::2], chunk[:bands, 1::2], dtype=np.uint16)
            total = _pairs(total, 2)
            total += 2
            total >>= 2
            out = np.empty((4,) + total.shape[1:], dtype=np.uint8)
            out[:bands] = total
            if bands == 3:
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
    return _weighted_average(chunk, ys, xs, src0, dst)


PIECE_PX = 1 << 15  # source pixels per group of rows in ``_weighted_average``: its float64 stays in the cache


def _xsums(xs: _Axis, a, axis):
    """Sums along x of uint8 ``a`` (pixel values, or 0/1 validity), float64: the values of ``_pairs`` or
    ``xs.reduce`` on float64(a), computed without converting ``a`` first."""
    if not xs.pairs:
        return xs.reduce(a, axis)
    first = [slice(None)] * a.ndim
    second = [slice(None)] * a.ndim
    first[axis], second[axis] = slice(0, None, 2), slice(1, None, 2)
    return np.add(a[tuple(first)], a[tuple(second)], dtype=np.float64)


def _weighted_average(chunk, ys: _Axis, xs: _Axis, src0: int, dst: slice) -> np.ndarray:
    """``_average`` where an axis is not exact pairs: GDAL's float64 sums (each pixel times its weight, added tap
    by tap; x, then y), divided by the sums of the weights of the valid pixels, plus 0.5, floored.

    Done a few destination rows at a time, so that the float64 arrays stay in the CPU cache; the pixels are
    taken as uint8 (masked ones set to 0) and turned into float64 by the products themselves. Where alpha is
    only ever 0 or 255 (every output of a run) its mean is 255 wherever any pixel counts, so it is not summed.
    """
    _, _, width = chunk.shape
    d_start = dst.start or 0
    d_stop = ys.n_dst if dst.stop is None else dst.stop
    out = np.empty((4, d_stop - d_start, xs.n_dst), dtype=np.uint8)
    group = max(1, PIECE_PX // (2 * width))  # destination rows at a time
    for d0 in range(d_start, d_stop, group):
        d1 = min(d_stop, d0 + group)
        if ys.pairs:
            r0, r1 = 2 * (d0 - d_start), 2 * (d1 - d_start)
        else:
            r0, r1 = int(ys.first[d0]) - src0, int(ys.last[d1 - 1]) - src0
        piece = chunk[:, r0:r1]
        alpha = piece[3]
        low = alpha.min()
        if low:  # every pixel counts: the weight sums are the axis's own, the same on every row
            binary = low == 255
            weights = np.broadcast_to(xs.ones(), (r1 - r0, xs.n_dst))
        else:
            valid = alpha != 0
            piece = piece * valid  # uint8 with the masked pixels 0: the same products as chunk * valid
            binary = not ((alpha != 0) & (alpha != 255)).any()
            weights = _xsums(xs, valid.view(np.uint8), 1)
        bands = 3 if binary else 4
        v = _xsums(xs, piece[:bands], 2)
        if ys.pairs:
            v, weights = _pairs(v, 1), _pairs(weights, 0)
        else:
            rows = slice(d0, d1)
            v, weights = ys.reduce(v, 1, src0 + r0, rows), ys.reduce(weights, 0, src0 + r0, rows)
        empty = weights == 0
        with np.errstate(invalid="ignore", divide="ignore"):
            v /= weights
        v += 0.5
        np.floor(v, out=v)
        v[:, empty] = 0
        made = out[:, d0 - d_start : d1 - d_start]
        made[:bands] = v
        if binary:
            made[3] = 255
            made[3][empty] = 0
    return out


class _Level:
    """One overview level (or one stripe's columns of it): source rows wait here until the destination rows they
    make are complete."""

    def __init__(self, dataset, xs: _Axis, ys: _Axis, x0: int = 0, carry=None, keep: int = 0):
        self.dataset = dataset  # the level's own GDAL dataset (all four bands: tiles written once)
        self.xs, self.ys = xs, ys
        self.x0 = x0  # the level's column of destination pixel 0 of ``xs``
        # Odd widths: the source columns left of the stripe that its first window needs, (4, source height,
        # columns), kept by the stripe before; and how many of its own last columns the next stripe needs.
        self.carry, self.keep, self.kept = carry, keep, []
        self.pending, self.pending_y0 = [], 0  # source rows not yet used up
        self.done = 0  # destination rows computed
        self.blocks = BlockRows(ys.n_dst)  # destination rows waiting for a whole block row

    def add(self, y0, planes):
        """Source rows from ``y0``; returns the destination rows (y0, planes) this completes, or None."""
        if self.keep:
            self.kept.append(planes[:, :, -self.keep :].copy())
        if self.carry is not None:
            planes = np.concatenate([self.carry[:, y0 : y0 + planes.shape[1]], planes], axis=2)
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


class _Chain:
    """Levels fed one from the other, the first from rows of one column range (a stripe, or the whole width)
    that arrive in order, top to bottom; each level's finished block rows go to ``write(dataset, x0, y0,
    planes)``, or to that level's ``seams`` (``_Seams``) where the stripe's columns are not whole tiles."""

    def __init__(self, levels, height, write, seams=None):
        self.levels, self.height, self.write = levels, height, write
        self.seams = seams or [None] * len(levels)
        self.fed = 0

    def add(self, y0, planes):
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
        seams = self.seams[i]
        for y0, block in level.blocks.add(start, rows):
            if seams is None:
                self.write(level.dataset, level.x0, y0, block)
            else:
                seams.add(level.x0, y0, block)
        self._cascade(i + 1, start, rows)

    def finished(self) -> bool:
        return self.fed == self.height and all(level.done == level.ys.n_dst for level in self.levels)


def stripe_levels(levels: int, joins) -> int:
    """How many of ``levels`` overview levels can be made stripe by stripe for stripes joining at columns
    ``joins``: all without a join; else those on whose columns every join falls (joins multiples of 2^level).
    A window that crosses a join (a level of odd source width: GDAL's windows of three pixels) takes the one
    column it needs from the stripe before, kept for the purpose; a tile that a join cuts waits for the next
    stripe to complete it (``OverviewStream``)."""
    if not joins:
        return levels
    count = 0
    while count < levels and not any(x % (2 << count) for x in joins):
        count += 1
    return count


class _Seams:
    """One streamed level's tiles cut by stripe joins: a stripe's block rows are written up to its last whole
    tile, the columns after it wait here (per block row) until the next stripe's rows of that block row arrive
    and complete it. So each tile is written, and compressed, once."""

    def __init__(self, dataset, width, write):
        self.dataset, self.width, self.write = dataset, width, write
        self.waiting = {}  # block row y0 -> (x0, (4, rows, columns)): the columns from x0 (a tile boundary)

    def add(self, x0, y0, planes):
        """One block row of the level's columns from ``x0`` (a stripe's, in stripe order)."""
        waiting = self.waiting.pop(y0, None)
        if waiting is not None:
            before, columns = waiting
            if before + columns.shape[2] != x0:  # not an assert (Bandit B101)
                raise RuntimeError(f"overview columns {before}-{before + columns.shape[2]} wait, {x0} arrive")
            planes, x0 = np.concatenate([columns, planes], axis=2), before
        x1 = x0 + planes.shape[2]
        whole = x1 if x1 == self.width else x1 - x1 % BLOCK
        if whole < x1:  # a copy: the slice would keep the whole block row alive
            self.waiting[y0] = (whole, planes[:, :, whole - x0 :].copy())
        if whole > x0:
            self.write(self.dataset, x0, y0, planes[:, :, : whole - x0])


class OverviewStream:
    """Averages block rows into the ``dataset``'s overview levels (made empty beforehand with
    ``BuildOverviews("NONE", ...)``) as they are written; ``write(dataset, x0, y0, (4, rows, width) uint8)``
    writes one level's whole block rows at column ``x0``.

    ``stripes``: the column ranges [(x0, x1), ...] the rows come in, one stripe after the other, each top to
    bottom (default: the whole width, one stripe). The first ``stripe_levels`` levels are made stripe by stripe
    from the stripe's own columns of each level (and, on odd widths, the column before the join that the
    stripe before kept); the rest, if any, are made by ``finish`` from the last of those, read back in
    whole-width block rows. Memory: less than two block rows of each streamed level of one stripe (an 8192 px
    stripe: about 11 MB; on an odd width one more copy of the block row coming in), a kept column per level
    (4 bytes x its height, twice), the columns of the tiles a join cuts (less than 1 KB per row of a level:
    about 1 KB x the output's height in all: the five levels of an 8192² output in 1792 px stripes, 5 MB), then one
    whole-width block row of the last streamed level and less than two of each later one (about 100 bytes x
    the output's width, from level 5 on): never a whole level.
    """

    def __init__(self, dataset, write, stripes=None):
        self.write = write
        width, height = dataset.RasterXSize, dataset.RasterYSize
        band = dataset.GetRasterBand(1)
        overviews = [band.GetOverview(i) for i in range(band.GetOverviewCount())]
        self.sizes = [(width, height)] + [(o.XSize, o.YSize) for o in overviews]
        self.datasets = [o.GetDataset() for o in overviews]
        self.stripes = list(stripes or [(0, width)])
        joins = [x0 for x0, _ in self.stripes[1:]]
        if self.stripes[0][0] != 0 or self.stripes[-1][1] != width or any(
            a[1] != b[0] for a, b in zip(self.stripes, self.stripes[1:])
        ):
            raise ValueError(f"overview stripes {self.stripes} do not cover columns 0-{width} side by side")
        self.streamed = stripe_levels(len(overviews), joins)
        if overviews and not self.streamed:
            raise ValueError(f"no overview level can be made stripe by stripe with stripes joining at {joins}")
        self.axes = [self._axes(level) for level in range(1, len(self.sizes))]
        for level in range(1, self.streamed + 1):  # GDAL's level sizes halve, rounded up: windows end in the stripe
            xs = self.axes[level - 1][0]
            if any(xs.last[(x >> level) - 1] > x >> (level - 1) for x in joins):  # not an assert (Bandit B101)
                raise ValueError(f"overview level {level}'s windows cross the stripe joins {joins} forwards")
        # The streamed levels' tiles that a join cuts wait here for the next stripe (none where the joins are
        # whole tiles of the level).
        self.seams = [
            _Seams(self.datasets[level - 1], self.sizes[level][0], write)
            if any(x % (BLOCK << level) for x in joins) else None
            for level in range(1, self.streamed + 1)
        ]
        self.current, self.chain = -1, None
        self.tail = None  # the levels after the streamed ones, once ``finish`` makes them

    def _axes(self, level):
        (w0, h0), (w1, h1) = self.sizes[level - 1], self.sizes[level]
        return _Axis(w0, w1), _Axis(h0, h1)

    def _stripe_chain(self, index):
        x0, x1 = self.stripes[index]
        last = x1 == self.sizes[0][0]
        before = self.chain.levels if self.chain is not None else [None] * self.streamed
        levels = []
        for level, previous in zip(range(1, self.streamed + 1), before):
            xs, ys = self.axes[level - 1]
            d0 = x0 >> level  # joins fall on columns of every streamed level: exact
            d1 = self.sizes[level][0] if last else x1 >> level
            # Source columns of the stripe before that the first window needs (0 or 1: a window of an odd width
            # reaches at most one column back; none reaches past the stripe's end, checked in __init__).
            reach = (x0 >> (level - 1)) - int(xs.first[d0])
            carry = np.concatenate(previous.kept, axis=1) if reach else None
            if reach and carry.shape[2] != reach:  # not an assert (Bandit B101)
                raise RuntimeError(f"overview level {level}: {carry.shape[2]} columns kept, {reach} needed")
            keep = 0 if last else (x1 >> (level - 1)) - int(xs.first[x1 >> level])
            levels.append(_Level(self.datasets[level - 1], xs.part(d0, d1), ys, d0, carry, keep))
        return _Chain(levels, self.sizes[0][1], self.write, self.seams)

    def add(self, x0, y0, planes):
        """Full-resolution rows of the stripe at column ``x0`` from row ``y0``: the stripe's whole width, the
        rows in order, the stripes one after the other."""
        if self.chain is None or (self.chain.finished() and self.current + 1 < len(self.stripes)
                                  and x0 == self.stripes[self.current + 1][0]):
            self.current += 1
            self.chain = self._stripe_chain(self.current)  # from the columns the one before kept
        sx0, sx1 = self.stripes[self.current]
        if (x0, planes.shape[2]) != (sx0, sx1 - sx0):  # not an assert (Bandit B101)
            raise RuntimeError(f"overview rows of columns {x0}-{x0 + planes.shape[2]} arrive out of order: "
                               f"expected stripe {sx0}-{sx1}")
        self.chain.add(y0, planes)

    def _stripes_done(self) -> bool:
        return (self.current == len(self.stripes) - 1 and self.chain.finished()
                and not any(seams.waiting for seams in self.seams if seams is not None))

    def finish(self, read, progress=None):
        """The levels not made stripe by stripe, from the last one that was, read back by ``read(dataset, y0,
        rows)`` -> (4, rows, width) uint8 in whole-width block rows; ``progress(fraction)`` after each (it may
        raise to stop)."""
        if not self._stripes_done():  # not an assert (Bandit B101)
            raise RuntimeError("streamed overviews are incomplete: rows are missing")
        if self.finished():
            return
        source = self.datasets[self.streamed - 1]
        height = self.sizes[self.streamed][1]
        rest = range(self.streamed + 1, len(self.sizes))
        self.tail = _Chain([_Level(self.datasets[level - 1], *self.axes[level - 1]) for level in rest], height,
                           self.write)
        for y0 in range(0, height, BLOCK):
            self.tail.add(y0, read(source, y0, min(BLOCK, height - y0)))
            if progress:
                progress(min(1.0, (y0 + BLOCK) / height))

    def finished(self) -> bool:
        """Every row of every stripe went into the levels, and the levels made after the stripes are done."""
        if self.chain is None or not self._stripes_done():
            return False
        return self.streamed == len(self.datasets) or (self.tail is not None and self.tail.finished())
