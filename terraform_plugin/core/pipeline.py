"""The run, as a recipe: check -> plan -> read -> colourise -> infer -> blend (or keep tile
centres, held to the guide) -> write -> overviews -> commit.

Each step is its own module: ``request`` (what is asked, checked once), ``plan`` (what every stage shares),
``chiprows`` (read, fill, colourise, scale, cut into batches), ``mosaic`` (infer, blend into finished rows),
``blockrows`` (finished rows -> whole TIFF block rows, in the mosaic's blender thread), ``writer`` (GeoTIFF,
atomic), ``workers`` (the reader thread ahead of the model, the blender and writer threads behind it),
``profile`` (per-stage counters, always on).

One stripe on its own - what a distributed runner needs - is::

    rows = read_chip_rows(plan, source, stripe, clock)
    for x0, y0, planes in stripe_blocks(plan, stripe, rows, model, on_batch, clock): ...
"""

import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from . import guard
from . import preview as preview_png
from . import source as dem_source
from .chiprows import read_chip_rows
from .errors import Cancelled, OutputError
from .mosaic import blend_stripe
from .plan import (  # noqa: F401 (plan_stripes: part of this module's interface)
    Plan, check_elevations, make_plan, plan_grid, plan_stripes, scale_metadata,
)
from .profile import StageClock
from .request import NODATA_MODES, STRIPE_WIDTH, TerraformRequest, check_request  # noqa: F401
from .version import VERSION
from .workers import Ahead, Behind
from .writer import OutputWriter

INFERENCE_SHARE = 90.0  # percent of the progress bar for the chips; overviews and preview get the rest
ETA_EVERY_S = 30.0


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
    chip_runs: int = 0  # chips the model ran: ``chips`` plus the columns computed again at stripe joins
    profile: dict = field(default_factory=dict)  # per stage: cpu_s, wall_s, visits (profile.StageClock)


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
    started, clock = time.monotonic(), StageClock()
    log = log or _noop
    plan, dataset, band, model = start(request, log, model)
    output_path = plan.output_path
    # The reader starts on the first chip rows (through its own handle on the DEM) while this thread checks the
    # elevations and creates the output, so that the model's first batch is ready sooner.
    source = resampled_source(plan, dem_source.open_dem(request.input_path))
    with read_ahead(plan, source, clock) as reader:
        check_elevations(request, band, log)
        dataset.FlushCache()  # the sampled passes leave source blocks in GDAL's cache; none are needed now
        for line in plan.describe(dataset):
            log(line)
        ticker = _Progress(plan.chip_runs, progress or _noop, log, cancelled or (lambda: False),
                           "chips" if plan.layout.blend else "tiles")
        # The stripes are written one after the other, each in block rows top to bottom: the overviews are
        # built from that stream (all levels, or those a stripe's columns make; the writer says which).
        stripes = [(stripe.x0, stripe.x1) for stripe in plan.stripes]
        with OutputWriter(output_path, plan.grid, output_metadata(plan, model), stripes) as out:
            write_mosaic(plan, source, model, out, ticker.chips, clock, overviews=out.streams_overviews, reader=reader)
            ticker.done()
            with clock.stage("overviews"):
                _overviews(out, ticker)
            _commit(out, plan, source, clock)
    elapsed = time.monotonic() - started
    ticker.progress(100.0)
    log(f"Done in {_duration(elapsed)}: {output_path}")
    return result_of(plan, model, request, elapsed, chip_runs=plan.chip_runs, profile=clock.as_dict())


def start(request: TerraformRequest, log, model=None, model_threads=None):
    """(plan, dataset, band, model): the start every run shares, the local one and the Dask one - the request
    checked, what killed runs left removed, the input opened and checked, a typed resolution's grid checked
    (size, disk space) before the model loads, the model loaded (unless given; ``model_threads``: its
    onnxruntime threads, else the request's), the plan made. The elevations' scan (``check_elevations``) is left
    to the caller."""
    output_path = check_request(request)  # before any long work
    remove_stale_temps(request, output_path, log)
    dataset, band = open_input(request)
    grid = plan_grid(request, output_path, dataset, float(request.resolution_m)) if request.resolution_m else None
    model = model or load_model(dataclasses.replace(request, threads=model_threads) if model_threads else request)
    log(f"Model: {model.describe()}")
    return make_plan(request, output_path, dataset, band, model, log, grid), dataset, band, model


def remove_stale_temps(request, output_path, log):
    """What killed runs left beside the output and the preview: temporaries whose writer is gone
    (``guard.remove_stale_temps``: a killed run cannot clean up after itself)."""
    for target in filter(None, (output_path, request.preview_path)):
        guard.remove_stale_temps(target, log)


