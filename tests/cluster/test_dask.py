"""Dask runs (terraform_plugin.cluster) on real clusters: a LocalCluster the run starts itself, and a `dask
scheduler` + two `dask worker` processes on 127.0.0.1. The output must be the single-process output's file
content - pixels of every band and overview level, metadata, CRS - for the identity model exactly, whatever
the number of workers, worker deaths or client deaths on the way.
"""

import dataclasses
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from osgeo import gdal
from v1models import write_model

from terraform_plugin.cluster import cli, runner
from terraform_plugin.core import guard, parts, pipeline
from terraform_plugin.core.model import bundled_model_path
from terraform_plugin.core.errors import Cancelled, InputError, ModelError, OutputError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PART_WIDTH = 512


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("models") / "identity.onnx")


def holey_dem(path, shape=(457, 1613)):
    """Odd size, not square, a no-data hole across a part join."""
    from rasters import terrain, write_dem

    z = terrain(*shape, seed=3)
    z[100:150, 400:700] = -9999.0
    z[-20:, -30:] = -9999.0  # and one at the corner
    return write_dem(path, z, nodata=-9999.0)


def content(path):
    """What must not differ: every band of every level, metadata, geotransform, CRS."""
    ds = gdal.Open(str(path))
    levels = [ds.ReadAsArray()]
    for i in range(ds.GetRasterBand(1).GetOverviewCount()):
        levels.append(np.stack([ds.GetRasterBand(b).GetOverview(i).ReadAsArray() for b in range(1, 5)]))
    return levels, ds.GetMetadata(), ds.GetGeoTransform(), ds.GetProjection()


def assert_same_file_content(got_path, want_path):
    got, want = content(got_path), content(want_path)
    assert len(got[0]) == len(want[0])
    for a, b in zip(got[0], want[0]):
        np.testing.assert_array_equal(a, b)
    assert got[1:] == want[1:]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, identity):
    """The holey DEM and its single-process output (same part width as the Dask runs below)."""
    folder = tmp_path_factory.mktemp("reference")
    dem = holey_dem(folder / "dem.tif")
    out = folder / "local.tif"
    pipeline.run(pipeline.TerraformRequest(dem, str(out), identity, stripe_width=PART_WIDTH, threads=1))
    return dem, str(out)


def request(dem, out, model, **kw):
    return pipeline.TerraformRequest(str(dem), str(out), model, **kw)


