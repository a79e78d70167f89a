"""A run in parts: each column stripe of the plan into its own GeoTIFF, a manifest of the finished parts, and
one output assembled from them. No Dask here: any runner (``terraform_plugin.cluster`` puts the parts on a Dask
cluster) calls ``compute_part`` for each stripe and ``assemble`` once at the end.

Why stripes: the chip layout is global and a stripe is computed from the plan alone (``pipeline.write_mosaic``
on a plan of that one stripe - the single-machine code, not a copy), so a part does not depend on where or in
which order it ran and the assembled mosaic is the single-process one, bit for bit with the same stripe width.

Files: the parts live in a hidden folder beside the output (``.<name>.parts/``), each written atomically (a
temporary name, renamed when complete), with ``manifest.json`` recording each finished part's size and SHA-256
under a fingerprint of everything that decides its pixels. A rerun after a crash keeps the parts that are
recorded and still verify, and computes only the rest; the folder goes when the output is committed.
"""

import dataclasses
import hashlib
import json
import os
import shutil
import time
from html import escape  # XML-safe (&, <, >, quotes); xml.sax would trip the upload scan (Bandit B406)

from osgeo import gdal

from . import guard, pipeline
from .errors import Cancelled, OutputError
from .gdalcall import gdal_call
from .grid import Grid
from .profile import StageClock
from .version import VERSION
from .writer import BLOCK, OutputWriter, capped_block_cache, temp_name

MANIFEST = "manifest.json"
ASSEMBLY_COLUMNS = 8192  # px per window copied from the parts into the output: 8 MB of RGBA per block row;
# a multiple of 256 x 2^5, so that overview levels 1-5 are streamed stripe by stripe with no tile cut by a join
# (overviews.stripe_levels, _Seams)


def parts_dir(output_path) -> str:
    """The hidden folder beside the output that holds its parts while a run is in progress."""
    folder, name = os.path.split(os.path.abspath(os.fspath(output_path)))
    return os.path.join(folder, f".{name}.parts")


def part_name(index: int) -> str:
    return f"part-{index:05d}.tif"


def part_grid(plan, stripe) -> Grid:
    """The grid of one stripe's part: the plan's grid cut to columns [stripe.x0, stripe.x1)."""
    gt = plan.grid.geotransform
    return Grid(stripe.x1 - stripe.x0, plan.grid.height, (gt[0] + stripe.x0 * gt[1], *gt[1:]), plan.grid.wkt)


def part_chips(plan, stripe) -> int:
    return len(plan.layout.ys) * len(stripe.columns)


def fingerprint(plan, metadata: dict) -> str:
    """SHA-256 of everything that decides the parts' pixels: input file (path, size, mtime), request (with the
    non-physical elevation limit), grid, stripes, vertical scale used, model file hash, the guide (its name and
    its file's hash: not its path, which for a rendered web layer is a new temporary file each run) and plugin
    version (all in ``metadata``)."""
    request = plan.request
    path = os.path.abspath(os.fspath(request.input_path))
    try:
        stat = os.stat(path)
        input_id = [path, stat.st_size, stat.st_mtime_ns]
    except OSError:  # not a plain file (a GDAL connection string, /vsi...): its name is all there is
        input_id = [os.fspath(request.input_path)]
    keys = ("band", "overlap", "nodata_mode", "resolution_m", "sea_level", "batch_size", "stripe_width",
            "max_abs_elevation", "latitude", "look", "tile_size", "guide_strength")
    state = {
        "input": input_id,
        "request": {k: getattr(request, k) for k in keys},
        "vertical_scale": repr(float(plan.relief.vertical_scale)),
        "grid": [plan.grid.width, plan.grid.height, list(plan.grid.geotransform), plan.grid.wkt],
        "stripes": [[s.x0, s.x1] for s in plan.stripes],
        "model_sha256": metadata.get("TERRAFORM_MODEL_SHA256"),
        "guide": [metadata.get("TERRAFORM_GUIDE"), metadata.get("TERRAFORM_GUIDE_SHA256")],
        "version": VERSION,
    }
    return hashlib.sha256(json.dumps(state, sort_keys=True, default=repr).encode()).hexdigest()


