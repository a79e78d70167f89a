"""Checks that stop a run from destroying data or starting absurd work, all cheap and run before any long work.

- Paths: the output and the preview may not be the input (or each other) however the path is spelled:
  relative, ``./``, ``..``, a symlink or a hard link (``os.path.samefile`` compares device and inode); nor any
  other file the input reads (a VRT's sources, VRTs of VRTs, overviews, masks, sidecars: GDAL's file list).
- Grid size: a mistyped resolution (0.1 m instead of 100 m) asks for hundreds of billions of pixels; refused up
  front with the grid, the enlargement against the input's own pixels and the resolutions that fit, unless
  the caller opts in to a deliberately huge grid. What TIFF cannot hold is refused even then.
- Disk space: free space beside the output against the estimated size of the result.
- Temporary files: named per target, writer and host (``.<name>.tdem-<host>-<pid>-<random>.part.tif``), the
  writer holding an exclusive ``flock`` on its file for its whole life. A later run removes the ones whose
  writer is gone (a killed run's), never one whose writer still runs.
- Elevations: values no planet has (|z| above a limit, 1e5 m by default: Olympus Mons is 2.2e4 m, the
  Mariana Trench -1.1e4 m) are fill values or garbage; the engine treats them as no-data and says how many.

Imports no ``qgis``: the algorithm and the engine both call these.
"""

import errno
import fcntl
import hashlib
import math
import os
import re
import shutil
import socket
import uuid

import numpy as np

from .errors import InputError, OutputError
from .sampling import decimated_strips, read_strip

# Above this many output pixels a run needs the explicit opt-in (ALLOW_HUGE_GRID / allow_huge_grid): 2^30 px is
# 32768 x 32768, about 29,000 chips (tens of minutes on a laptop CPU) and ~2.8 GB of GeoTIFF. Legitimate runs
# reach it only on purpose (a global Mars mosaic at the model's 200 m); mistyped resolutions pass it by orders
# of magnitude.
MAX_GRID_PIXELS = 2**30
# GDAL's GTiff driver refuses files whose tile index (offset + size, 8 bytes each in BigTIFF) exceeds 2 GB:
# no opt-in can make such a grid writable.
TIFF_MAX_TILES = 2**31 // 16
TILE = 256
# Measured: real satellite imagery (a 3072² crop of the seed mosaic) stored RGBA with DEFLATE level 1,
# predictor 2 and internal overviews takes 0.65 of its raw RGBA size, 2.6 bytes per pixel. The writer now uses
# ZSTD level 1 where GDAL has it, about 5 % smaller (bench/README.md), so this stays an upper bound.
ESTIMATED_BYTES_PER_PIXEL = 2.6
# The margin over the estimate, sized to the job (a fixed 64 MiB refused a 3 x 3 px output on a disk with 2 MiB
# free): a share of the estimate for its error, the tile index (16 bytes a tile in BigTIFF, overviews included),
# the directories and CRS sidecar (a few KiB each), and the preview PNG (the same imagery losslessly compressed:
# the same bytes per pixel; its two panels are 1024 px on the longer side at most, so 5.4 MB at most) when one
# is asked for.
DISK_MARGIN_SHARE = 0.1
DISK_MARGIN_FIXED_BYTES = 64 * 2**10
TILE_INDEX_BYTES = 16
# A write that fails with less than this free beside it failed for want of space (a tile is at most 256 KiB
# compressed, GDAL writes several at once, and the filesystem keeps some blocks back).
DISK_FULL_BYTES = 4 * 2**20

DEFAULT_MAX_ABS_ELEVATION = 1e5  # metres (layer units): beyond any planet's relief
SCAN_FULL_PIXELS = 4_000_000  # rasters up to this size are scanned whole (an exact count), larger ones sampled
SCAN_SIDE = 1024  # sample side for larger rasters (GDAL reads it from overviews when the file has them)

# A short tag of this machine in temp names (stale ones from other hosts are left alone); sha256, as the
# upload scan refuses sha1 (Bandit B324) whatever it is used for.
_HOST = hashlib.sha256(socket.gethostname().encode()).hexdigest()[:6]
_TEMP_RE = re.compile(r"^tdem-(?P<host>[0-9a-f]{6})-(?P<pid>\d+)-[0-9a-f]{8}(?P<suffix>\..+)$")


# -- paths ---------------------------------------------------------------------------------------------------


