"""The dependency installer as users meet it: a plugin without onnxruntime, a fresh profile, no network.

The wheel is the one `make plugin` keeps in build/wheels/ for QGIS's Python (scripts/build_plugin.py), and pip
is told --no-index, so these tests need no network. The pip run, the verification and the terraformdem run
after it are all real (qgis_process.bin, QGIS's own Python).
"""

import glob
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TAG = f"py{sys.version_info[0]}.{sys.version_info[1]}"
CP = f"cp{sys.version_info[0]}{sys.version_info[1]}"


@pytest.fixture(scope="session")
def local_wheel(built_plugin):
    from terraform_plugin import deps

    found = sorted(glob.glob(os.path.join(ROOT, "build", "wheels",
                                          f"onnxruntime-{deps.ONNXRUNTIME_VERSION}-{CP}-{CP}-*.whl")))
    if not found:
        pytest.skip(f"no onnxruntime {deps.ONNXRUNTIME_VERSION} {CP} wheel in build/wheels (make plugin downloads it)")
    return found[-1]


@pytest.fixture(scope="session")
def dask_wheels():
    """The wheels of the pinned dask[distributed] and its dependencies for QGIS's Python, fetched once into
    build/wheels/dask-<cpXY>/ (as `make plugin` fetches onnxruntime's); the installs below use them offline."""
    from terraform_plugin import deps
    from terraform_plugin.cluster.runner import DASK_REQUIREMENT

    version = DASK_REQUIREMENT.split("==")[1]
    folder = os.path.join(ROOT, "build", "wheels", f"dask-{version}-{CP}")
    if not os.path.isdir(folder):
        partial = folder + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        done = subprocess.run([deps.python_executable(), "-m", "pip", "download", "-q", "--disable-pip-version-check",
                               "--only-binary=:all:", "-d", partial, DASK_REQUIREMENT], capture_output=True, text=True,
                              timeout=600)
        if done.returncode != 0:
            pytest.skip(f"cannot fetch the {DASK_REQUIREMENT} wheels for {CP} (no package index?): "
                        f"{done.stderr[-300:]}")
        os.replace(partial, folder)
    return folder


@pytest.fixture
def bare_plugin(built_plugin, tmp_path, qgis_process_factory):
    """A plugin copy without deps/ (as users install it) and a fresh profile: (runner, profile dir)."""
    plugins = tmp_path / "plugins"
    shutil.copytree(built_plugin / "terraform_plugin", plugins / "terraform_plugin", symlinks=True,
                    ignore=shutil.ignore_patterns("deps"))
    profile = tmp_path / "profile"
    return qgis_process_factory(plugins, profile), profile


def target_dir(profile):
    return os.path.join(str(profile), "profiles", "default", "python", "dependencies", "terraform_dem", TAG)


def test_offline_install_then_terraform_runs(bare_plugin, local_wheel, models, tmp_path, kit):
    run, profile = bare_plugin
    # Listed headless (a HideFromModeler flag once made qgis_process take it for deprecated and hide it).
    assert "terraform:installdependencies" in run("list").stdout
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 64))
    out = tmp_path / "out.tif"
    before = run("run", "terraform:terraformdem", "--", f"INPUT={dem}", f"MODEL={models['identity']}", f"OUTPUT={out}")
    assert before.returncode != 0 and "Install/repair Terraform DEM dependencies" in before.stdout + before.stderr

    done = run("run", "terraform:installdependencies", "--json", "--", f"WHEEL={local_wheel}", timeout=600)
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    results = json.loads(done.stdout[done.stdout.index("{"):])["results"]
    target = target_dir(profile)
    assert results["TARGET"] == target
    assert results["ONNXRUNTIME_VERSION"] == "1.31.1"
    assert results["EXECUTION_PROVIDER"] == "CPUExecutionProvider"
    # --no-deps: onnxruntime alone; QGIS's numpy stays the only numpy.
    assert os.path.isdir(os.path.join(target, "onnxruntime"))
    assert not glob.glob(os.path.join(target, "numpy*"))
    assert not os.path.exists(target + ".partial")
    for said in ("--no-deps", "(offline)", "Execution providers available", "loads on: CPUExecutionProvider"):
        assert said in text, said
    assert re.search(r"numpy \d+\.\d+\.\d+ \(QGIS's\) kept", text), text

    after = run("run", "terraform:terraformdem", "--", f"INPUT={dem}", f"MODEL={models['identity']}", f"OUTPUT={out}")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "Execution provider: CPUExecutionProvider" in after.stdout + after.stderr
    assert out.is_file()


