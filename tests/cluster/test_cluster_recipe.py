"""The README's cluster recipe, typed as a user types it (section "A Dask cluster, machine by machine").

Two throwaway environments, as on real machines:
- the scheduler's: a venv with `dask[distributed]` alone (no numpy, no GDAL, no terraform_plugin), running
  `dask scheduler`;
- the workers' and the client's: a venv (system site packages, for GDAL's Python bindings) where `pip install
  <checkout>[dask]` installed the package from a copy of this checkout, running `dask worker tcp://...` and
  `terraform-dem ... --scheduler tcp://...`.
Every process runs in its own working folder, with no PYTHONPATH. Loopback and a free port stand in for
`head:8786`. The output must be the single-process run's, bit for bit, also when a worker machine (its nanny and
its worker process) is killed mid-run.

Building the two venvs takes about half a minute (pip, from the package index or its local mirror).
"""

import os
import shutil
import signal
import subprocess
import sys

import pytest
from killing import reaped
from test_dask import assert_same_file_content, holey_dem

from terraform_plugin.cluster import runner
from terraform_plugin.core import pipeline
from terraform_plugin.core.model import bundled_model_path

# Dask compares packages the scheduler lacks (lz4 here, from Debian) and warns; harmless (the README says why).
pytestmark = pytest.mark.filterwarnings("ignore::distributed.versions.VersionMismatchWarning")
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
START_TIMEOUT_S = 180
PIP_TIMEOUT_S = 900


def pip(venv, *args):
    done = subprocess.run([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q",
                           "--disable-pip-version-check", *args], env=clean_env(), capture_output=True, text=True,
                          timeout=PIP_TIMEOUT_S)
    assert done.returncode == 0, done.stdout + done.stderr