def stale_temp(target):
    """What a killed assembly leaves beside its output: a temporary of a process that is gone."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    folder, name = os.path.split(str(target))
    path = os.path.join(folder, f".{name}.tdem-{guard._HOST}-{child.pid}-0123abcd.part.tif")  # noqa: SLF001
    with open(path, "wb") as f:
        f.write(b"half a GeoTIFF")
    return path


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_local_cluster_output_is_the_single_process_output(tmp_path, reference, identity, workers):
    dem, local = reference
    stale_temp(tmp_path / "out.tif")  # removed, as a local run removes it
    lines = []
    result = runner.run_on_dask(request(dem, tmp_path / "out.tif", identity), workers=workers,
                                part_width=PART_WIDTH, log=lines.append)
    assert_same_file_content(tmp_path / "out.tif", local)
    assert (result.parts, result.parts_reused, result.workers) == (4, 0, workers)
    assert os.listdir(tmp_path) == ["out.tif"]  # parts folder, VRT and temporaries (a killed run's too) gone
    assert any("local Dask cluster" in line for line in lines)
    assert any("left by an earlier run that was killed" in line for line in lines)


def test_scheduler_and_two_worker_processes_give_the_same_output(tmp_path, reference, identity, cluster):
    dem, local = reference
    progress, logs = [], []
    result = runner.run_on_dask(request(dem, tmp_path / "out.tif", identity), scheduler=cluster.address,
                                part_width=PART_WIDTH, progress=progress.append, workers=5, log=logs.append)
    assert_same_file_content(tmp_path / "out.tif", local)
    # The scheduler's two workers ran it; the five asked for are not started, and the log says so.
    assert (result.parts, result.workers, result.scheduler) == (4, 2, cluster.address)
    assert any("--workers 5 is ignored" in line for line in logs), logs
    assert progress == sorted(progress) and progress[-1] == 100.0 and len(progress) > 4
    assert os.listdir(tmp_path) == ["out.tif"]
    # One onnxruntime session per worker process, its threads the host's cores shared out between the two
    # workers on it (asked from the workers: eval is importable there, this module is not).
    from terraform_plugin.core.model import default_threads

    with cluster.client() as client:
        sessions = client.run(eval, "[(k[0], m.threads) for k, m in __import__('terraform_plugin.cluster.tasks', "
                                    "fromlist=['_MODELS'])._MODELS.items()]")
    assert len(sessions) == 2 and any(sessions.values())
    want = [(os.path.abspath(identity), max(1, default_threads() // 2))]
    assert all(s in ([], want) for s in sessions.values()), sessions


def test_part_width_and_model_decide_the_pixels_not_the_cluster(tmp_path, cluster, identity):
    """Parts of 256 px on the cluster against the 8192 px single stripe of a plain local run: same pixels."""
    dem = holey_dem(tmp_path / "dem.tif", shape=(300, 900))
    pipeline.run(request(dem, tmp_path / "local.tif", identity, threads=1))
    runner.run_on_dask(request(dem, tmp_path / "dask.tif", identity), scheduler=cluster.address, part_width=256)
    np.testing.assert_array_equal(content(tmp_path / "dask.tif")[0][0], content(tmp_path / "local.tif")[0][0])


def test_bundled_model_within_one_level_and_identical_with_the_same_batches(tmp_path, cluster):
    model = bundled_model_path()
    if model is None:
        pytest.skip("no bundled model (models/terraform_generator.onnx)")
    dem = holey_dem(tmp_path / "dem.tif", shape=(300, 700))
    pipeline.run(request(dem, tmp_path / "local.tif", model, stripe_width=256, threads=1))
    runner.run_on_dask(request(dem, tmp_path / "dask.tif", model, threads=1), scheduler=cluster.address,
                       part_width=256)
    got, want = content(tmp_path / "dask.tif")[0][0], content(tmp_path / "local.tif")[0][0]
    assert np.abs(got.astype(int) - want.astype(int)).max() <= 1
    # Same part width, batch size and threads: the same batches through the same model, so the same bytes.
    np.testing.assert_array_equal(got, want)
    # A plain local run (one 8192 px stripe) batches the chips differently: within one level.
    pipeline.run(request(dem, tmp_path / "plain.tif", model, threads=1))
    plain = content(tmp_path / "plain.tif")[0][0]
    assert np.abs(got.astype(int) - plain.astype(int)).max() <= 1


def test_worker_killed_mid_run_output_complete_and_identical(tmp_path, own_cluster, slow_identity, until):
    dem = holey_dem(tmp_path / "dem.tif", shape=(600, 2000))
    pipeline.run(request(dem, tmp_path / "local.tif", slow_identity, stripe_width=256, threads=1))
    victim = own_cluster.workers[0]
    pid_by_address = own_cluster.worker_pids()
    victim_address = next(a for a, pid in pid_by_address.items() if pid == victim.pid)
    killed = {}

    def on_part(record, done, total):
        # After the first part, wait until the victim is running a part, then SIGKILL it.
        if killed:
            return
        with own_cluster.client() as client:
            busy = until(lambda: client.processing(workers=[victim_address]).get(victim_address), timeout=60)
        killed["task"] = busy[0]
        os.kill(victim.pid, signal.SIGKILL)

    result = runner.run_on_dask(request(dem, tmp_path / "out.tif", slow_identity, threads=1),
                                scheduler=own_cluster.address, part_width=256, on_part=on_part)
    assert victim.wait(timeout=60) == -signal.SIGKILL and killed["task"].startswith("terraform-part-")
    assert result.parts == 8
    assert_same_file_content(tmp_path / "out.tif", tmp_path / "local.tif")
    assert sorted(os.listdir(tmp_path)) == ["dem.tif", "local.tif", "out.tif"]


def test_client_killed_then_rerun_resumes(tmp_path, own_cluster, slow_identity, until):
    dem = holey_dem(tmp_path / "dem.tif", shape=(600, 2000))
    out = tmp_path / "out.tif"
    command = [sys.executable, "-m", "terraform_plugin.cluster", str(dem), str(out), "--model", slow_identity,
               "--scheduler", own_cluster.address, "--part-width", "256", "--threads", "1"]
    env = dict(os.environ, PYTHONPATH=ROOT)
    first = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    manifest_path = os.path.join(parts.parts_dir(out), parts.MANIFEST)

    def recorded():
        try:
            with open(manifest_path) as f:
                import json

                return len(json.load(f)["parts"])
        except (OSError, ValueError):
            return 0

    until(lambda: recorded() >= 1 or first.poll() is not None)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    done_before = recorded()
    assert not out.exists() and 1 <= done_before < 8, first.stdout.read()

    second = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stdout + second.stderr
    assert f"{done_before} already done (resuming)" in second.stdout
    reused = int(second.stdout.rsplit("parts (", 1)[1].split(" reused")[0])
    assert reused >= done_before
    pipeline.run(request(dem, tmp_path / "local.tif", slow_identity, stripe_width=256, threads=1))
    assert_same_file_content(out, tmp_path / "local.tif")
    assert sorted(os.listdir(tmp_path)) == ["dem.tif", "local.tif", "out.tif"]


def test_cancel_stops_the_tasks_and_leaves_nothing(tmp_path, cluster, slow_identity, until):
    dem = holey_dem(tmp_path / "dem.tif", shape=(600, 2000))
    out = tmp_path / "out.tif"
    seen = []
    with pytest.raises(Cancelled):
        runner.run_on_dask(request(dem, out, slow_identity, threads=1), scheduler=cluster.address, part_width=256,
                           on_part=lambda record, done, total: seen.append(done), cancelled=lambda: bool(seen))
    assert len(seen) == 1
    with cluster.client() as client:  # none of our parts still running or queued on the cluster
        until(lambda: not [k for keys in client.processing().values() for k in keys if "terraform-part" in str(k)])
    assert sorted(os.listdir(tmp_path)) == ["dem.tif"]


def test_cancel_during_the_assembly_leaves_nothing(tmp_path, reference, identity, cluster):
    dem, _ = reference
    lines = []
    with pytest.raises(Cancelled):
        runner.run_on_dask(request(dem, tmp_path / "out.tif", identity), scheduler=cluster.address,
                           part_width=PART_WIDTH, log=lines.append,
                           cancelled=lambda: any(line.startswith("Assembling") for line in lines))
    assert os.listdir(tmp_path) == []  # no output, temporary, VRT or parts folder


@pytest.mark.parametrize(
    "change, error, words",
    [
        ({"input_path": "/nonexistent/dem.tif"}, InputError, "dem.tif"),
        ({"model_path": "/nonexistent/model.onnx"}, ModelError, "model file not found"),
        ({"output_path": "out.png"}, OutputError, "give the output a .tif name"),
        ({"nodata_mode": "lava"}, InputError, "nodata mode"),
        ({"vertical_scale": -1.0}, InputError, "vertical scale"),
        # Two problems: the grid (checked before the model loads) speaks first in both runs.
        ({"resolution_m": 1.0, "model_path": "/nonexistent/model.onnx"}, OutputError, "ALLOW_HUGE_GRID"),
    ],
)
def test_bad_input_gets_the_local_runs_error_before_any_cluster(tmp_path, reference, identity, change, error, words):
    dem, _ = reference
    base = request(dem, tmp_path / "out.tif", identity)
    if "output_path" in change:
        change = {"output_path": str(tmp_path / change["output_path"])}
    bad = dataclasses.replace(base, **change)
    with pytest.raises(error) as local:
        pipeline.run(bad)
    # A scheduler that does not exist: the input error must come first, before any connection or task.
    with pytest.raises(error) as distributed:
        runner.run_on_dask(bad, scheduler="tcp://127.0.0.1:9")
    assert str(distributed.value) == str(local.value)
    assert words in str(local.value).lower() or words in str(local.value)
    assert os.listdir(tmp_path) == []


def test_unreachable_scheduler_is_a_cluster_error_naming_it(tmp_path, reference, identity):
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    dem, _ = reference
    started = time.monotonic()
    with pytest.raises(runner.ClusterError, match="cannot reach the Dask scheduler at " + address):
        runner.run_on_dask(request(dem, tmp_path / "out.tif", identity), scheduler=address)
    # Within seconds: the connect timeout (10 s; Dask retries a refused connection until then), plus a
    # loaded machine's margin for the checks before it.
    assert time.monotonic() - started < runner.CONNECT_TIMEOUT_S + 20
    assert os.listdir(tmp_path) == []


def test_cli_has_the_algorithms_safety_options_and_their_checks(tmp_path, reference, identity, capsys):
    """ALLOW_HUGE_GRID and MAX_ABS_ELEVATION (issue 11) as --allow-huge-grid and --max-abs-elevation: global
    Mars at 200 m is beyond the huge-grid limit, so the CLI's main use needs the opt-in."""
    dem, _ = reference
    out = str(tmp_path / "out.tif")
    parser = cli.build_parser()
    default = cli.request_of(parser.parse_args([dem, out]), identity)
    assert (default.allow_huge_grid, default.max_abs_elevation) == (False, pipeline.TerraformRequest.max_abs_elevation)
    given = cli.request_of(parser.parse_args([dem, out, "--allow-huge-grid", "--max-abs-elevation", "9000"]),
                           identity)
    assert (given.allow_huge_grid, given.max_abs_elevation) == (True, 9000.0)
    # The engine's own messages, before any cluster (this scheduler address does not exist).
    for options, words in ((["--max-abs-elevation", "0"], "non-physical elevation limit must be a positive"),
                           (["--resolution", "1"], "ALLOW_HUGE_GRID"),
                           (["--workers", "0"], "workers must be a whole number >= 1")):
        assert cli.main([dem, out, "--model", identity, "--scheduler", "tcp://127.0.0.1:9", *options]) == 1
        assert words in capsys.readouterr().err
    assert os.listdir(tmp_path) == []


