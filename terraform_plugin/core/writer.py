"""The output GeoTIFF: RGBA Byte, tiled 256, ZSTD (DEFLATE without it), internal overviews, the input's CRS, written atomically.

The raster is written to a hidden temporary file beside the target and moved into place (os.replace) only when
complete, so a cancelled or failed run never leaves a half-written file where the user expects a result, and
an earlier result at that path survives until the new one is whole.

Nothing is committed that was not written whole: every write, flush and the close (where GDAL writes the
file's directories) is checked, the file is read back (every overview level), and a failure - a full disk
above all, which GDAL reports only as error messages - removes the temporary and says so, the earlier file
untouched.

CRS: GeoTIFF keys cannot hold every CRS. GDAL 3.6 drops IAU authority codes (Mars IAU_2015:49900/49910) and
turns a WKT2 or axis-ordered custom WKT into its own GEOGCS on the way through the keys. So after closing the
file the CRS is read back; when it differs from the input's WKT, the exact WKT goes into the PAM sidecar
(``.aux.xml``), which GDAL (and so QGIS) prefers on reading, and the sidecar moves with the file.
"""

import contextlib
import os

import numpy as np
from osgeo import gdal

from . import guard
from .blockrows import BLOCK
from .errors import OutputError
from .gdalcall import close_dataset, discard_dataset, gdal_call
from .overviews import OverviewStream, stripe_levels



def _compression() -> tuple:
    """ZSTD level 1 with the horizontal predictor where this GDAL has it, else DEFLATE level 1.

    Measured on the bundled model's 4096² output (bench/README.md): ZSTD 1 + predictor writes it in 0.13 s of
    CPU against 0.58 s for DEFLATE 1 + predictor, and is smaller (35.5 vs 37.3 MB; DEFLATE 6: 36.8 MB, 0.98 s);
    reading it back (overviews, QGIS) is faster too. GDAL has read ZSTD GeoTIFFs since 2.3, and the GDAL of
    every QGIS 3 distribution is built with it. DEFLATE stays as the fallback for a GDAL without it.
    """
    options = gdal.GetDriverByName("GTiff").GetMetadataItem("DMD_CREATIONOPTIONLIST") or ""
    if "ZSTD" in options:
        return ("COMPRESS=ZSTD", "ZSTD_LEVEL=1", "PREDICTOR=2")
    return ("COMPRESS=DEFLATE", "ZLEVEL=1", "PREDICTOR=2")


CREATION_OPTIONS = (
    "TILED=YES",
    f"BLOCKXSIZE={BLOCK}",
    f"BLOCKYSIZE={BLOCK}",
    *_compression(),  # PREDICTOR=2 (horizontal differencing): imagery compresses noticeably better, losslessly
    "BIGTIFF=IF_SAFER",
    "PHOTOMETRIC=RGB",
    "ALPHA=NON-PREMULTIPLIED",
    "INTERLEAVE=PIXEL",
)
BLOCK_CACHE_CAP_BYTES = 64 * 2**20  # GDAL's block cache while a whole raster is read through it
MIN_OVERVIEW_SIDE = 256  # stop building overviews once the smaller side fits in one tile


def _sidecar(path):
    return path + ".aux.xml"


