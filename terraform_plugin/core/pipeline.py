"""The streamed run: read a window -> colourise -> infer chips in batches -> blend -> write finished rows.

Three threads with bounded queues keep the model busy: a reader resamples and colourises the next chip row
while the model runs (GDAL and onnxruntime release the GIL), and a writer compresses finished tiles behind it.

Memory does not grow with the raster: the grid is processed in column stripes at most ``stripe_width`` wide
(whole 256 px TIFF tiles), each top to bottom, holding one chip row of blend accumulators plus less than two
256-row blocks of output. The chip column that straddles a stripe join is simply computed again for the next
stripe (about 2 % more chips per 8192 px), because keeping it would mean keeping a whole column of
predictions. The chip layout is global, so the mosaic is identical with or without stripes.
"""

import hashlib
import os
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

from . import preview as preview_png
from . import source as dem_source
from .chips import DEFAULT_OVERLAP, ChipLayout, blend_weights, edge_ramp
from .errors import Cancelled, InputError, OutputError
from .grid import processing_grid
from .relief import Relief, fit_target_m, fit_vertical_scale
from .version import VERSION
from .writer import BLOCK, OutputWriter, check_output_path

NODATA_MODES = ("transparent", "ocean")
# px; about 250 MB of buffers at this width (rows read ahead, accumulator, finished rows), whatever the
# raster's size. Narrower stripes save memory but recompute one chip column more per join.
STRIPE_WIDTH = 8192
QUEUE_DEPTH = 2  # chip rows read ahead / block rows waiting to be written
# Transparent mode fills nodata from valid pixels up to this far (grid px) so the model sees a plausible
# surface next to holes; windows are read with the same margin, so neighbouring chips fill identically.
FILL_DISTANCE = 64
INFERENCE_SHARE = 90.0  # percent of the progress bar for the chips; overviews and preview get the rest
ETA_EVERY_S = 30.0
# GDAL's block cache may keep this much of the source (warped blocks shared by consecutive chip rows) before
# the reader flushes it; GDAL's default limit (5 % of RAM) would let it grow with the raster.
GDAL_CACHE_KEEP = 64 * 2**20


@dataclass
class TerraformRequest:
    input_path: str
    output_path: str  # GeoTIFF; written to a temporary file beside it, moved into place when complete
    model_path: str
    band: int = 1
    overlap: int = DEFAULT_OVERLAP  # pixels shared by neighbouring chips
    nodata_mode: str = "transparent"  # transparent: model sees a filled surface, alpha 0; ocean: nodata is sea
    resolution_m: Optional[float] = None  # ground metres per output pixel; None = the model's resolution_m
    sea_level: float = 0.0
    vertical_scale: float = 1.0
    fit_to_earth: bool = False  # choose vertical_scale from the data (overrides vertical_scale)
    preview_path: Optional[str] = None  # before/after PNG (colourised DEM | terraformed)
    batch_size: int = 8
    threads: Optional[int] = None  # onnxruntime intra-op threads; None = all cores
    stripe_width: int = STRIPE_WIDTH  # widest column stripe processed at once (multiple of 256): bounds memory


@dataclass
class TerraformResult:
    output_path: str
    width: int
    height: int
    chips: int
    vertical_scale: float  # the one used (chosen by fit_to_earth, or the request's)
    resolution_m: float
    model_name: str
    provider: str  # onnxruntime execution provider that ran
    elapsed_s: float
    preview_path: Optional[str] = None


@dataclass(frozen=True)
class Stripe:
    x0: int  # grid columns [x0, x1) this stripe writes
    x1: int
    columns: range  # chip columns it computes
    ax0: int  # grid column of its accumulator's first pixel
    width: int  # accumulator width


def plan_stripes(layout: ChipLayout, stripe_width: int) -> list:
    """Column stripes of whole tiles covering the grid, with the chip columns each needs."""
    stripes = []
    for x0 in range(0, layout.width, stripe_width):
        x1 = min(layout.width, x0 + stripe_width)
        columns = layout.columns_touching(x0, x1)
        ax0 = int(layout.xs[columns.start])
        stripes.append(Stripe(x0, x1, columns, ax0, int(layout.xs[columns.stop - 1]) + layout.tile - ax0))
    return stripes