def same_file(a, b) -> bool:
    """Whether two paths name the same file: spelled alike after resolving links, or one inode (hard link)."""
    a, b = os.fspath(a), os.fspath(b)
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet): then they are not the same existing file
        return False


def _file_keys(path) -> list:
    """What ``same_file`` compares: the path with links resolved and, for an existing file, its inode."""
    keys = [os.path.realpath(path)]
    try:
        stat = os.stat(path)
        keys.append((stat.st_dev, stat.st_ino))
    except OSError:
        pass
    return keys


def _sidecar_of(path):
    return os.fspath(path) + ".aux.xml"


MAX_VRT_DEPTH = 32  # VRTs of VRTs followed this deep at most (a VRT that names itself ends there too)


def _is_vrt(path) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(64).lstrip().startswith(b"<VRTDataset")
    except OSError:
        return False


def files_read_by(input_path) -> list:
    """Every file GDAL reads for the raster at ``input_path`` beside the path itself: its file list (a VRT's
    sources, overviews, masks, sidecars), and the lists of the VRTs among them, recursively (GDAL lists a VRT's
    own sources, not theirs). Empty when GDAL cannot open it (``source.open_dem`` says why, later)."""
    from osgeo import gdal

    seen, files, todo = set(), {}, [(os.fspath(input_path), 0)]  # files: a dict keeps GDAL's order
    while todo:
        path, depth = todo.pop()
        if path in seen or depth > MAX_VRT_DEPTH:
            continue
        seen.add(path)
        gdal.PushErrorHandler("CPLQuietErrorHandler")
        try:
            dataset = gdal.OpenEx(path, gdal.OF_RASTER | gdal.OF_READONLY)
            listed = (dataset.GetFileList() or []) if dataset is not None else []
        except RuntimeError:  # GDAL's exceptions on: not a raster it opens
            listed = []
        finally:
            gdal.PopErrorHandler()
        dataset = None
        for name in listed:
            if name.startswith("/vsi") or name in files:
                continue
            files[name] = None
            if name != path and _is_vrt(name):
                todo.append((name, depth + 1))
    own = set(_file_keys(input_path))
    return [f for f in files if own.isdisjoint(_file_keys(f))]


def check_paths(input_path, output_path, preview_path=None):
    """OutputError when the output or the preview would overwrite the input or a file it reads, or each other;
    or the preview is not a .png. Call before anything is opened for writing."""
    input_path, output_path = os.fspath(input_path), os.fspath(output_path)
    if not input_path.startswith("/vsi"):
        if same_file(output_path, input_path):
            raise OutputError(
                f"the output {output_path} is the input elevation raster {input_path} (same file): writing it "
                "would destroy the DEM. Choose another output file."
            )
        if same_file(_sidecar_of(output_path), input_path):
            raise OutputError(f"the output's sidecar {_sidecar_of(output_path)} is the input {input_path}")
    preview_path = os.fspath(preview_path) if preview_path else None
    if preview_path and not input_path.startswith("/vsi") and same_file(preview_path, input_path):
        raise OutputError(
            f"the preview {preview_path} is the input elevation raster {input_path} (same file): writing it "
            "would destroy the DEM. Choose another preview file."
        )
    _check_not_read(input_path, output_path, preview_path)
    if not preview_path:
        return
    if same_file(preview_path, output_path):
        raise OutputError(
            f"the preview and the output are the same file ({output_path}): one would overwrite the other. "
            "Give the preview its own .png name."
        )
    if os.path.splitext(preview_path)[1].lower() != ".png":
        raise OutputError(f"the preview is a PNG image: give it a .png name, not {preview_path}")


def _check_not_read(input_path, output_path, preview_path):
    """OutputError when the output (or its sidecar) or the preview is a file the input reads."""
    written = [("output", output_path), ("output's sidecar", _sidecar_of(output_path))]
    if preview_path:
        written.append(("preview", preview_path))
    if not any(os.path.exists(path) for _, path in written):
        return  # a new file cannot be one the input reads: skip opening the input
    # same_file's two tests, the written paths' side worked out once (a mosaic VRT lists thousands of files)
    written_keys = {key: (what, path) for what, path in written for key in _file_keys(path)}
    for read in files_read_by(input_path):
        match = next((written_keys[key] for key in _file_keys(read) if key in written_keys), None)
        if match:
            what, path = match
            spelled = "" if os.path.abspath(path) == os.path.abspath(read) else f", as {read}"
            raise OutputError(
                f"the {what} {path} is a file the input {input_path} reads (GDAL lists it among the input's "
                f"files{spelled}): writing it would destroy the DEM. Choose another "
                f"{'preview' if what == 'preview' else 'output'} file."
            )