class _PartOutput:
    """The writer ``pipeline.write_mosaic`` writes to, on a part whose column 0 is the stripe's x0: each write
    method (``write``, ``write_planes``: first argument the grid column) passes through with x0 shifted."""

    def __init__(self, writer, x0):
        self.writer, self.x0 = writer, x0

    def __getattr__(self, name):
        method = getattr(self.writer, name)
        return lambda x0, *args, **kwargs: method(x0 - self.x0, *args, **kwargs)


def compute_part(plan, index: int, folder: str, model, on_batch=None) -> dict:
    """Compute stripe ``index`` of ``plan`` into ``folder``/part-NNNNN.tif (atomically); return its record:
    index, file, x0, x1, size, sha256, chips, seconds, profile."""
    started, clock = time.monotonic(), StageClock()
    stripe = plan.stripes[index]
    path = os.path.join(folder, part_name(index))
    dataset, _ = pipeline.open_input(plan.request)
    source = pipeline.resampled_source(plan, dataset)
    one = dataclasses.replace(plan, stripes=(stripe,))
    with OutputWriter(path, part_grid(plan, stripe), {}) as out:
        pipeline.write_mosaic(one, source, model, _PartOutput(out, stripe.x0), on_batch or (lambda _: None), clock)
        out.commit()
    return {
        "index": index,
        "file": part_name(index),
        "x0": stripe.x0,
        "x1": stripe.x1,
        "size": os.path.getsize(path),
        "sha256": pipeline.file_sha256(path),
        "chips": part_chips(plan, stripe),
        "seconds": round(time.monotonic() - started, 3),
        "profile": clock.as_dict(),
    }


class Manifest:
    """``manifest.json`` in a parts folder: the fingerprint and the record of every finished part."""

    def __init__(self, folder: str, fingerprint: str):
        self.folder, self.fingerprint = folder, fingerprint
        self.parts = {}  # index -> record

    @classmethod
    def open(cls, folder: str, fingerprint: str, log=None):
        """The folder's manifest, keeping only parts that are recorded and still verify (size + SHA-256).

        A folder left by a run with a different fingerprint (another input, model or setting) is emptied.
        Creates the folder when missing.
        """
        log = log or (lambda _: None)
        manifest = cls(folder, fingerprint)
        path = os.path.join(folder, MANIFEST)
        if os.path.isdir(folder):
            try:
                with open(path) as f:
                    saved = json.load(f)
            except (OSError, ValueError):
                saved = {}
            if saved.get("fingerprint") != fingerprint:
                if saved or os.listdir(folder):
                    log(f"Discarding the parts in {folder}: they were made by a run with other settings or data")
                shutil.rmtree(folder)
            else:
                for record in saved.get("parts", {}).values():
                    if manifest._verified(record):
                        manifest.parts[int(record["index"])] = record
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create the parts folder {folder}: {exc.strerror}") from None
        manifest.save()
        return manifest

    def _verified(self, record) -> bool:
        path = os.path.join(self.folder, os.path.basename(record.get("file", "")))
        try:
            return os.path.getsize(path) == record["size"] and pipeline.file_sha256(path) == record["sha256"]
        except (OSError, KeyError):
            return False

    def record(self, record: dict):
        self.parts[int(record["index"])] = record
        self.save()

    def save(self):
        """Atomically (a temporary file renamed over the old one): a crash leaves the old or the new one."""
        path = os.path.join(self.folder, MANIFEST)
        temp = temp_name(path, ".tmp")
        parts = {str(i): r for i, r in sorted(self.parts.items())}
        try:
            with open(temp, "w") as f:
                json.dump({"fingerprint": self.fingerprint, "version": VERSION, "parts": parts}, f, indent=1)
            os.replace(temp, path)
        except OSError as exc:  # a full disk above all: an OutputError that says so, not a traceback
            if os.path.exists(temp):
                os.remove(temp)
            reason = f"cannot save {path}: {exc.strerror or exc}"
            raise guard.disk_full_error(path, reason) or OutputError(reason) from None


