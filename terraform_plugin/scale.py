"""Planet-scale runs on Dask: the plan's column stripes as Dask tasks, one GeoTIFF part each, assembled into the
output a local run would write (same pixels, overviews, metadata). The parts, manifest and assembly are
``core.parts``; this module only talks to Dask.

    python -m terraform_plugin.scale DEM.tif OUT.tif [--scheduler tcp://host:8786 | --workers N] [options]

Without ``--scheduler`` it starts a LocalCluster of worker processes on this machine (one onnxruntime session
per process, the cores shared out between them). With one it uses any running Dask scheduler; every worker
must see the input, the model and the output's folder at the same paths (a shared filesystem) and have this
plugin, onnxruntime and GDAL importable. ``dask`` is imported only here, and only when a run starts, so the
QGIS plugin works without it.
"""

import argparse
import dataclasses
import logging
import os
import pickle
import shutil
import sys
import threading
import time
import uuid
from typing import Callable, Optional

from .core import guard
from .core import parts
from .core import pipeline
from .core.errors import Cancelled, InputError, OutputError, TerraformError
from .core.plan import check_elevations
from .core.request import NODATA_MODES, TerraformRequest
from .core.writer import temp_name
from .sealed_task import sealed_call

DASK_REQUIREMENT = "dask[distributed]==2026.8.0"  # kept equal to requirements.txt by the tests
# px per part (task): 8 tiles. Narrower parts mean more tasks to spread but more chip columns computed twice
# at the joins (one per part: ~10 % at 2048 px, overlap 64); see bench/README.md. A tiling-independent model's
# parts are whole columns of its tiles (at least one: 1280-1792 px centres at the default), joined between centres.
PART_WIDTH = 2048
CONNECT_TIMEOUT_S = 10.0
WORKERS_TIMEOUT_S = 60.0  # a scheduler with no worker yet: how long to wait for the first one
POLL_S = 0.2
CANCEL_WAIT_S = 60.0  # running parts stop at their next batch; wait at most this long for them
ETA_EVERY_S = 30.0
MODEL_FILE = "terraform_generator.onnx"


class ClusterError(TerraformError):
    """The Dask cluster cannot be reached or used (scheduler down, no workers, files it cannot see)."""


@dataclasses.dataclass
class DaskResult(pipeline.TerraformResult):
    parts: int = 0
    parts_reused: int = 0  # found complete and verified from an earlier, interrupted run
    workers: int = 0
    scheduler: str = ""
    assembly_s: float = 0.0
    compute_s: float = 0.0  # wall seconds from submitting the parts to the last one back
    task_s: float = 0.0  # seconds the parts computed here spent in their tasks, summed over parts


def dask_problem() -> Optional[str]:
    """None when dask.distributed imports, else why not."""
    try:
        import distributed  # noqa: F401
    except Exception as exc:  # ImportError, or a broken install
        return f"{type(exc).__name__}: {exc}"
    return None


def dask_hint(problem: str) -> str:
    if "qgis.core" in sys.modules:  # inside QGIS: its own Python, where the plugin's installer puts Dask
        from .deps import dask_missing_message

        return dask_missing_message(problem, DASK_REQUIREMENT)
    return (
        f"Running on a Dask cluster needs dask.distributed, which this Python ({sys.executable}) cannot import "
        f"({problem}). Install it with: {sys.executable} -m pip install \"{DASK_REQUIREMENT}\" - or leave the "
        "Dask scheduler address empty to run on this machine."
    )


def bundled_model_path() -> Optional[str]:
    here = os.path.dirname(os.path.abspath(__file__))
    for folder in (os.path.join(here, "models"), os.path.join(os.path.dirname(here), "models")):
        if os.path.isfile(os.path.join(folder, MODEL_FILE)):
            return os.path.join(folder, MODEL_FILE)
    return None


# -- on the workers ---------------------------------------------------------------------------------------

_MODELS = {}  # (path, threads) -> TerraformModel: one onnxruntime session per worker process
_PLANS = {}  # plan file -> Plan: one unpickled plan per worker process and run
_PLANS_LOCK = threading.Lock()
PLAN_PREFIX = "plan-"  # plan files in the parts folder: plan-<run id>.pickle