# -- grid size and disk space ----------------------------------------------------------------------------------


def _pixels(count) -> str:
    for limit, unit in ((1e12, "terapixels"), (1e9, "gigapixels"), (1e6, "megapixels")):
        if count >= limit:
            return f"{count / limit:.3g} {unit}"
    return f"{count:,} pixels"


def _bytes(count) -> str:
    for limit, unit in ((2**40, "TiB"), (2**30, "GiB"), (2**20, "MiB"), (2**10, "KiB")):
        if count >= limit:
            return f"{count / limit:.3g} {unit}"
    return f"{count} bytes"


def enlargement(grid, dataset) -> float:
    """Output pixels per input pixel (area ratio): > 1 when the grid is finer than the input's own pixels."""
    return grid.width * grid.height / max(1, dataset.RasterXSize * dataset.RasterYSize)


def resolution_for(grid, resolution_m, pixels) -> float:
    """The resolution (metres) at which the same extent needs at most ``pixels`` pixels, rounded up."""
    needed = resolution_m * math.sqrt(grid.width * grid.height / pixels)
    step = 10.0 ** (math.floor(math.log10(needed)) - 1)
    return math.ceil(needed / step * 1.0001) * step


def check_grid_size(grid, dataset, resolution_m, allow_huge=False):
    """OutputError for a grid beyond MAX_GRID_PIXELS (unless ``allow_huge``) or beyond what TIFF can hold."""
    pixels = grid.width * grid.height
    factor = enlargement(grid, dataset)
    side = math.sqrt(factor)
    per_side = f"{side:,.0f}" if side >= 10 else f"{side:.2g}"
    grown = (
        f"{per_side} × {per_side} output pixels for each of the input's {dataset.RasterXSize} × "
        f"{dataset.RasterYSize} pixels" if side >= 1 else f"{1 / side:.3g} × fewer pixels per side than the input"
    )
    what = f"at {resolution_m:g} m per pixel the output would be {grid.width} × {grid.height} px ({_pixels(pixels)}; {grown})"
    tiles = math.ceil(grid.width / TILE) * math.ceil(grid.height / TILE)
    if tiles > TIFF_MAX_TILES:
        raise OutputError(
            f"{what}: more 256 px tiles than a GeoTIFF can index. Use a resolution of at least "
            f"{resolution_for(grid, resolution_m, TIFF_MAX_TILES * TILE * TILE):g} m."
        )
    if pixels > MAX_GRID_PIXELS and not allow_huge:
        raise OutputError(
            f"{what}. That is beyond {_pixels(MAX_GRID_PIXELS)}, so probably a mistyped resolution; runs up to that "
            f"size need a resolution of at least {resolution_for(grid, resolution_m, MAX_GRID_PIXELS):g} m "
            "(empty = the model's own). For a deliberately huge run, opt in with ALLOW_HUGE_GRID "
            "(Advanced parameters: \"Allow a huge output grid\")."
        )


def estimated_output_bytes(grid) -> int:
    return int(grid.width * grid.height * ESTIMATED_BYTES_PER_PIXEL)


def disk_margin_bytes(grid, to_write, preview=True) -> int:
    """Bytes beyond the estimate (``to_write``: the estimated bytes the job still writes) that the job may
    need, with a preview or without: see DISK_MARGIN_SHARE."""
    from .preview import GAP, panel_size  # here: preview imports guard

    tiles = math.ceil(grid.width / TILE) * math.ceil(grid.height / TILE)
    width, height = panel_size(grid.width, grid.height)
    png = int(ESTIMATED_BYTES_PER_PIXEL * height * (2 * width + GAP)) if preview else 0
    return int(DISK_MARGIN_SHARE * to_write) + TILE_INDEX_BYTES * tiles * 4 // 3 + DISK_MARGIN_FIXED_BYTES + png


