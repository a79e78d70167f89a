"""The client side of a Dask run: ``run_on_dask`` checks the request and input here, starts a local cluster or
reaches a running scheduler, submits the parts (``tasks.compute_part``, sealed), records each as it ends and
assembles them into the output. Every worker must see the input, the model and the output's folder at the same
paths (a shared filesystem) and have this package, onnxruntime and GDAL importable; the scheduler needs Dask
alone (``sealed_task``).
"""

import dataclasses
import logging
import os
import shutil
import sys
import time
from typing import Callable, Optional

from ..core import guard
from ..core import parts
from ..core import pipeline
from ..core.errors import Cancelled, InputError, TerraformError
from ..core.model import default_threads
from ..core.plan import check_elevations
from ..core.request import TerraformRequest
from . import ClusterError, tasks
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
        from ..deps import dask_missing_message

        return dask_missing_message(problem, DASK_REQUIREMENT)
    return (
        f"Running on a Dask cluster needs dask.distributed, which this Python ({sys.executable}) cannot import "
        f"({problem}). Install it with: {sys.executable} -m pip install \"{DASK_REQUIREMENT}\" - or leave the "
        "Dask scheduler address empty to run on this machine."
    )


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
            cores = default_threads()
            n = self.workers or cores
            self.log(f"Starting a local Dask cluster: {n} worker process{'es' if n != 1 else ''}, "
                     f"{max(1, cores // n)} onnxruntime thread{'s' if cores // n > 1 else ''} each")
            self.cluster = LocalCluster(
                n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            self.client = Client(self.cluster, set_as_default=False)
            # these workers' logs are the user's terminal (a worker the nanny restarts after a crash lacks the
            # filters: that run has failed anyway, and says so)
            self.client.run(tasks.quiet_local_worker)
        return self.client

    def __exit__(self, *_):
        if self.client is not None:
            self.client.close()
        if self.cluster is not None:
            self.cluster.close()
        return False


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
        unseen = {w: p for w, p in client.run(tasks.unseen, [p for p in paths if os.path.exists(p)]).items() if p}
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
    plan_path = tasks.write_plan(plan, folder)
    futures = {
        client.submit(*sealed_call(tasks.compute_part, plan_path, i, folder, threads_by_host, cancel_event),
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