def test_offline_dask_install_then_the_scheduler_parameter_uses_it(bare_plugin, local_wheel, dask_wheels, models,
                                                                    tmp_path, kit):
    """Dask as the optional component: installed offline into its own folder, checked, kept behind QGIS's own
    modules; afterwards Terraform DEM's Dask scheduler address reaches Dask (here: a scheduler that is not there)."""
    from terraform_plugin.cluster.runner import DASK_REQUIREMENT

    run, profile = bare_plugin
    done = run("run", "terraform:installdependencies", "--json", "--", f"WHEEL={local_wheel}", "DASK=true",
               f"DASK_WHEELS={dask_wheels}", timeout=900)
    text = done.stdout + done.stderr
    assert done.returncode == 0, text
    results = json.loads(done.stdout[done.stdout.index("{"):])["results"]
    assert results["DASK_VERSION"] == DASK_REQUIREMENT.split("==")[1]
    folder = os.path.join(os.path.dirname(target_dir(profile)), f"dask-{TAG}")
    assert os.path.isdir(os.path.join(folder, "distributed")) and not os.path.exists(folder + ".partial")
    assert os.path.isdir(os.path.join(target_dir(profile), "onnxruntime"))  # onnxruntime's folder holds no Dask
    assert not glob.glob(os.path.join(target_dir(profile), "distributed*"))
    assert "(offline)" in text and "--no-index --find-links" in text
    # Debian's Python has PyYAML: QGIS's copy stays the one imported, the folder's comes after it.
    kept = next(line for line in text.splitlines() if "kept in use" in line)
    assert "yaml" in kept, kept

    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 64))
    with __import__("socket").socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"  # nobody listens there
    after = run("run", "terraform:terraformdem", "--", f"INPUT={dem}", f"MODEL={models['identity']}",
                f"OUTPUT={tmp_path / 'out.tif'}", f"DASK_SCHEDULER={address}", timeout=300)
    said = after.stdout + after.stderr
    assert after.returncode != 0 and f"cannot reach the Dask scheduler at {address}" in said, said
    assert "needs dask.distributed" not in said


def test_a_failed_dask_install_leaves_the_previous_one(qgis_app, tmp_path):
    """pip finds nothing in the offline folder: InstallError naming pip, the working install untouched."""
    from terraform_plugin import installer

    target = tmp_path / f"dask-{TAG}"
    target.mkdir()
    (target / "marker.txt").write_text("the working install")
    empty = tmp_path / "no_wheels"
    empty.mkdir()
    with pytest.raises(installer.InstallError, match="pip failed"):
        installer.install_dask(wheels=str(empty), target=str(target), log=lambda line: None)
    assert (target / "marker.txt").read_text() == "the working install"
    assert not os.path.exists(str(target) + ".partial")
    with pytest.raises(installer.InstallError, match="Dask wheel folder not found"):
        installer.install_dask(wheels=str(tmp_path / "missing"), target=str(target), log=lambda line: None)


def test_repair_keeps_the_working_install_when_the_new_one_fails(bare_plugin, local_wheel, tmp_path):
    """A second install that fails (a wheel for another Python) leaves the first one in place and says why."""
    run, profile = bare_plugin
    first = run("run", "terraform:installdependencies", "--", f"WHEEL={local_wheel}", timeout=600)
    assert first.returncode == 0, first.stdout + first.stderr
    # The progress the dialog's bar shows; qgis_process prints it as dots, up to the end of the install.
    assert "...50" in first.stdout and "...100 - done." in first.stdout, first.stdout
    assert "deprecated" not in first.stdout
    other = "cp39" if CP != "cp39" else "cp310"
    wrong = tmp_path / os.path.basename(local_wheel).replace(f"-{CP}-{CP}-", f"-{other}-{other}-")
    shutil.copy(local_wheel, wrong)
    done = run("run", "terraform:installdependencies", "--", f"WHEEL={wrong}")
    text = done.stdout + done.stderr
    assert done.returncode != 0
    assert f"QGIS runs Python {sys.version_info[0]}.{sys.version_info[1]}" in text and f"-{CP}-" in text
    assert os.path.isdir(os.path.join(target_dir(profile), "onnxruntime"))