def check_disk_space(output_path, grid, copies=1, present=0, preview=True):
    """OutputError when the output's folder has less free space than the estimated result needs.

    ``preview``: whether a preview PNG is written too (beside the output, as a rule).
    ``copies``: how many output-sized files exist at once (2 for a distributed run: its parts and the assembled
    output, until the assembly ends); ``present``: bytes of those already on the disk (a resumed run's parts).
    """
    folder = os.path.dirname(os.path.abspath(os.fspath(output_path)))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # unknown (a network folder that does not say): the writer reports a full disk itself
    to_write = max(0, copies * estimated_output_bytes(grid) - present)
    margin = disk_margin_bytes(grid, to_write, preview)
    needed = to_write + margin
    if free < needed:
        held = ""
        if copies > 1:
            done = f", less {_bytes(present)} of parts already done" if present else ""
            held = (" (the parts and the assembled output exist together until the assembly ends: twice the "
                    f"output{done})")
        raise OutputError(
            f"not enough free space in {folder}: the {grid.width} × {grid.height} px output needs about "
            f"{_bytes(needed)}{held}: {_bytes(to_write)} estimated at {ESTIMATED_BYTES_PER_PIXEL} bytes per pixel "
            f"(compressed, with overviews) and a margin of {_bytes(margin)} for the estimate's error, the file's "
            f"index and sidecar{' and the preview' if preview else ''}. {_bytes(free)} are free. Free some space, choose another folder or "
            "a coarser resolution."
        )


def free_bytes(folder):
    """Free bytes on the filesystem holding ``folder``; None when it does not say."""
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def mount_point(path) -> str:
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def disk_full_error(path, reason):
    """The OutputError that says the disk holding ``path`` is full, when a failure to write it (``reason``:
    GDAL's or the system's words) came from a full disk; else None. Ask while the failed write's temporary
    still takes its space: GDAL often says only "write error", so a folder with almost no space left is taken
    as the reason."""
    path = os.path.abspath(os.fspath(path))
    folder = os.path.dirname(path)
    free = free_bytes(folder)
    if "no space left" not in reason.lower() and (free is None or free >= DISK_FULL_BYTES):
        return None
    left = f"{_bytes(free)} free" if free is not None else "no space left"
    kept = ("the file already there is kept as it was" if os.path.exists(path)
            else "nothing is left there")
    return OutputError(
        f"the disk is full: {path} could not be written (the disk holding {folder}, mounted at "
        f"{mount_point(folder)}, has {left}); {kept}. Free some space or choose an output folder on another disk, "
        f"then run again. ({reason})"
    )


# -- temporary files -------------------------------------------------------------------------------------------


def temp_name(path, suffix) -> str:
    """A hidden name beside ``path`` that says whose it is: ``.<name>.tdem-<host>-<pid>-<random><suffix>``."""
    folder, name = os.path.split(os.fspath(path))
    return os.path.join(folder, f".{name}.tdem-{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}{suffix}")


class TempLock:
    """An exclusive flock held on a temporary file for as long as its writer lives (the kernel drops it when
    the process dies, however it dies)."""

    def __init__(self, path):
        self.fd = os.open(path, os.O_RDONLY)
        fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)

    def release(self):
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM  # exists, owned by someone else
    return True


def _locked(path) -> bool:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        return True
    finally:
        os.close(fd)  # closing drops the probe's own lock
    return False


def stale_temps(path) -> list:
    """This target's temporary files whose writer is gone: same host, process dead, no lock held on them."""
    folder, name = os.path.split(os.path.abspath(os.fspath(path)))
    prefix = f".{name}."
    try:
        entries = os.listdir(folder)
    except OSError:
        return []
    stale = []
    for entry in entries:
        if not entry.startswith(prefix):
            continue
        match = _TEMP_RE.match(entry[len(prefix):])
        if not match or match["host"] != _HOST:  # another machine's run (a shared folder): not ours to judge
            continue
        full = os.path.join(folder, entry)
        if _pid_alive(int(match["pid"])) or _locked(full):
            continue
        stale.append(full)
    return sorted(stale)


def remove_stale_temps(path, log=None) -> list:
    """Remove the temporary files that killed runs left beside ``path``; returns what was removed."""
    removed = []
    for stale in stale_temps(path):
        try:
            size = os.path.getsize(stale)
            os.remove(stale)
        except OSError:
            continue
        removed.append(stale)
        if log:
            log(f"Removed {os.path.basename(stale)} ({_bytes(size)}), left by an earlier run that was killed")
    return removed


# -- elevations ------------------------------------------------------------------------------------------------


def check_elevation_limit(limit) -> float:
    if isinstance(limit, bool) or not isinstance(limit, (int, float)) or not (math.isfinite(limit) and limit > 0):
        raise InputError(
            f"the non-physical elevation limit must be a positive number (greater than 0, in the layer's elevation "
            f"units), got {limit!r}"
        )
    return float(limit)