def _worker_model(path, threads):
    from .core.model import TerraformModel

    key = (os.path.abspath(path), threads)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = TerraformModel(path, threads=threads)
    return _MODELS[key]


class _QuietUserErrors(logging.Filter):
    """Drops a worker's "Compute Failed" report (a traceback) of a part that failed with a TerraformError (a full
    disk, a bad input): the client reports the same error in the user's words, and exits with it."""

    NAMES = tuple(f"{cls.__name__}(" for cls in (TerraformError, *TerraformError.__subclasses__()))

    def filter(self, record):
        args = record.args if isinstance(record.args, tuple) else ()
        failed = str(record.msg).startswith("Compute Failed") and len(args) > 3
        return not (failed and str(args[3]).startswith(self.NAMES))


def _quiet_user_errors():
    worker_log = logging.getLogger("distributed.worker")
    if not any(isinstance(f, _QuietUserErrors) for f in worker_log.filters):
        worker_log.addFilter(_QuietUserErrors())


def _worker_plan(path):
    """The run's plan from its file in the parts folder (``_write_plan``), read once per worker process."""
    with _PLANS_LOCK:
        if path not in _PLANS:
            try:
                with open(path, "rb") as f:
                    plan = pickle.load(f)  # noqa: S301 (the client's own plan, in the run's own folder)
            except OSError as exc:
                raise ClusterError(f"this worker cannot read the run's plan {path} ({exc.strerror or exc}): the output "
                                   "folder must be on a filesystem every worker mounts at the same path") from None
            _PLANS.clear()
            _PLANS[path] = plan
        return _PLANS[path]


