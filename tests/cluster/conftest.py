"""Fixtures for the Dask runs: a real cluster started the way one is on real machines (a `dask scheduler`
process and `dask worker` processes talking TCP on 127.0.0.1), and the slow identity model.

Start-up is slow on a loaded two-core machine: the waits are generous and nothing here is timed.
"""

import os
import signal
import socket
import subprocess
import sys
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DASK = os.path.join(os.path.dirname(sys.executable), "dask")
START_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """`dask scheduler` + N `dask worker` processes (no nanny: a killed worker stays dead, as a lost machine)."""

    def __init__(self, folder, workers=2):
        self.folder = str(folder)
        self.address = f"tcp://127.0.0.1:{free_port()}"
        self.env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.logs = []
        self.scheduler = self._start("scheduler", [DASK, "scheduler", "--host", "127.0.0.1", "--port",
                                                   self.address.rsplit(":", 1)[1], "--no-dashboard"])
        self.workers = [self._start(f"worker{i}", [
            DASK, "worker", self.address, "--nthreads", "1", "--no-nanny", "--no-dashboard", "--name", f"w{i}",
            "--local-directory", os.path.join(self.folder, f"w{i}"),
        ]) for i in range(workers)]
        self.wait_for_workers(workers)

    def _start(self, name, args):
        log = open(os.path.join(self.folder, f"{name}.log"), "w")
        self.logs.append(log)
        return subprocess.Popen(args, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=START_TIMEOUT_S, set_as_default=False)

    def wait_for_workers(self, n):
        with self.client() as client:
            client.wait_for_workers(n, timeout=START_TIMEOUT_S)

    def worker_pids(self):
        """{worker address: pid}, asked from the workers themselves."""
        with self.client() as client:
            return client.run(os.getpid)

    def close(self):
        for process in [*self.workers, self.scheduler]:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers, self.scheduler]:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        for log in self.logs:
            log.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A scheduler and two workers shared by a module's tests (tests that kill workers start their own)."""
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.close()


@pytest.fixture
def own_cluster(tmp_path_factory):
    """A fresh scheduler and two workers for one test (it may kill them)."""
    c = Cluster(tmp_path_factory.mktemp("own_cluster"))
    yield c
    c.close()


@pytest.fixture(scope="session")
def slow_identity(tmp_path_factory):
    from slow_model import write_slow_identity

    return write_slow_identity(tmp_path_factory.mktemp("models") / "slow_identity.onnx")


def wait_until(condition, timeout=START_TIMEOUT_S, every=0.1):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"gave up after {timeout} s waiting for {condition}")


@pytest.fixture(scope="session")
def until():
    return wait_until