def open_input(request):
    """(dataset, band) of the request's DEM, checked to be on a pixel grid (not GCPs only) and to hold some
    valid elevation."""
    dataset = dem_source.open_dem(request.input_path)
    band = dem_source.elevation_band(dataset, request.band)
    name = os.path.basename(os.fspath(request.input_path))
    guard.check_georeferencing(dataset, name)
    dem_source.check_has_data(band, name)
    return dataset, band


def resampled_source(plan: Plan, dataset):
    """The DEM on the plan's grid, values beyond the request's non-physical limit read as no-data: the one
    source of a local run, of each part of a distributed one and of its assembly's preview."""
    request = plan.request
    return dem_source.ResampledSource(dataset, request.band, plan.grid, max_abs_elevation=request.max_abs_elevation)


def load_model(request):
    from .model import TerraformModel  # imports onnxruntime: only once the input is known to be usable

    return TerraformModel(request.model_path, threads=request.threads)


def stripe_blocks(plan: Plan, stripe, chip_rows, model, on_batch, clock: StageClock):
    """Whole block rows (x0, y0, planes: (4, rows, width) uint8 RGBA) of one stripe from its chip rows: infer, blend,
    regroup (the mosaic's blender thread regroups them, ``blockrows.BlockRows``)."""
    return ((stripe.x0, y0, planes) for y0, planes in blend_stripe(plan, stripe, chip_rows, model, on_batch, clock))


def read_ahead(plan: Plan, source, clock: StageClock) -> Ahead:
    """The reader thread, started: every stripe's chip rows from ``source``, read and colourised ahead of the
    model. A context manager (leaving it stops the thread)."""
    return Ahead(
        chip_row for stripe in plan.stripes for chip_row in read_chip_rows(plan, source, stripe, clock)
    )


def write_mosaic(plan: Plan, source, model, out, on_batch, clock: StageClock, overviews=False, reader=None):
    """Every stripe into ``out``: the reader thread works ahead of the model, the writer thread behind it;
    ``overviews``: each block row also goes into ``out``'s streamed overviews (``OutputWriter.add_to_overviews``);
    ``reader``: a ``read_ahead`` of ``source`` already started (closed here), else one is started here."""

    def write(block):
        with clock.stage("write"):
            out.write_planes(*block)
        if overviews:
            with clock.stage("overviews"):
                out.add_to_overviews(*block)

    with reader or read_ahead(plan, source, clock) as chip_rows, Behind(write) as writer:
        for stripe in plan.stripes:
            for block in stripe_blocks(plan, stripe, chip_rows, model, on_batch, clock):
                with clock.stage("wait_writer"):
                    writer.put(block)
        writer.finish()


def file_sha256(path) -> str:
    """SHA-256 of a file, read in 1 MiB blocks (the output metadata's model hash, the parts' manifest)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def output_metadata(plan: Plan, model) -> dict:
    """GeoTIFF metadata tags: everything needed to trace a result and run it again."""
    request, meta = plan.request, model.metadata
    return {
        "TERRAFORM_PLUGIN_VERSION": VERSION,
        "TERRAFORM_MODEL": meta.name,
        "TERRAFORM_MODEL_VERSION": meta.version,
        "TERRAFORM_MODEL_FILE": os.path.basename(model.path),
        "TERRAFORM_MODEL_SHA256": file_sha256(model.path),
        "TERRAFORM_INPUT": os.path.basename(os.fspath(request.input_path)),
        "TERRAFORM_BAND": request.band,
        "TERRAFORM_SEA_LEVEL": repr(float(plan.relief.sea_level)),
        "TERRAFORM_VERTICAL_SCALE": repr(float(plan.relief.vertical_scale)),
        "TERRAFORM_FIT_TO_EARTH": "yes" if request.fit_to_earth else "no",
        "TERRAFORM_RESOLUTION_M": repr(float(plan.resolution_m)),
        "TERRAFORM_OVERLAP": plan.layout.overlap,
        "TERRAFORM_NODATA_MODE": request.nodata_mode,
        **scale_metadata(plan.grid),
        **_tiling_metadata(plan),
        **_guide_metadata(plan),
    }


def _tiling_metadata(plan: Plan) -> dict:
    """A tiling-independent model's tiles and conditioning: tile, margin, look, latitude source and span."""
    layout = plan.layout
    if layout.blend:
        return {"TERRAFORM_TILE": layout.tile_w}
    tags = {
        "TERRAFORM_TILE": f"{layout.tile_w}" if layout.tile_w == layout.tile_h else f"{layout.tile_w}x{layout.tile_h}",
        "TERRAFORM_MARGIN": layout.margin,
    }
    names = {"look": "TERRAFORM_LOOK", "latitude": "TERRAFORM_LATITUDE", "latitude_deg": "TERRAFORM_LATITUDE_DEG",
             "latitude_range_deg": "TERRAFORM_LATITUDE_RANGE_DEG"}
    summary = plan.conditioning.summary if plan.conditioning is not None else {}
    tags.update({names[k]: v for k, v in summary.items() if k in names})
    return tags