def _check_request(request):
    if request.nodata_mode not in NODATA_MODES:
        raise InputError(f"nodata mode must be one of {', '.join(NODATA_MODES)}, got {request.nodata_mode!r}")
    if isinstance(request.batch_size, bool) or not isinstance(request.batch_size, int) or request.batch_size < 1:
        raise InputError(f"batch size must be a whole number >= 1, got {request.batch_size!r}")
    if request.resolution_m is not None and not (request.resolution_m > 0):
        raise InputError(f"resolution must be a positive number of metres, got {request.resolution_m!r}")
    width = request.stripe_width
    if isinstance(width, bool) or not isinstance(width, int) or width < BLOCK or width % BLOCK:
        raise InputError(f"stripe width must be a positive multiple of {BLOCK} pixels, got {width!r}")


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def output_metadata(request, model, relief, resolution_m) -> dict:
    """GeoTIFF metadata tags: everything needed to trace a result and run it again."""
    meta = model.metadata
    return {
        "TERRAFORM_PLUGIN_VERSION": VERSION,
        "TERRAFORM_MODEL": meta.name,
        "TERRAFORM_MODEL_VERSION": meta.version,
        "TERRAFORM_MODEL_FILE": os.path.basename(model.path),
        "TERRAFORM_MODEL_SHA256": _sha256(model.path),
        "TERRAFORM_INPUT": os.path.basename(os.fspath(request.input_path)),
        "TERRAFORM_BAND": request.band,
        "TERRAFORM_SEA_LEVEL": repr(float(relief.sea_level)),
        "TERRAFORM_VERTICAL_SCALE": repr(float(relief.vertical_scale)),
        "TERRAFORM_FIT_TO_EARTH": "yes" if request.fit_to_earth else "no",
        "TERRAFORM_RESOLUTION_M": repr(float(resolution_m)),
        "TERRAFORM_OVERLAP": request.overlap,
        "TERRAFORM_NODATA_MODE": request.nodata_mode,
    }


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


class _Worker:
    """A thread fed or drained through a bounded queue; its exception is re-raised in the caller."""

    def __init__(self, target, stop: threading.Event, name: str):
        self.queue = queue.Queue(maxsize=QUEUE_DEPTH)
        self.stop = stop
        self.error = None
        self.thread = threading.Thread(target=self._guard, args=(target,), name=name, daemon=True)

    def _guard(self, target):
        try:
            target(self)
        except BaseException as exc:  # handed to the main thread, which decides
            self.error = exc
            self.stop.set()

    def put(self, item) -> bool:
        """Blocking put that gives up (False) once the run is stopping."""
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def get(self):
        """Blocking get for the consumer; raises the producer's error, or None on stop."""
        while True:
            try:
                return self.queue.get(timeout=0.1)
            except queue.Empty:
                if self.error is not None:
                    raise self.error
                if self.stop.is_set() or not self.thread.is_alive():
                    if self.error is not None:
                        raise self.error
                    if self.queue.empty():
                        return None

    def finish(self):
        self.stop.set()
        while self.thread.is_alive():
            try:  # unblock a producer waiting on a full queue
                self.queue.get_nowait()
            except queue.Empty:
                pass
            self.thread.join(timeout=0.1)


