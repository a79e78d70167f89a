"""What runs on the Dask workers: one part of the plan (``compute_part``), and the plan's file that carries it
to them (``write_plan`` on the client, read once per worker process).

Workers import this module by name (``sealed_task``): it must stay importable wherever the package is installed.
"""

import logging
import os
import threading
import time
import uuid

from ..core import guard
from ..core import parts
from ..core.errors import Cancelled, OutputError, TerraformError
from ..core.writer import temp_name
from . import ClusterError

PLAN_PREFIX = "plan-"  # plan files in the parts folder: plan-<run id>.pickle

_MODELS = {}  # (path, threads) -> TerraformModel: one onnxruntime session per worker process
_PLANS = {}  # plan file -> Plan: one unpickled plan per worker process and run
_PLANS_LOCK = threading.Lock()


def write_plan(plan, folder) -> str:
    """The plan, serialized as Dask serializes every task's data (its pickle), into the parts folder under a name of
    this run's own (earlier runs' plans removed); returns its path. Each worker reads it once (``_worker_plan``):
    sealed into every part's task instead, a colour guide's coarse grid (tens of MB for a continent) would travel
    once per part, and as a Dask future the parts would follow it to the one worker holding it, or fail with it when
    that worker is lost. The parts folder is one every worker sees already, and it goes with the parts."""
    from distributed.protocol.pickle import dumps

    for entry in os.scandir(folder):
        if entry.name.startswith(PLAN_PREFIX):
            os.remove(entry.path)
    path = os.path.join(folder, f"{PLAN_PREFIX}{uuid.uuid4().hex[:16]}.pickle")
    temp = temp_name(path, ".tmp")
    try:
        with open(temp, "wb") as f:
            f.write(dumps(plan))
        os.replace(temp, path)
    except OSError as exc:  # a full disk above all: said so, nothing half-written left
        if os.path.exists(temp):
            os.remove(temp)
        reason = f"cannot save the run's plan in {folder}: {exc.strerror or exc}"
        raise guard.disk_full_error(path, reason) or OutputError(reason) from None
    return path


def compute_part(plan_path, index, folder, threads_by_host, cancel_event):
    """One part, on a worker, of the plan in ``plan_path`` (read once per worker process: a colour guide's
    coarse grid travels in it). onnxruntime threads: the request's, else this host's cores shared out between
    the worker threads on it (so two worker processes on two cores get one each, not two each). Between batches
    it looks (at most once a second) at the run's cancel event, so a cancel stops running parts too."""
    from distributed import Event, get_worker

    from ..core.model import default_threads

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


def unseen(paths):
    """Paths this worker cannot see (run on every worker before any task)."""
    return [p for p in paths if not os.path.exists(p)]


def _worker_model(path, threads):
    from ..core.model import TerraformModel

    key = (os.path.abspath(path), threads)
    if key not in _MODELS:
        _MODELS.clear()
        _MODELS[key] = TerraformModel(path, threads=threads)
    return _MODELS[key]


def _worker_plan(path):
    """The run's plan from its file in the parts folder (``write_plan``), read once per worker process."""
    from distributed.protocol.pickle import loads

    with _PLANS_LOCK:
        if path not in _PLANS:
            try:
                with open(path, "rb") as f:
                    plan = loads(f.read())  # the client's own plan, in its own folder: a worker trusts its client
            except OSError as exc:
                raise ClusterError(f"this worker cannot read the run's plan {path} ({exc.strerror or exc}): the output "
                                   "folder must be on a filesystem every worker mounts at the same path") from None
            _PLANS.clear()
            _PLANS[path] = plan
        return _PLANS[path]


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


class _QuietHeartbeatRace(logging.Filter):
    """Drops a worker's "Failed to communicate with scheduler during heartbeat" traceback. In a cluster started
    here it only comes from the race between a heartbeat in flight and the scheduler closing at the end of a run
    (distributed cancels the connection); a scheduler lost mid-run the client reports itself, in the user's words."""

    def filter(self, record):
        return not str(record.msg).startswith("Failed to communicate with scheduler during heartbeat")


def quiet_local_worker():
    """Run on each worker of a LocalCluster started here (whose logs are the user's terminal): the two filters."""
    _quiet_user_errors()
    worker_log = logging.getLogger("distributed.worker")
    if not any(isinstance(f, _QuietHeartbeatRace) for f in worker_log.filters):
        worker_log.addFilter(_QuietHeartbeatRace())