def _guide_metadata(plan: Plan) -> dict:
    """The colour guide: its name (a file's, or its source string), its cells, and the SHA-256 of the file the
    engine read (for a web layer the plugin rendered, that rendering). "none" for a guided model run without."""
    summary = plan.conditioning.summary if plan.conditioning is not None else {}
    if "guide" not in summary:
        return {}
    tags = {"TERRAFORM_GUIDE": summary["guide"]}
    if "guide_coarse_px" in summary:
        tags["TERRAFORM_GUIDE_COARSE_PX"] = summary["guide_coarse_px"]
    if summary["guide"] != "none":
        tags["TERRAFORM_GUIDE_STRENGTH"] = repr(float(plan.request.guide_strength))
    path = plan.request.guide_path
    if path is not None and os.path.isfile(os.fspath(path)):
        tags["TERRAFORM_GUIDE_SHA256"] = file_sha256(path)
    return tags


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _noop(*_):
    return None


class _Progress:
    """Progress bar, ETA log lines and the cancel poll, for ``total`` chip runs."""

    def __init__(self, total, progress, log, cancelled, noun="chips"):
        self.total, self.progress, self.log, self.cancelled = total, progress, log, cancelled
        self.noun = noun
        self.started = self.last_log = time.monotonic()
        self.count = 0

    def chips(self, count):
        """After each batch of ``count`` chips; raises Cancelled when the user cancelled."""
        self.count += count
        now = time.monotonic()
        self.progress(INFERENCE_SHARE * self.count / self.total)
        if self.count < self.total and now - self.last_log >= ETA_EVERY_S:
            self.last_log = now
            rate = self.count / (now - self.started)
            self.log(f"{self.count}/{self.total} {self.noun}, {rate:.1f} {self.noun}/s, "
                     f"ETA {_duration((self.total - self.count) / rate)}")
        if self.cancelled():
            raise Cancelled("cancelled; no output was written")

    def done(self):
        seconds = time.monotonic() - self.started
        rate = self.total / max(1e-9, seconds)
        self.log(f"{self.total}/{self.total} {self.noun} in {_duration(seconds)} ({rate:.1f} {self.noun}/s)")


def _overviews(out, ticker):
    build_overviews(out, lambda f: ticker.progress(INFERENCE_SHARE + (99.0 - INFERENCE_SHARE) * f), ticker.cancelled)


def build_overviews(out, on_fraction, cancelled):
    """The output's overviews, reporting 0-1 to ``on_fraction``; Cancelled (nothing written) once ``cancelled()``."""
    flag = {"cancelled": False}

    def on_progress(fraction):
        on_fraction(fraction)
        flag["cancelled"] = flag["cancelled"] or cancelled()
        return not flag["cancelled"]

    try:
        out.build_overviews(on_progress)
    except OutputError:
        if flag["cancelled"]:
            raise Cancelled("cancelled; no output was written") from None
        raise
    if flag["cancelled"]:
        raise Cancelled("cancelled; no output was written")


def result_of(plan, model, request, elapsed, result_type=None, **extra):
    """What a run returns (the local run's TerraformResult, or a subclass such as the Dask run's)."""
    return (result_type or TerraformResult)(
        output_path=plan.output_path,
        width=plan.grid.width,
        height=plan.grid.height,
        chips=plan.layout.count,
        vertical_scale=float(plan.relief.vertical_scale),
        resolution_m=plan.resolution_m,
        model_name=model.name,
        provider=model.provider,
        elapsed_s=elapsed,
        preview_path=os.path.abspath(os.fspath(request.preview_path)) if request.preview_path else None,
        **extra,
    )


def _commit(out, plan, source, clock):
    """Move the output (and the preview, when asked) into place; no temporary file survives a failure."""
    preview_path = plan.request.preview_path
    if not preview_path:
        out.commit()
        return
    out.close()
    with clock.stage("preview"):
        temp = _preview(out.temp_path, source, plan)
    try:
        out.commit([(temp, os.path.abspath(os.fspath(preview_path)))])
    finally:
        if os.path.exists(temp):
            os.remove(temp)


def _preview(output_temp, source, plan) -> str:
    """Before/after PNG into a temporary file; returns its path."""
    width, height = preview_png.panel_size(plan.grid.width, plan.grid.height)
    z = source.read_decimated(width, height)
    before = np.empty((height, width, 4), dtype=np.uint8)
    before[..., :3] = plan.ramp.colourise(plan.relief.ramp_elevation(z), sea=plan.relief.sea_mask(z))
    before[..., 3] = 255 if not plan.transparent else np.isfinite(z) * np.uint8(255)
    after = preview_png.read_reduced_rgba(output_temp, width, height)
    return preview_png.write_png(plan.request.preview_path, preview_png.side_by_side(before, after))