def _part_task(plan_path, index, folder, threads_by_host, cancel_event):
    """One part, on a worker, of the plan in ``plan_path`` (read once per worker process: a colour guide's
    coarse grid travels in it). onnxruntime threads: the request's, else this host's cores shared out between
    the worker threads on it (so two worker processes on two cores get one each, not two each). Between batches
    it looks (at most once a second) at the run's cancel event, so a cancel stops running parts too."""
    from distributed import Event, get_worker

    from .core.model import default_threads

    _quiet_user_errors()
    plan = _worker_plan(plan_path)
    threads = plan.request.threads
    if threads is None:
        worker = get_worker()
        threads = max(1, default_threads() // max(1, threads_by_host.get(worker.address.rsplit(":", 1)[0], 1)))
    event, last = Event(cancel_event), [time.monotonic()]

    def on_batch(_):
        now = time.monotonic()
        if now - last[0] >= 1.0:
            last[0] = now
            if event.is_set():
                raise Cancelled("cancelled")

    return parts.compute_part(plan, index, folder, _worker_model(plan.request.model_path, threads), on_batch)


def _unseen(paths):
    """Paths this worker cannot see (run on every worker before any task)."""
    return [p for p in paths if not os.path.exists(p)]


# -- on the client ----------------------------------------------------------------------------------------


def _threads_by_host(client) -> dict:
    counts = {}
    for address, info in client.scheduler_info(n_workers=-1)["workers"].items():
        host = address.rsplit(":", 1)[0]
        counts[host] = counts.get(host, 0) + int(info.get("nthreads", 1))
    return counts


class _Cluster:
    """A Client on ``scheduler``, or on a LocalCluster of ``workers`` processes started (and stopped) here."""

    def __init__(self, scheduler, workers, log):
        self.scheduler, self.workers, self.log = scheduler, workers, log
        self.cluster = self.client = None

    def __enter__(self):
        problem = dask_problem()
        if problem:
            raise ClusterError(dask_hint(problem))
        from distributed import Client, LocalCluster

        if self.scheduler:
            if self.workers:  # the scheduler's own workers run the job; say so rather than drop it silently
                self.log(f"--workers {self.workers} is ignored: the workers of the scheduler at {self.scheduler} run "
                         "the job (start more with `dask worker ADDRESS`)")
            try:
                self.client = Client(self.scheduler, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
            except (OSError, TimeoutError, ValueError) as exc:
                raise ClusterError(
                    f"cannot reach the Dask scheduler at {self.scheduler} within {CONNECT_TIMEOUT_S:g} s ({exc}). "
                    "Is `dask scheduler` running there, and the port open from this machine? Leave the address "
                    "empty to run here."
                ) from None
            try:
                self.client.wait_for_workers(1, timeout=WORKERS_TIMEOUT_S)
            except (OSError, TimeoutError) as exc:
                self.client.close()
                raise ClusterError(f"the Dask scheduler at {self.scheduler} has no workers ({exc}); start some "
                                   f"with `dask worker {self.scheduler}`") from None
        else:
            cores = pipeline_cores()
            n = self.workers or cores
            self.log(f"Starting a local Dask cluster: {n} worker process{'es' if n != 1 else ''}, "
                     f"{max(1, cores // n)} onnxruntime thread{'s' if cores // n > 1 else ''} each")
            self.cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster, set_as_default=False)
        return self.client

    def __exit__(self, *_):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False


def pipeline_cores() -> int:
    from .core.model import default_threads

    return default_threads()


def _bytes_in(folder) -> int:
    """Bytes of the files in ``folder`` (a resumed run's finished parts); 0 when it does not exist."""
    if not os.path.isdir(folder):
        return 0
    return sum(entry.stat().st_size for entry in os.scandir(folder) if entry.is_file())


def run_on_dask(
    request: TerraformRequest,
    scheduler: Optional[str] = None,  # tcp://host:8786; None = a LocalCluster here
    workers: Optional[int] = None,  # LocalCluster processes; None = one per core
    part_width: Optional[int] = PART_WIDTH,  # px per part; None = the request's stripe_width
    progress: Optional[Callable[[float], None]] = None,  # percent 0-100
    log: Optional[Callable[[str], None]] = None,
    cancelled: Optional[Callable[[], bool]] = None,
    on_part: Optional[Callable[[dict, int, int], None]] = None,  # (record, parts done, parts) after each part
) -> DaskResult:
    """Terraform one DEM on a Dask cluster. Same checks, errors and output as ``pipeline.run``.

    Checks the request, input and model before connecting to the cluster. On cancel (while the parts are
    computed or assembled) the cluster's tasks are cancelled and the parts removed; on any other failure (a
    part's error, the client killed, the scheduler lost) the finished parts stay in the hidden parts folder
    beside the output, and the same call resumes.
    """
    started = time.monotonic()
    log = log or (lambda _: None)
    progress = progress or (lambda _: None)
    cancelled = cancelled or (lambda: False)
    if part_width is not None:
        request = dataclasses.replace(request, stripe_width=part_width)
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise InputError(f"workers must be a whole number >= 1 (or None for one per core), got {workers!r}")
    plan, dataset, band, model = pipeline.start(request, log, model_threads=1)  # the client only reads its metadata
    check_elevations(request, band, log)
    output_path = plan.output_path
    for line in plan.describe(dataset):
        log(line)
    dataset = band = None
    metadata = pipeline.output_metadata(plan, model)
    folder = parts.parts_dir(output_path)
    # The parts and the assembled output exist together until the assembly ends: twice the output's space.
    guard.check_disk_space(output_path, plan.grid, copies=2, present=_bytes_in(folder),
                           preview=bool(request.preview_path))
    paths = [os.path.abspath(os.fspath(request.input_path)), os.path.abspath(request.model_path),
             os.path.dirname(output_path)]
    total_parts, total_chips = len(plan.stripes), plan.chip_runs
    with _Cluster(scheduler, workers, log) as client:
        unseen = {w: p for w, p in client.run(_unseen, [p for p in paths if os.path.exists(p)]).items() if p}
        if unseen:
            worker, missing = next(iter(unseen.items()))
            raise ClusterError(
                f"{len(unseen)} Dask worker(s) cannot see {', '.join(missing)} (e.g. {worker}): the input, the "
                "model and the output folder must be on a filesystem every worker mounts at the same path"
            )
        manifest = parts.Manifest.open(folder, parts.fingerprint(plan, metadata), log)
        reused = len(manifest.parts)
        todo = [i for i in range(total_parts) if i not in manifest.parts]
        n_workers = len(client.scheduler_info(n_workers=-1)["workers"])
        log(f"Dask scheduler {client.scheduler.address}: {n_workers} worker(s); {total_parts} part(s) of "
            f"{plan.request.stripe_width} px" + (f", {reused} already done (resuming)" if reused else ""))
        compute_started = time.monotonic()
        if todo:
            _compute(client, plan, folder, manifest, todo, progress, log, cancelled, on_part)
        compute_s = time.monotonic() - compute_started
        task_s = sum(manifest.parts[i]["seconds"] for i in todo)
    assembly_started = time.monotonic()
    log(f"Assembling {total_parts} part(s) into {output_path}")
    try:
        parts.assemble(plan, model, folder, metadata, progress=lambda f: progress(90.0 + 9.9 * f),
                       cancelled=cancelled)
    except Cancelled:  # a cancel leaves nothing behind, in the assembly as before it (other failures keep the parts)
        shutil.rmtree(folder, ignore_errors=True)
        raise
    elapsed = time.monotonic() - started
    assembly_s = time.monotonic() - assembly_started
    log(f"Done in {pipeline._duration(elapsed)} (assembly {pipeline._duration(assembly_s)}): {output_path}")  # noqa: SLF001
    progress(100.0)
    return pipeline.result_of(
        plan, model, request, elapsed, result_type=DaskResult,
        chip_runs=total_chips,
        parts=total_parts,
        parts_reused=reused,
        workers=n_workers,
        scheduler=scheduler or "local",
        assembly_s=assembly_s,
        compute_s=compute_s,
        task_s=task_s,
    )


def _compute(client, plan, folder, manifest, todo, progress, log, cancelled, on_part):
    """Submit the parts in ``todo``, record each as it finishes; raise on a failed part, a lost cluster or
    cancel (which cancels the tasks and removes the parts)."""
    from distributed import Event, KilledWorker

    threads_by_host = _threads_by_host(client)

    prefix = f"terraform-part-{manifest.fingerprint[:12]}"
    cancel_event = f"{prefix}-cancel"
    Event(cancel_event, client=client).clear()  # a cancelled earlier run of the same job must not stop this one
    plan_path = _write_plan(plan, folder)
    futures = {
        client.submit(*sealed_call(_part_task, plan_path, i, folder, threads_by_host, cancel_event),
                      key=f"{prefix}-{i:05d}", retries=1): i
        for i in todo
    }
    pending = set(futures)
    total, done_chips = len(plan.stripes), sum(r["chips"] for r in manifest.parts.values())
    chips_at_start, started, last_log = done_chips, time.monotonic(), time.monotonic()
    try:
        while pending:
            if cancelled():
                _cancel(client, list(pending), folder, cancel_event)
                raise Cancelled("cancelled; the cluster's tasks were cancelled and no output was written")
            finished = [f for f in pending if f.done()]
            if not finished:
                time.sleep(POLL_S)
                continue
            for future in finished:
                if cancelled():  # asked between two parts that finished together: stop before the next
                    break
                pending.discard(future)
                index = futures[future]
                if future.status == "error":
                    exc = future.exception()
                    if isinstance(exc, TerraformError):
                        raise type(exc)(f"part {index + 1}/{total}: {exc}") from None
                    if isinstance(exc, KilledWorker):
                        raise ClusterError(f"part {index + 1}/{total} brought down its worker repeatedly (out of "
                                           f"memory?): {exc}") from None
                    raise ClusterError(f"part {index + 1}/{total} failed on the cluster: {type(exc).__name__}: "
                                       f"{exc}") from None
                if future.status != "finished":
                    raise ClusterError(f"part {index + 1}/{total} was {future.status} by the cluster (scheduler "
                                       "lost or restarted?)")
                record = future.result()
                manifest.record(record)
                done_chips += record["chips"]
                progress(pipeline.INFERENCE_SHARE * done_chips / plan.chip_runs)
                if on_part:
                    on_part(record, len(manifest.parts), total)
                now = time.monotonic()
                if pending and now - last_log >= ETA_EVERY_S:
                    last_log = now
                    rate = (done_chips - chips_at_start) / (now - started)
                    eta = (plan.chip_runs - done_chips) / max(rate, 1e-9)
                    log(f"{len(manifest.parts)}/{total} parts, {rate:.1f} chips/s, ETA {pipeline._duration(eta)}")  # noqa: SLF001
    except BaseException as exc:
        if pending and not isinstance(exc, Cancelled):
            client.cancel(list(pending))
            log(f"{len(manifest.parts)} of {total} parts kept in {folder}: run the same job again to resume")
        raise
    rate = (done_chips - chips_at_start) / max(1e-9, time.monotonic() - started)
    log(f"{total}/{total} parts ({plan.chip_runs} chip runs) in {pipeline._duration(time.monotonic() - started)}, "  # noqa: SLF001
        f"{rate:.1f} chips/s")


def _write_plan(plan, folder) -> str:
    """The plan, pickled into the parts folder under a name of this run's own (earlier runs' plans removed);
    returns its path. Each worker reads it once (``_worker_plan``): sealed into every part's task instead, a
    colour guide's coarse grid (tens of MB for a continent) would travel once per part, and as a Dask future the
    parts would follow it to the one worker holding it, or fail with it when that worker is lost. The parts
    folder is one every worker sees already, and it goes with the parts."""
    for entry in os.scandir(folder):
        if entry.name.startswith(PLAN_PREFIX):
            os.remove(entry.path)
    path = os.path.join(folder, f"{PLAN_PREFIX}{uuid.uuid4().hex[:16]}.pickle")
    temp = temp_name(path, ".tmp")
    try:
        with open(temp, "wb") as f:
            pickle.dump(plan, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temp, path)
    except OSError as exc:  # a full disk above all: said so, nothing half-written left
        if os.path.exists(temp):
            os.remove(temp)
        reason = f"cannot save the run's plan in {folder}: {exc.strerror or exc}"
        raise guard.disk_full_error(path, reason) or OutputError(reason) from None
    return path


def _cancel(client, futures, folder, cancel_event):
    """Cancel ``futures``: queued ones by Dask, running ones through the cancel event (within a batch); wait
    (bounded) for the running ones to end before removing the folder, so none writes into it meanwhile."""
    from distributed import Event

    Event(cancel_event, client=client).set()
    client.cancel(futures, force=True)
    keys = {f.key for f in futures}
    deadline = time.monotonic() + CANCEL_WAIT_S
    while time.monotonic() < deadline:
        try:
            running = {k for tasks in client.processing().values() for k in tasks} & keys
        except Exception:  # the scheduler is gone: nothing of ours runs there any more
            running = set()
        if not running:
            break
        time.sleep(POLL_S)
    shutil.rmtree(folder, ignore_errors=True)
    # A part that was still running past the wait finds no folder and fails without leaving a file.


# -- command line -----------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    d = TerraformRequest("", "", "")
    p = argparse.ArgumentParser(
        prog="python -m terraform_plugin.scale",
        description="Terraform DEM on a Dask cluster (or a local one): elevation model -> Earth-like satellite "
        "GeoTIFF, the same output as the QGIS algorithm. A rerun after a crash resumes.",
    )
    p.add_argument("input", help="elevation raster (any GDAL format)")
    p.add_argument("output", help="output GeoTIFF (.tif)")
    p.add_argument("--model", help="Terraform ONNX model (default: the bundled one)")
    p.add_argument("--scheduler", help="Dask scheduler address, e.g. tcp://host:8786 (default: a local cluster)")
    p.add_argument("--workers", type=int, help="local cluster worker processes (default: one per core)")
    p.add_argument("--part-width", type=int, default=PART_WIDTH, help=f"px per part/task, multiple of 256 "
                   f"(default {PART_WIDTH})")
    p.add_argument("--band", type=int, default=d.band)
    p.add_argument("--overlap", type=int, default=d.overlap, help=f"chip overlap, px (default {d.overlap})")
    p.add_argument("--nodata-mode", choices=NODATA_MODES, default=d.nodata_mode)
    p.add_argument("--resolution", type=float, help="ground metres per output pixel (default: the model's)")
    p.add_argument("--sea-level", type=float, default=d.sea_level)
    p.add_argument("--vertical-scale", type=float, default=d.vertical_scale)
    p.add_argument("--fit-to-earth", action="store_true", help="choose the vertical scale from the data")
    p.add_argument("--preview", help="before/after PNG")
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--threads", type=int, help="onnxruntime threads per worker (default: cores / workers)")
    p.add_argument("--allow-huge-grid", action="store_true", help="ALLOW_HUGE_GRID: allow an output grid over "
                   f"{guard.MAX_GRID_PIXELS / 1e9:.2g} gigapixels (global Mars at 200 m is 5.7), otherwise refused "
                   "as a likely mistyped resolution")
    p.add_argument("--max-abs-elevation", type=float, default=d.max_abs_elevation, help="MAX_ABS_ELEVATION: "
                   f"elevations beyond +/- this are no-data (layer units; default {d.max_abs_elevation:g})")
    p.add_argument("--latitude", type=float, help="LATITUDE: terraform as if at this latitude (degrees, -90 to 90; "
                   "default: each pixel's own, from the georeference). Conditioned models only")
    p.add_argument("--look", default=d.look, help="LOOK: one of the model's looks by id, or auto (default: latitude "
                   "and elevation decide). Conditioned models only; a wrong one is refused with the model's list")
    p.add_argument("--tile-size", type=int, default=d.tile_size, help="largest tile side of a tiling-independent "
                   "model, px (default 0: the engine's); smaller tiles use less memory")
    p.add_argument("--guide", help="GUIDE: a true-colour raster (8-bit RGB, any CRS: a GeoTIFF, VRT, GeoPackage, a "
                   "GDAL WMS/TMS description) whose colours, averaged to kilometres, set the palette. Models with "
                   "guide inputs only; read here once, the workers need not see it")
    return p


def request_of(args, model_path) -> TerraformRequest:
    """The request the parsed command line asks for (the algorithm's parameters, by the same names)."""
    return TerraformRequest(
        input_path=args.input, output_path=args.output, model_path=model_path, band=args.band, overlap=args.overlap,
        nodata_mode=args.nodata_mode, resolution_m=args.resolution, sea_level=args.sea_level,
        vertical_scale=args.vertical_scale, fit_to_earth=args.fit_to_earth, preview_path=args.preview,
        batch_size=args.batch_size, threads=args.threads, allow_huge_grid=args.allow_huge_grid,
        max_abs_elevation=args.max_abs_elevation, latitude=args.latitude, look=args.look, tile_size=args.tile_size,
        guide_path=args.guide,
    )


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    model = args.model or bundled_model_path()
    if model is None:
        print(f"error: no --model given and the bundled model ({MODEL_FILE}) is missing", file=sys.stderr)
        return 2
    request = request_of(args, model)
    try:
        from tqdm import tqdm
    except ImportError:  # QGIS's own Python often lacks it: plain progress lines instead of a bar
        tqdm = None

    bar = {}

    def on_part(record, done, total):
        if tqdm is None:
            print(f"parts: {done}/{total}", file=sys.stderr, flush=True)
            return
        if "bar" not in bar:
            bar["bar"] = tqdm(total=total, initial=done - 1, unit="part", desc="parts", file=sys.stderr)
        bar["bar"].update(1)

    def log(line):
        (bar["bar"].write if "bar" in bar else print)(line)

    try:
        result = run_on_dask(request, args.scheduler, args.workers, args.part_width, log=log, on_part=on_part)
    except KeyboardInterrupt:
        print(f"interrupted: the finished parts stay in {parts.parts_dir(args.output)}; run the same command "
              "again to resume", file=sys.stderr)
        return 130
    except TerraformError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        if "bar" in bar:
            bar["bar"].close()
    print(f"{result.output_path}: {result.width} x {result.height} px, {result.parts} parts "
          f"({result.parts_reused} reused) on {result.workers} worker(s), {result.elapsed_s:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