def parts_vrt(plan, files) -> str:
    """VRT XML of the parts side by side, plain sources: gdal.BuildVRT would composite through the parts'
    alpha (``UseMaskBand``) and blank the RGB of transparent pixels, which the local output keeps."""
    grid = plan.grid
    bands = []
    for b, colour in enumerate(("Red", "Green", "Blue", "Alpha"), start=1):
        sources = "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="0">{escape(path)}</SourceFilename>'
            f"<SourceBand>{b}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{s.x1 - s.x0}" ySize="{grid.height}"/>'
            f'<DstRect xOff="{s.x0}" yOff="0" xSize="{s.x1 - s.x0}" ySize="{grid.height}"/></SimpleSource>'
            for path, s in zip(files, plan.stripes)
        )
        bands.append(f'<VRTRasterBand dataType="Byte" band="{b}"><ColorInterp>{colour}</ColorInterp>{sources}'
                     "</VRTRasterBand>")
    return f'<VRTDataset rasterXSize="{grid.width}" rasterYSize="{grid.height}">{"".join(bands)}</VRTDataset>'


def assemble(plan, model, folder: str, metadata: dict, progress=None, cancelled=None, clock=None) -> str:
    """One GeoTIFF at ``plan.output_path`` from the parts in ``folder``: a VRT of the parts copied window by
    window (whole 256 px blocks, ``ASSEMBLY_COLUMNS`` wide, stripe after stripe) into the same writer a local
    run uses, the overviews streamed from the windows as a local run streams them from its stripes, then the
    same metadata, CRS sidecar, preview and atomic commit. Memory: one window, the overview levels' block rows
    of one stripe, and GDAL's block cache held to ``writer.BLOCK_CACHE_CAP_BYTES``, whatever the size.
    Removes ``folder`` once the output is in place. ``progress(fraction)``; ``cancelled()`` polled per window.
    """
    clock = clock or StageClock()
    progress = progress or (lambda _: None)
    cancelled = cancelled or (lambda: False)
    grid = plan.grid
    files = [os.path.join(folder, part_name(i)) for i in range(len(plan.stripes))]
    missing = [f for f in files if not os.path.isfile(f)]
    if missing:
        raise OutputError(f"cannot assemble {plan.output_path}: {len(missing)} part(s) missing, e.g. {missing[0]}")
    vrt_path = os.path.join(folder, "parts.vrt")
    with open(vrt_path, "w") as f:
        f.write(parts_vrt(plan, files))
    vrt = gdal_call(OutputError, f"cannot open the VRT of the parts in {folder}", gdal.Open, vrt_path)
    if (vrt.RasterXSize, vrt.RasterYSize) != (grid.width, grid.height):
        raise OutputError(f"the parts in {folder} cover {vrt.RasterXSize} x {vrt.RasterYSize} px, not the grid's "
                          f"{grid.width} x {grid.height}")
    dataset, _ = pipeline.open_input(plan.request)
    source = pipeline.resampled_source(plan, dataset)  # for the preview
    # Column stripes of ASSEMBLY_COLUMNS, one after the other, each top to bottom, as a local run writes its own
    # stripes: the overviews are streamed from the windows as they are copied (levels 1-5 stripe by stripe, the
    # smaller ones after the last stripe) instead of GDAL's pass reading the whole output back.
    stripes = [(x0, min(grid.width, x0 + ASSEMBLY_COLUMNS)) for x0 in range(0, grid.width, ASSEMBLY_COLUMNS)]
    windows = [(x0, x1, y0) for x0, x1 in stripes for y0 in range(0, grid.height, BLOCK)]
    with OutputWriter(plan.output_path, grid, metadata, stripes) as out:
        with capped_block_cache():  # else the parts' blocks stay cached as they are read
            for k, (x0, x1, y0) in enumerate(windows):
                if cancelled():
                    raise Cancelled("cancelled; no output was written")
                with clock.stage("write"):
                    h = min(BLOCK, grid.height - y0)
                    data = gdal_call(OutputError, f"cannot read the parts in {folder}", vrt.ReadAsArray,
                                     x0, y0, x1 - x0, h)
                    out.write_planes(x0, y0, data)  # (4, h, w), as the mosaic hands them over
                if out.streams_overviews:
                    with clock.stage("overviews"):
                        out.add_to_overviews(x0, y0, data)
                progress(0.5 * (k + 1) / len(windows))
        vrt = None
        with clock.stage("overviews"):
            pipeline.build_overviews(out, lambda f: progress(0.5 + 0.45 * f), cancelled)
        pipeline._commit(out, plan, source, clock)  # noqa: SLF001 (the local run's commit: output + preview)
    progress(1.0)
    shutil.rmtree(folder, ignore_errors=True)
    return plan.output_path