def non_physical(z, limit):
    """Boolean mask of finite-or-infinite values beyond ±limit (NaN is no-data already, not counted)."""
    with np.errstate(invalid="ignore"):
        return np.abs(z) > limit


def scan_elevations(band, limit, reopen=None) -> tuple:
    """(non-physical count, valid count, exact) over the band: read whole up to SCAN_FULL_PIXELS, else a
    SCAN_SIDE² decimated (nearest) sample. Nodata (value, NaN, mask) is not counted at all.

    ``reopen``: a callable giving (dataset, band), the same band through another dataset handle; the lower half
    of the strips is then scanned through it in a second thread. The reads are mostly decompression, in GDAL,
    outside the GIL: the scan takes half the time where a core is free (it runs before the model starts).
    Memory: one strip of source blocks per thread (``sampling.decimated_strips``), whatever the raster's size.
    """
    from osgeo import gdal

    width, height = band.XSize, band.YSize
    exact = width * height <= SCAN_FULL_PIXELS
    scale = 1.0 if exact else max(width, height) / SCAN_SIDE
    buf_w, buf_h = max(1, int(width / scale)), max(1, int(height / scale))
    nodata = band.GetNoDataValue()
    has_mask = not band.GetMaskFlags() & (gdal.GMF_ALL_VALID | gdal.GMF_NODATA)
    strips = decimated_strips(band, buf_h, parts=1 if reopen is None else 2)

    def scan(band, strips):
        bad = valid_count = 0
        for strip in strips:
            z = read_strip(band, strip, buf_w)
            if z is None:
                return None  # unreadable: the run itself reports it
            z = z.astype(np.float64, copy=False)
            valid = ~np.isnan(z)
            if nodata is not None and not math.isnan(nodata):
                valid &= z != nodata
            if has_mask:
                mask = read_strip(band.GetMaskBand(), strip, buf_w)
                if mask is not None:
                    valid &= mask > 0
            bad += int(np.count_nonzero(non_physical(z[valid], limit)))
            valid_count += int(np.count_nonzero(valid))
        return bad, valid_count

    half = (len(strips) + 1) // 2
    if reopen is None or len(strips) < 2:
        counts = [scan(band, strips)]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(1, thread_name_prefix="terraform-scan") as pool:
            def lower_half():
                dataset, other = reopen()  # the dataset must outlive its band
                try:
                    return scan(other, strips[half:])
                finally:
                    other = dataset = None

            lower = pool.submit(lower_half)
            counts = [scan(band, strips[:half]), lower.result()]
    if any(c is None for c in counts):
        return 0, 0, False
    return sum(c[0] for c in counts), sum(c[1] for c in counts), exact


def report_non_physical(band, limit, name, log, reopen=None) -> int:
    """Log how many elevations are beyond ±limit (they become no-data); InputError when all of them are.
    ``reopen``: see ``scan_elevations``."""
    bad, valid, exact = scan_elevations(band, limit, reopen)
    if not bad:
        return 0
    share = f"{bad:,} of {valid:,} pixels" if exact else f"about {bad / valid:.2%} of the pixels ({bad:,} of a {valid:,} pixel sample)"
    if bad == valid:
        raise InputError(
            f"{name} has no physical elevations: every {'' if exact else 'sampled '}value is beyond ±{limit:g} "
            "(a fill value declared as data?). Set the band's no-data value, or raise the elevation limit "
            "(MAX_ABS_ELEVATION) if these really are elevations in small units."
        )
    log(f"{share} of {name} have non-physical elevations (|z| > {limit:g}): treated as no-data "
        "(with their resampled neighbours); set the band's no-data value to silence this")
    return bad


def check_georeferencing(dataset, name):
    """InputError for a raster placed only by ground control points: no geotransform, so no pixel size."""
    if dataset.GetGeoTransform(can_return_null=True) is None and dataset.GetGCPCount() > 0:
        raise InputError(
            f"{name} is georeferenced only by {dataset.GetGCPCount()} ground control points (GCPs), with no "
            "geotransform, so it has no regular pixel grid to terraform. Warp it onto one first: "
            f"gdalwarp -r bilinear {name} {os.path.splitext(name)[0]}_warped.tif "
            "(QGIS: Raster › Projections › Warp (Reproject)), then run on the warped file."
        )