def test_cli_on_a_local_cluster_shows_parts_done_of_total(tmp_path, reference, identity, capsys):
    dem, local = reference
    out, preview = str(tmp_path / "out.tif"), str(tmp_path / "out.png")
    assert cli.main([dem, out, "--model", identity, "--workers", "1", "--part-width", str(PART_WIDTH),
                     "--preview", preview]) == 0
    printed = capsys.readouterr()
    assert "4/4" in printed.err  # the parts bar (tqdm: done/total, rate, ETA) or plain "parts: n/4" lines
    assert f"{out}: 1613 x 457 px, 4 parts (0 reused) on 1 worker(s)" in printed.out
    assert_same_file_content(out, local)
    # The preview too is the local run's.
    local_preview = str(tmp_path / "local" / "local.png")
    os.mkdir(tmp_path / "local")
    pipeline.run(request(dem, tmp_path / "local" / "local.tif", identity, stripe_width=PART_WIDTH, threads=1,
                         preview_path=local_preview))
    np.testing.assert_array_equal(gdal.Open(preview).ReadAsArray(), gdal.Open(local_preview).ReadAsArray())
    assert sorted(os.listdir(tmp_path)) == ["local", "out.png", "out.tif"]


def test_cli_help_names_the_command_as_typed_and_requirement_pin(capsys):
    help_text = subprocess.run([sys.executable, "-m", "terraform_plugin.cluster", "--help"], cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
    assert help_text.returncode == 0 and "--scheduler" in help_text.stdout and "--workers" in help_text.stdout
    assert help_text.stdout.startswith("usage: python -m terraform_plugin.cluster [-h]")
    # The console command (pyproject.toml's terraform-dem) calls main() as it is: its own name, not -m's.
    with pytest.raises(SystemExit) as done:
        cli.main(["--help"])
    assert done.value.code == 0 and capsys.readouterr().out.startswith("usage: terraform-dem [-h]")
    with open(os.path.join(ROOT, "requirements.txt")) as f:
        assert runner.DASK_REQUIREMENT in f.read().split()


def test_a_killed_runs_temporary_is_removed_by_the_next_dask_run(tmp_path, reference, identity):
    """Issue 11 on the Dask path: the output's temporary a killed assembly left (its process gone) is removed
    before the run starts, as a local run does, even when the run then fails (here: no scheduler)."""
    dem, _ = reference
    stale_temp(tmp_path / "out.tif")
    logs = []
    with pytest.raises(runner.ClusterError):
        runner.run_on_dask(request(dem, tmp_path / "out.tif", identity), scheduler="tcp://127.0.0.1:9", log=logs.append)
    assert os.listdir(tmp_path) == []
    assert any("left by an earlier run that was killed" in line for line in logs), logs


def test_parts_and_output_need_twice_the_space_checked_before_any_cluster(tmp_path, reference, identity):
    """The parts and the assembled output exist together until the assembly ends: a grid whose output fits the
    free space once but not twice is refused before any cluster (the scheduler here does not exist), where a
    local run's check would have let it start; a resumed run's finished parts count as space already held."""
    from terraform_plugin.core.grid import processing_grid

    dem, _ = reference
    free = guard.shutil.disk_usage(tmp_path).free
    at_200 = processing_grid(gdal.Open(dem), 200.0)
    wanted_px = 0.75 * free / guard.ESTIMATED_BYTES_PER_PIXEL  # one output fits, two do not
    resolution = 200.0 * (at_200.width * at_200.height / wanted_px) ** 0.5
    grid = processing_grid(gdal.Open(dem), resolution)
    guard.check_disk_space(tmp_path / "out.tif", grid)  # the local run's check passes
    bad = request(dem, tmp_path / "out.tif", identity, resolution_m=resolution, allow_huge_grid=True)
    with pytest.raises(OutputError, match="twice the output") as refused:
        runner.run_on_dask(bad, scheduler="tcp://127.0.0.1:9")
    assert "not enough free space" in str(refused.value)
    assert os.listdir(tmp_path) == []
    # Parts already on the disk hold their share: what is left to find is twice the output less them.
    guard.check_disk_space(tmp_path / "out.tif", grid, copies=2, present=guard.estimated_output_bytes(grid))