class _RowBuffer:
    """Collects finished rows of one stripe and hands them on in whole 256-row TIFF block rows."""

    def __init__(self, x0: int, height: int, emit):
        self.x0, self.height, self.emit = x0, height, emit
        self.parts, self.start, self.rows = [], 0, 0

    def add(self, y0: int, rgba: np.ndarray):
        if y0 != self.start + self.rows:  # not an assert: plugins.qgis.org blocks those (Bandit B101)
            raise RuntimeError(f"finished rows arrive out of order: {y0} after {self.start + self.rows}")
        self.parts.append(rgba)
        self.rows += len(rgba)
        end = self.start + self.rows
        complete = end if end >= self.height else (end // BLOCK) * BLOCK
        if complete > self.start:
            rows = np.concatenate(self.parts) if len(self.parts) > 1 else self.parts[0]
            cut = complete - self.start
            self.emit(self.x0, self.start, rows[:cut])
            rest = rows[cut:]
            self.parts = [rest] if len(rest) else []
            self.start, self.rows = complete, len(rest)


class _Mosaic:
    """Runs the chips of every stripe through the model and blends them into finished rows.

    The main thread does only what must be serial with inference: copy chips into the batch, run the model,
    add the weighted predictions. Colour scaling happens once per chip row in the reader (not once per chip),
    and the weight sums are not accumulated at all: the chip weights are separable (row ramp x column ramp),
    so their sum over all chips is the outer product of two 1-D sums.
    """

    def __init__(self, source, layout, stripes, model, ramp, relief, request, report, cancelled):
        self.source, self.layout, self.stripes, self.model = source, layout, stripes, model
        self.ramp, self.relief, self.request = ramp, relief, request
        self.report, self.cancelled = report, cancelled
        self.transparent = request.nodata_mode == "transparent"
        self.ramp_1d = edge_ramp(layout.tile, layout.overlap)
        self.weights = blend_weights(layout.tile, layout.overlap)
        self.in_scale, self.in_offset = model.input_scaling
        self.out_scale, self.out_offset = model.output_scaling

    # --- reader thread -----------------------------------------------------------------------------------
    def _read_rows(self, worker):
        tile = self.layout.tile
        for stripe in self.stripes:
            previous = None  # (end row, window) of the last chip row: its bottom rows are this one's top
            for row, y0 in enumerate(self.layout.ys):
                y0, y1 = int(y0), int(y0) + tile
                if previous is not None and previous[0] > y0:
                    reused = previous[1][y0 - previous[0] :]
                    z = np.concatenate([reused, self.source.read(stripe.ax0, previous[0], stripe.width, y1 - previous[0])])
                else:
                    z = self.source.read(stripe.ax0, y0, stripe.width, tile)
                previous = (y1, z)
                valid = np.isfinite(z)
                if self.transparent and not valid.all():
                    # Fill from a window FILL_DISTANCE wider on every side, so that neighbouring chip rows and
                    # stripes see the same filled surface where they overlap.
                    m = FILL_DISTANCE
                    wide = self.source.read(stripe.ax0 - m, y0 - m, stripe.width + 2 * m, tile + 2 * m)
                    z = dem_source.fill_nodata(wide, m)[m : m + tile, m : m + stripe.width]
                self.source.release_cache(keep_bytes=GDAL_CACHE_KEEP)
                rgb = self.ramp.colourise(self.relief.ramp_elevation(z), sea=self.relief.sea_mask(z))
                # Channel-first, in the model's input range: what the chips are cut from.
                x = rgb.transpose(2, 0, 1).astype(np.float32)
                x *= self.in_scale
                x += self.in_offset
                if not worker.put((stripe, row, x, valid if self.transparent else None)):
                    return

    # --- main thread -------------------------------------------------------------------------------------
    def run(self, write):
        """Blend every stripe; ``write(x0, y0, rgba)`` receives whole block rows. Raises Cancelled."""
        stop = threading.Event()
        reader = _Worker(self._read_rows, stop, "terraform-reader")
        reader.thread.start()
        try:
            for stripe in self.stripes:
                self._blend_stripe(stripe, reader, write)
        finally:
            reader.finish()

    def _column_weight_sum(self, stripe):
        total = np.zeros(stripe.width, dtype=np.float64)
        for c in stripe.columns:
            o = int(self.layout.xs[c]) - stripe.ax0
            total[o : o + self.layout.tile] += self.ramp_1d
        return total

    def _blend_stripe(self, stripe, reader, write):
        layout, tile, batch_size = self.layout, self.layout.tile, self.request.batch_size
        stride, overlap = layout.stride, layout.overlap
        acc = np.zeros((3, tile, stripe.width), dtype=np.float32)
        batch = np.empty((batch_size, 3, tile, tile), dtype=np.float32)
        column_sum = self._column_weight_sum(stripe)
        offsets = [int(layout.xs[c]) - stripe.ax0 for c in stripe.columns]
        rows = _RowBuffer(stripe.x0, layout.height, write)
        for row in range(len(layout.ys)):
            item = reader.get()
            if item is None:
                raise RuntimeError("the reader stopped early")
            got_stripe, got_row, x, valid = item
            if got_stripe is not stripe or got_row != row:
                raise RuntimeError(f"the reader delivered row {got_row} where row {row} was expected")
            if row:  # slide the accumulator down one stride; the overlap rows carry over
                acc[:, :overlap] = acc[:, stride:]
                acc[:, overlap:] = 0
            for b in range(0, len(offsets), batch_size):
                chunk = offsets[b : b + batch_size]
                for k, o in enumerate(chunk):
                    batch[k] = x[:, :, o : o + tile]
                predicted = self.model.run(batch[: len(chunk)])
                predicted *= self.weights
                for k, o in enumerate(chunk):
                    acc[:, :, o : o + tile] += predicted[k]
                self.report(len(chunk))
                if self.cancelled():
                    raise Cancelled("cancelled; no output was written")
            y0, y1 = layout.finished_rows(row)
            if y1 > y0:
                rows.add(y0, self._finish(acc, row, y0, y1, stripe, column_sum, valid))

    def _finish(self, acc, row, y0, y1, stripe, column_sum, valid):
        """Finished rows [y0, y1) of the stripe: weighted mean -> 0-255 -> uint8 RGBA."""
        layout = self.layout
        local = slice(y0 - int(layout.ys[row]), y1 - int(layout.ys[row]))
        cols = slice(stripe.x0 - stripe.ax0, stripe.x1 - stripe.ax0)
        row_sum = self.ramp_1d.copy()
        if row:  # the previous chip row's bottom edge overlaps this row's top
            row_sum[: layout.overlap] += self.ramp_1d[layout.stride :]
        norm = np.outer(row_sum[local], column_sum[cols]).astype(np.float32)
        norm = (self.out_scale / norm)[None]
        mean = acc[:, local, cols].copy()
        # (weighted sum / weight sum) * scale + offset, with the weight sum folded into one factor.
        mean *= norm
        mean += self.out_offset
        np.clip(mean, 0.0, 255.0, out=mean)
        np.rint(mean, out=mean)
        rgba = np.empty((y1 - y0, stripe.x1 - stripe.x0, 4), dtype=np.uint8)
        rgba[..., :3] = mean.transpose(1, 2, 0)
        rgba[..., 3] = 255 if valid is None else valid[local, cols] * np.uint8(255)
        return rgba


def _noop(*_):
    return None


def run(
    request: TerraformRequest,
    progress: Optional[Callable[[float], None]] = None,  # percent 0-100
    log: Optional[Callable[[str], None]] = None,  # one info line per call
    cancelled: Optional[Callable[[], bool]] = None,  # polled between batches
    model=None,  # an already loaded TerraformModel (batch runs reuse one session)
) -> TerraformResult:
    """Terraform one DEM. Raises TerraformError subclasses with user-facing messages; Cancelled on cancel.

    On any error or cancel nothing is left at ``output_path`` (nor a temporary file); a file already there
    from an earlier run stays as it was until the new one replaces it whole.
    """
    started = time.monotonic()
    progress, log = progress or _noop, log or _noop
    cancelled = cancelled or (lambda: False)
    _check_request(request)
    output_path = check_output_path(request.output_path)  # before any long work
    if request.preview_path:
        check_output_path(request.preview_path)

    dataset = dem_source.open_dem(request.input_path)
    band = dem_source.elevation_band(dataset, request.band)
    name = os.path.basename(os.fspath(request.input_path))
    dem_source.check_has_data(band, name)
    if model is None:
        from .model import TerraformModel  # imports onnxruntime: only once the input is known to be usable

        model = TerraformModel(request.model_path, threads=request.threads)
    log(f"Model: {model.describe()}")

    resolution_m = float(request.resolution_m or model.metadata.resolution_m)
    grid = processing_grid(dataset, resolution_m)
    layout = ChipLayout.build(grid.width, grid.height, model.tile_size, request.overlap)
    if request.fit_to_earth:
        target = fit_target_m(model.ramp)
        scale = fit_vertical_scale(band, request.sea_level, target)
        log(
            f"Vertical scale {scale:.6g} (fit to Earth: the 99th percentile of the relief above sea level "
            f"{request.sea_level:g} lands at {target:g} m)"
        )
    else:
        scale = request.vertical_scale
        log(f"Vertical scale {scale:g}, sea level {request.sea_level:g}")
    relief = Relief(request.sea_level, scale)
    dataset.FlushCache()  # the sampled passes above leave source blocks in GDAL's cache; none are needed now

    stripes = plan_stripes(layout, request.stripe_width)
    total = len(layout.ys) * sum(len(s.columns) for s in stripes)
    xres, yres = grid.pixel_size
    log(
        f"Input {name}: {dataset.RasterXSize} x {dataset.RasterYSize} px; processing grid {grid.width} x "
        f"{grid.height} px of {xres:.6g} x {yres:.6g} CRS units ({resolution_m:g} m)"
    )
    log(
        f"{layout.count} chip{'s' if layout.count != 1 else ''} of {layout.tile} px, overlap {layout.overlap} px"
        + (f", in {len(stripes)} column stripes ({total} chip runs)" if len(stripes) > 1 else "")
        + f", batches of {request.batch_size}, nodata {request.nodata_mode}"
    )

    source = dem_source.ResampledSource(dataset, request.band, grid)
    temps = []
    try:
        with OutputWriter(output_path, grid, output_metadata(request, model, relief, resolution_m)) as out:
            _infer(out, source, layout, stripes, model, relief, request, total, progress, log, cancelled)
            _overviews(out, progress, cancelled)
            extra = []
            if request.preview_path:
                out.close()
                temp = _preview(out.temp_path, source, grid, model.ramp, relief, request)
                temps.append(temp)
                extra.append((temp, os.path.abspath(os.fspath(request.preview_path))))
            out.commit(extra)
            temps.clear()
    finally:
        for temp in temps:
            if os.path.exists(temp):
                os.remove(temp)

    elapsed = time.monotonic() - started
    progress(100.0)
    log(f"Done in {_duration(elapsed)}: {output_path}")
    return TerraformResult(
        output_path=output_path,
        width=grid.width,
        height=grid.height,
        chips=layout.count,
        vertical_scale=float(scale),
        resolution_m=resolution_m,
        model_name=model.name,
        provider=model.provider,
        elapsed_s=elapsed,
        preview_path=os.path.abspath(os.fspath(request.preview_path)) if request.preview_path else None,
    )


def _infer(out, source, layout, stripes, model, relief, request, total, progress, log, cancelled):
    """The chips, blended and written, with reading and writing in their own threads."""
    started = time.monotonic()
    state = {"done": 0, "last_log": started}

    def report(count):
        state["done"] += count
        done, now = state["done"], time.monotonic()
        progress(INFERENCE_SHARE * done / total)
        if done < total and now - state["last_log"] >= ETA_EVERY_S:
            state["last_log"] = now
            rate = done / (now - started)
            log(f"{done}/{total} chips, {rate:.1f} chips/s, ETA {_duration((total - done) / rate)}")

    def write_rows(worker):
        while True:
            item = worker.get()
            if item is None:
                return
            out.write(*item)

    stop = threading.Event()
    writer = _Worker(write_rows, stop, "terraform-writer")
    writer.thread.start()

    def emit(x0, y0, rgba):
        if writer.error is not None:
            raise writer.error
        if not writer.put((x0, y0, rgba)):
            raise writer.error or OutputError("the output writer stopped")

    mosaic = _Mosaic(source, layout, stripes, model, model.ramp, relief, request, report, cancelled)
    try:
        mosaic.run(emit)
        writer.put(None)  # end of rows: the writer drains the queue, then returns
        writer.thread.join()
    finally:
        writer.finish()
    if writer.error is not None:
        raise writer.error
    rate = total / max(1e-9, time.monotonic() - started)
    log(f"{total}/{total} chips in {_duration(time.monotonic() - started)} ({rate:.1f} chips/s)")


def _overviews(out, progress, cancelled):
    flag = {"cancelled": False}

    def on_progress(fraction):
        progress(INFERENCE_SHARE + (99.0 - INFERENCE_SHARE) * fraction)
        if cancelled():
            flag["cancelled"] = True
            return False
        return True

    try:
        out.build_overviews(on_progress)
    except OutputError:
        if flag["cancelled"]:
            raise Cancelled("cancelled; no output was written") from None
        raise
    if flag["cancelled"]:
        raise Cancelled("cancelled; no output was written")


def _preview(output_temp, source, grid, ramp, relief, request) -> str:
    """Before/after PNG into a temporary file; returns its path."""
    width, height = preview_png.panel_size(grid.width, grid.height)
    z = source.read_decimated(width, height)
    before = np.empty((height, width, 4), dtype=np.uint8)
    before[..., :3] = ramp.colourise(relief.ramp_elevation(z), sea=relief.sea_mask(z))
    before[..., 3] = 255 if request.nodata_mode == "ocean" else np.isfinite(z) * np.uint8(255)
    after = preview_png.read_reduced_rgba(output_temp, width, height)
    return preview_png.write_png(request.preview_path, preview_png.side_by_side(before, after))