def clean_env():
    """The environment of a user's shell: no PYTHONPATH, no virtualenv of ours active."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}


def checkout_copy(dest):
    """The files of this working tree that git would commit (tracked, and untracked but not ignored): what a
    clone holds. pip builds from this copy, so nothing is written into the checkout."""
    try:
        names = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True,
                               capture_output=True).stdout.decode().split("\0")
    except (OSError, subprocess.CalledProcessError):  # a copy without git (the version matrix's chroots)
        ignore = shutil.ignore_patterns(".git", ".venv", "build", "dist", "out", "__pycache__", "*.egg-info")
        shutil.copytree(ROOT, dest, ignore=ignore, symlinks=True)
        return str(dest)
    for name in filter(None, names):
        src = os.path.join(ROOT, name)
        if os.path.isfile(src) and not os.path.islink(src):
            os.makedirs(os.path.join(dest, os.path.dirname(name)), exist_ok=True)
            with open(src, "rb") as f, open(os.path.join(dest, name), "wb") as g:
                g.write(f.read())
    return str(dest)


@pytest.fixture(scope="session")
def package_venv(tmp_path_factory):
    """`python3 -m venv --system-site-packages` + `pip install <clone>[dask]`, as the README says."""
    folder = tmp_path_factory.mktemp("package_venv")
    venv = str(folder / "venv")
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", "--system-site-packages", venv], check=True,
                   env=clean_env())
    pip(venv, checkout_copy(folder / "terraform-dem") + "[dask]")
    return venv


@pytest.fixture(scope="session")
def scheduler_venv(tmp_path_factory):
    """`python3 -m venv` + `pip install "dask[distributed]==<pin>"`: nothing of this project, no numpy, no GDAL."""
    venv = str(tmp_path_factory.mktemp("scheduler_venv") / "venv")
    subprocess.run([sys.base_prefix + "/bin/python3", "-m", "venv", venv], check=True, env=clean_env())
    pip(venv, runner.DASK_REQUIREMENT)
    for module in ("terraform_plugin", "numpy", "osgeo"):
        found = subprocess.run([os.path.join(venv, "bin", "python"), "-c", f"import {module}"], env=clean_env(),
                               capture_output=True, cwd=str(tmp_path_factory.getbasetemp()))
        assert found.returncode != 0, f"the scheduler's venv can import {module}: it would prove nothing"
    return venv


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RecipeCluster:
    """`dask scheduler` from the scheduler's venv and `dask worker tcp://...` from the package's, each in its own
    folder and session (so a worker machine, nanny and worker process, can be killed as one)."""

    def __init__(self, folder, scheduler_venv, package_venv, workers=2):
        self.folder, self.processes, self.logs = str(folder), [], []
        port = free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        self.scheduler = self._start("scheduler", os.path.join(scheduler_venv, "bin", "dask"), "scheduler",
                                     "--host", "127.0.0.1", "--port", str(port))
        self.workers = [self._start(f"worker{i}", os.path.join(package_venv, "bin", "dask"), "worker", self.address)
                        for i in range(workers)]
        with self.client() as client:
            client.wait_for_workers(workers, timeout=START_TIMEOUT_S)

    def _start(self, name, *args):
        cwd = os.path.join(self.folder, name)
        os.makedirs(cwd)
        log = open(os.path.join(self.folder, f"{name}.log"), "w")
        self.logs.append(log)
        process = subprocess.Popen(args, cwd=cwd, env=clean_env(), stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
        self.processes.append(process)
        return process

    def client(self):
        from distributed import Client

        return Client(self.address, timeout=START_TIMEOUT_S, set_as_default=False)

    def log(self, name):
        with open(os.path.join(self.folder, f"{name}.log")) as f:
            return f.read()

    def close(self):
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        for log in self.logs:
            log.close()


@pytest.fixture
def recipe_cluster(tmp_path_factory, scheduler_venv, package_venv):
    cluster = RecipeCluster(tmp_path_factory.mktemp("recipe_cluster"), scheduler_venv, package_venv)
    yield cluster
    cluster.close()


def terraform_dem(package_venv, folder, *args):
    """The client's command, in its own working folder."""
    os.makedirs(folder, exist_ok=True)
    return subprocess.Popen([os.path.join(package_venv, "bin", "terraform-dem"), *map(str, args)], cwd=str(folder),
                            env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_the_installed_package(package_venv, tmp_path):
    """What `pip install <clone>[dask]` put in the venv: the two packages and the bundled model, nothing else of
    the checkout; the version of core/version.py; console commands that run from any folder."""
    from terraform_plugin.core.version import VERSION

    python = os.path.join(package_venv, "bin", "python")
    report = subprocess.run([python, "-c", """
import importlib.metadata as m, json
d = m.distribution("terraform-dem")
tops = sorted({str(f).split("/")[0] for f in d.files if not str(f).startswith("..")})
scripts = {e.name: e.value for e in d.entry_points if e.group == "console_scripts"}
for e in d.entry_points:
    e.load()  # the training commands import torch only when run: loading needs no [train] extra
print(json.dumps([d.version, tops, sorted(str(f) for f in d.files), scripts]))
"""], cwd=str(tmp_path), env=clean_env(), capture_output=True, text=True, timeout=120)
    assert report.returncode == 0, report.stderr
    import json

    version, tops, files, scripts = json.loads(report.stdout)
    assert version == VERSION
    assert tops == ["terraform_dem-%s.dist-info" % VERSION, "terraform_plugin", "training"]
    assert "terraform_plugin/models/terraform_generator.onnx" in files or not bundled_model_path()
    assert "terraform_plugin/cluster/sealed_task.py" in files and "training/train.py" in files
    assert set(scripts) >= {"terraform-dem", "terraform-train", "terraform-export", "terraform-prepare",
                            "terraform-evaluate"}
    helped = subprocess.run([os.path.join(package_venv, "bin", "terraform-dem"), "--help"], cwd=str(tmp_path),
                            env=clean_env(), capture_output=True, text=True, timeout=120)
    assert helped.returncode == 0 and "--scheduler" in helped.stdout, helped.stderr
    assert helped.stdout.startswith("usage: terraform-dem [-h]"), helped.stdout
    # The installed copy runs, not the checkout: no PYTHONPATH, another folder.
    where = subprocess.run([python, "-c", "import terraform_plugin; print(terraform_plugin.__file__)"],
                           cwd=str(tmp_path), env=clean_env(), capture_output=True, text=True, timeout=120)
    assert where.stdout.startswith(package_venv), where.stdout + where.stderr


def test_recipe_gives_the_single_process_output(tmp_path, recipe_cluster, package_venv, models):
    dem = holey_dem(tmp_path / "dem.tif")
    pipeline.run(pipeline.TerraformRequest(dem, str(tmp_path / "local.tif"), models["identity"], stripe_width=512,
                                           threads=1))
    out = tmp_path / "shared" / "out.tif"
    os.makedirs(out.parent)
    with reaped(terraform_dem(package_venv, tmp_path / "client", dem, out, "--model", models["identity"],
                              "--scheduler", recipe_cluster.address, "--part-width", 512)) as cli:
        printed, _ = cli.communicate(timeout=600)
    assert cli.returncode == 0, printed + recipe_cluster.log("scheduler")
    assert f"{out}: 1613 x 457 px, 4 parts (0 reused) on 2 worker(s)" in printed
    assert_same_file_content(out, tmp_path / "local.tif")
    assert os.listdir(out.parent) == ["out.tif"]
    # The scheduler routed the parts without importing any module of ours (its venv has none to import).
    assert "deserialization" not in recipe_cluster.log("scheduler")


def test_recipe_with_a_worker_machine_killed_mid_run(tmp_path, recipe_cluster, package_venv, slow_identity, until):
    dem = holey_dem(tmp_path / "dem.tif", shape=(600, 2000))
    pipeline.run(pipeline.TerraformRequest(dem, str(tmp_path / "local.tif"), slow_identity, stripe_width=256,
                                           threads=1))
    out = tmp_path / "shared" / "out.tif"
    os.makedirs(out.parent)
    victim = recipe_cluster.workers[0]
    with recipe_cluster.client() as client:
        # `dask worker` is a nanny whose child process is the worker: the victim machine's worker address.
        address = next(a for a, parent in client.run(os.getppid).items() if parent == victim.pid)
        with reaped(terraform_dem(package_venv, tmp_path / "client", dem, out, "--model", slow_identity,
                                  "--scheduler", recipe_cluster.address, "--part-width", 256, "--threads", 1)) as cli:
            running = until(lambda: client.processing(workers=[address]).get(address) or cli.poll() is not None)
            assert cli.poll() is None and str(running[0]).startswith("terraform-part-"), cli.communicate()[0]
            os.killpg(victim.pid, signal.SIGKILL)  # the machine is gone: nanny and worker at once
            printed, _ = cli.communicate(timeout=600)
    assert victim.wait(timeout=60) == -signal.SIGKILL
    assert cli.returncode == 0, printed + recipe_cluster.log("scheduler")
    assert "8 parts (0 reused)" in printed
    assert_same_file_content(out, tmp_path / "local.tif")
    assert os.listdir(out.parent) == ["out.tif"]