def _remove(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def temp_name(path, suffix) -> str:
    """A hidden, unique name beside ``path`` (same folder, so os.replace is an atomic rename)."""
    return guard.temp_name(path, suffix)  # names that say whose temp it is: a later run removes a killed one's


def check_output_path(path) -> str:
    """Absolute output path, or OutputError saying why it cannot be written. Cheap: call it before any work."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    if os.path.isdir(path):
        raise OutputError(f"cannot write {path}: the output path is a folder, not a file")
    if not os.path.isdir(folder):
        raise OutputError(f"cannot write {path}: the output folder does not exist ({folder})")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: the output folder is not writable ({folder})")
    if os.path.exists(path) and not os.access(path, os.W_OK):
        raise OutputError(f"cannot write {path}: the output file exists and is read-only")
    return path


@contextlib.contextmanager
def capped_block_cache():
    """GDAL's block cache held to ``BLOCK_CACHE_CAP_BYTES`` for the duration (blocks beyond it are dropped).
    A pass that reads a whole raster once (the overviews, the assembly of a run's parts) would otherwise keep
    up to the cache's limit of it, 5 % of RAM: the whole raster when it fits."""
    previous = gdal.GetCacheMax()
    gdal.SetCacheMax(min(previous, BLOCK_CACHE_CAP_BYTES))
    try:
        yield
    finally:
        gdal.SetCacheMax(previous)


def overview_levels(width: int, height: int) -> list:
    levels, factor = [], 2
    while min(width, height) / (factor // 2) > MIN_OVERVIEW_SIDE:
        levels.append(factor)
        factor *= 2
    return levels


class OutputWriter:
    """RGBA GeoTIFF on ``grid``, written in whole 256-row block rows to a temporary file; ``commit`` moves it in.

    Use as a context manager: leaving the block with an exception removes the temporary file(s).

    ``stream_overviews``: the caller writes the rows in column stripes [(x0, x1), ...] (True: one, the whole
    width), one stripe after the other, each in whole block rows top to bottom, and passes each block row to
    ``add_to_overviews`` as well; the overview levels are then built from them as they come (``core.overviews``:
    the same pixels as GDAL's AVERAGE pass) and ``build_overviews`` only makes the small levels that could not
    be made stripe by stripe, from the last one that was, instead of reading the whole image back. Where no
    level can be made stripe by stripe (a join at an odd column), ``streams_overviews`` is False: the caller
    skips ``add_to_overviews`` and ``build_overviews`` runs GDAL's pass.
    """

    def __init__(self, path, grid, metadata: dict, stream_overviews=False):
        self.path = check_output_path(path)
        self.grid = grid
        folder = os.path.dirname(self.path)
        # GDAL creates the file (mkstemp would make it 0600; results should get the user's usual permissions).
        self.temp_path = temp_name(self.path, ".part.tif")
        self._extra_temps = []
        self._lock = None  # a flock on the temp while this writer lives
        self.dataset = None
        self._overview_count = 0  # levels the file holds, checked when it is read back
        try:
            self.dataset = self._gdal(
                f"cannot create the output GeoTIFF in {folder}", gdal.GetDriverByName("GTiff").Create,
                self.temp_path, grid.width, grid.height, 4, gdal.GDT_Byte, list(CREATION_OPTIONS),
            )
        except OutputError:
            self.dataset = None
            self.abort()
            raise
        self._lock = guard.TempLock(self.temp_path)  # marks the temp live: other runs' cleanup leaves it
        self.dataset.SetGeoTransform(grid.geotransform)
        self.dataset.SetProjection(grid.wkt)
        for i, interp in enumerate((gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand, gdal.GCI_AlphaBand)):
            self.dataset.GetRasterBand(i + 1).SetColorInterpretation(interp)
        self.dataset.SetMetadata({str(k): str(v) for k, v in metadata.items()})
        self._stream = None
        levels = overview_levels(grid.width, grid.height)
        stripes = [(0, grid.width)] if stream_overviews is True else list(stream_overviews or ())
        if stripes and levels and stripe_levels(len(levels), [x0 for x0, _ in stripes[1:]]):
            try:
                # Empty levels now ("NONE" computes nothing); add_to_overviews fills them.
                self._gdal(
                    f"cannot create overviews in {self.temp_path}", self.dataset.BuildOverviews,
                    "NONE", levels, status=True,
                )
                self._overview_count = len(levels)
                self._stream = OverviewStream(self.dataset, self._write_level, stripes)
            except BaseException:  # the caller's ``with`` has not begun: nothing else would remove the temp file
                self.abort()
                raise

    @property
    def streams_overviews(self) -> bool:
        return self._stream is not None

    def _gdal(self, what, fn, *args, **kwargs):
        """``gdal_call`` raising OutputError, which says so when the disk is full."""
        try:
            return gdal_call(OutputError, what, fn, *args, **kwargs)
        except OutputError as exc:
            error = self._explained(exc)
        del fn, args, kwargs  # as in gdal_call: the traceback must not keep the dataset open
        raise error

    def _explained(self, exc):
        """``exc``, or the error that says the disk beside the output is full, when it is (asked while the
        temporary still takes its space)."""
        return guard.disk_full_error(self.path, str(exc)) or exc

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            self.abort()
        return False

    def write(self, x0: int, y0: int, rgba: np.ndarray):
        """Write (h, w, 4) uint8 at (x0, y0) and flush, so the finished tiles are compressed and leave memory.

        Callers pass whole block rows (y0 and h multiples of 256, or reaching the bottom edge) and columns
        aligned the same way, so each tile is compressed exactly once.
        """
        h, w, _ = rgba.shape
        self._write(x0, y0, w, h, np.ascontiguousarray(rgba, dtype=np.uint8), 4, 4 * w, 1)

    def write_planes(self, x0: int, y0: int, planes: np.ndarray):
        """``write`` for band-first (4, h, w) uint8: GDAL interleaves the pixels as it writes them."""
        _, h, w = planes.shape
        self._write(x0, y0, w, h, np.ascontiguousarray(planes, dtype=np.uint8), 1, w, w * h)

    def _write(self, x0, y0, w, h, data, pixel_space, line_space, band_space, level=None):
        """Write to the output, or to ``level``, one of its overviews. No local name holds the output's
        dataset: a failure's traceback keeps this frame, and the dataset must close when ``abort`` drops it."""
        what = f"cannot write to {self.temp_path}"
        self._gdal(  # the array itself: GDAL reads its buffer, no copy
            what, (level or self.dataset).WriteRaster,
            x0, y0, w, h, data, w, h, gdal.GDT_Byte, [1, 2, 3, 4], pixel_space, line_space, band_space,
            status=True,
        )
        # Blocks stay in GDAL's cache (up to 5 % of RAM) until flushed: flush to keep memory flat.
        self._gdal(what, (level or self.dataset).FlushCache, status=True)

    def add_to_overviews(self, x0: int, y0: int, planes: np.ndarray):
        """Average the block row just written (band first (4, h, w): its stripe's whole width) into the overviews."""
        self._stream.add(x0, y0, planes)

    def _write_level(self, dataset, x0, y0, planes):
        _, h, w = planes.shape
        self._write(x0, y0, w, h, np.ascontiguousarray(planes), 1, w, w * h, level=dataset)

    def _read_level(self, dataset, y0, rows):
        return self._gdal(f"cannot read the overviews back from {self.temp_path}", dataset.ReadAsArray,
                          0, y0, dataset.RasterXSize, rows)

    def build_overviews(self, progress=None):
        """Internal AVERAGE overviews (alpha-aware for RGBA) so large outputs pan smoothly in QGIS; when they
        were streamed, only the levels left after the stripes (small) and the check that every row went in.
        ``progress(fraction)`` returning False cancels (OutputError)."""
        if self._stream is not None:

            def tick(fraction):
                if progress and progress(fraction) is False:
                    raise OutputError(f"overviews of {self.temp_path} cancelled")

            with capped_block_cache():
                self._stream.finish(self._read_level, tick)
            if not self._stream.finished():  # not an assert (Bandit B101)
                raise RuntimeError("streamed overviews are incomplete: rows are missing")
            tick(1.0)
            return
        levels = overview_levels(self.grid.width, self.grid.height)
        if not levels:
            return
        callback = (lambda fraction, *_: 0 if progress(fraction) is False else 1) if progress else None
        self._gdal(f"cannot write to {self.temp_path}", self.dataset.FlushCache, status=True)
        # Overview building reads the whole image back through GDAL's block cache: measured +360 MB on an
        # 8192² output without the cap; the image is read in row chunks, so the cap costs no speed.
        with capped_block_cache():
            self._gdal(
                f"cannot build overviews in {self.temp_path}", self.dataset.BuildOverviews,
                "AVERAGE", levels, callback, status=True,
            )
        self._overview_count = len(levels)

    def close(self):
        """Close the temporary file, checked, and read it back; put the exact input CRS in its sidecar when
        GeoTIFF keys altered it. OutputError (the temporary left for ``abort``) when any of it failed."""
        if self.dataset is None:
            return
        self._gdal(f"cannot write to {self.temp_path}", self.dataset.FlushCache, status=True)
        self._stream = None  # done with: its levels are the output's, closed with it
        self._close([self.dataset], f"cannot finish writing {self.temp_path}")  # _close drops self.dataset
        check = self._gdal("the written output cannot be reopened", gdal.Open, self.temp_path)
        # Each overview level is a directory of its own, read only when asked for: ask, so that one GDAL could
        # not write shows here and not when QGIS opens the result.
        band = self._gdal("the written output cannot be read back", check.GetRasterBand, 1)
        levels = self._gdal("the written output cannot be read back", band.GetOverviewCount)
        band = None
        if levels != self._overview_count or gdal.GetLastErrorType() >= gdal.CE_Failure:
            check = None
            raise self._explained(OutputError(
                f"the written output {self.temp_path} is incomplete: {levels} of {self._overview_count} overview "
                f"levels read back ({gdal.GetLastErrorMsg() or 'GDAL gave no reason'})"))
        sidecar = None
        if check.GetProjection() != self.grid.wkt:
            sidecar = _sidecar(self.temp_path)
            self._extra_temps.append(sidecar)
            check.SetProjection(self.grid.wkt)  # read-only dataset: GDAL puts it in the .aux.xml (PAM)
        holder, check = [check], None
        self._close(holder, f"cannot write the CRS sidecar of {self.temp_path}" if sidecar else
                    f"cannot close {self.temp_path} after reading it back")
        if sidecar and not self._carries_crs():  # PAM only warns when it cannot save (an empty file)
            raise self._explained(OutputError(f"cannot write the CRS sidecar {sidecar}: GDAL did not save it"))

    def _carries_crs(self) -> bool:
        """Whether the temporary, read again, has the grid's CRS (from its sidecar)."""
        from osgeo import osr

        check = self._gdal("the written output cannot be reopened", gdal.Open, self.temp_path)
        if check.GetProjection() == self.grid.wkt:
            return True
        srs = check.GetSpatialRef()  # GDAL hands a WKT2 CRS back as WKT1: the same CRS, other words
        return srs is not None and bool(srs.IsSame(osr.SpatialReference(wkt=self.grid.wkt)))

    def _close(self, holder, what):
        self.dataset = None
        try:
            close_dataset(OutputError, what, holder)
        except OutputError as exc:
            raise self._explained(exc) from None

    def commit(self, extra=()):
        """Close and move the output (with its sidecar, and ``extra`` (temp, final) pairs) into place, only
        once all of it was written; on failure the temporary files go and the earlier result stays."""
        try:
            self.close()
            for temp, final in extra:
                os.replace(temp, final)
            # A stale sidecar from an earlier result would override the new file's CRS: replace or remove it.
            if os.path.exists(_sidecar(self.temp_path)):
                os.replace(_sidecar(self.temp_path), _sidecar(self.path))
            else:
                _remove(_sidecar(self.path))
            os.replace(self.temp_path, self.path)
        except OSError as exc:
            error = OutputError(f"cannot move the output into place at {self.path}: {exc.strerror}")
            error = self._explained(error)
            self.abort()
            raise error from None
        except BaseException:
            self.abort()
            raise
        self.temp_path = None
        self._release_lock()

    def _release_lock(self):
        if getattr(self, "_lock", None) is not None:
            self._lock.release()
            self._lock = None

    def abort(self):
        """Close and delete the temporary output and its sidecar; the target path is left untouched."""
        self._stream = None  # its overview levels belong to the dataset closed here
        holder, self.dataset = [getattr(self, "dataset", None)], None
        if holder[0] is not None:
            discard_dataset(holder)  # quietly: what closing could not write goes with the file
        if getattr(self, "temp_path", None):
            for path in (self.temp_path, _sidecar(self.temp_path), *self._extra_temps):
                _remove(path)
            self.temp_path = None
        self._release_lock()