def test_cuda_with_the_cpu_wheel_is_refused_clearly(bare_plugin, local_wheel):
    run, profile = bare_plugin
    done = run("run", "terraform:installdependencies", "--", "CUDA=true", f"WHEEL={local_wheel}")
    assert done.returncode != 0
    assert "CUDA was requested but" in done.stdout + done.stderr and "onnxruntime_gpu" in done.stdout + done.stderr
    assert not os.path.exists(target_dir(profile))


def test_not_a_wheel_and_a_foreign_wheel(tmp_path, qgis_app):
    from terraform_plugin import installer

    junk = tmp_path / "notes.whl"
    junk.write_text("hello")
    with pytest.raises(installer.InstallError, match="is not a wheel file"):
        installer.wheel_info(str(junk))
    foreign = tmp_path / "requests-2.0.0-py3-none-any.whl"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("requests-2.0.0.dist-info/METADATA", "Name: requests\n")
    with pytest.raises(installer.InstallError, match="not of onnxruntime"):
        installer.wheel_info(str(foreign))
    broken = tmp_path / "onnxruntime-1.31.1-cp311-cp311-linux_x86_64.whl"
    broken.write_bytes(b"PK not really")
    with pytest.raises(installer.InstallError, match="cannot be read as a wheel"):
        installer.wheel_info(str(broken))


def test_numpy_requirement_checked_against_qgis_numpy(qgis_app):
    from terraform_plugin import installer

    info = {"project": "onnxruntime", "version": "9.0", "python": ["cp311"], "abi": "cp311", "platform": "x",
            "requires": ["numpy>=2.3", "protobuf", "sympy; extra == \"symbolic\""]}
    with pytest.raises(installer.InstallError, match=r"needs numpy >=2\.3, QGIS ships numpy 1\.24\.2"):
        installer.check_wheel(info, (3, 11), "1.24.2")
    info["requires"] = ["numpy>=1.21.6", "protobuf>=4.25.8", "flatbuffers"]
    assert installer.check_wheel(info, (3, 11), "1.24.2") == ["protobuf >=4.25.8", "flatbuffers"]
    info["python"] = ["cp313"]
    assert installer.check_wheel(info, (3, 13), "2.2.4") == ["protobuf >=4.25.8", "flatbuffers"]


@pytest.mark.parametrize("have, spec, ok", [
    ("1.24.2", ">=1.21.6", True), ("1.24.2", ">=1.25", False), ("2.2.4", "<2", False), ("1.26.4", "<2", True),
    ("2.2.4", ">=1.21.6,<3", True), ("1.24.2", "==1.24.*", True), ("1.24.2", "!=1.24.2", False),
])
def test_requirement_met(have, spec, ok):
    from terraform_plugin.installer import requirement_met

    assert requirement_met(have, spec) is ok


def test_installer_algorithm_registered(qgis_app):
    from qgis.core import QgsApplication

    alg = QgsApplication.processingRegistry().algorithmById("terraform:installdependencies")
    assert alg is not None and alg.displayName() == "Install/repair Terraform DEM dependencies"
    assert {p.name() for p in alg.parameterDefinitions()} == {"CUDA", "WHEEL", "DASK", "DASK_WHEELS"}
    assert "\n" not in alg.shortHelpString() and "--no-deps" in alg.shortHelpString()


def test_cancel_leaves_nothing_behind(qgis_app, local_wheel, tmp_path):
    """Cancelled during pip: InstallError, no staging folder, the existing install untouched."""
    from terraform_plugin import installer

    target = tmp_path / "deps" / TAG
    target.mkdir(parents=True)
    (target / "marker.txt").write_text("the working install")
    lines = []
    with pytest.raises(installer.InstallError, match="cancelled"):
        installer.install(wheel=local_wheel, target=str(target), log=lines.append, cancelled=lambda: True)
    assert (target / "marker.txt").read_text() == "the working install"
    assert not os.path.exists(str(target) + ".partial")
    assert any("--no-deps" in line for line in lines)
