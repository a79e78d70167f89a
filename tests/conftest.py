"""Shared fixtures: one offscreen QgsApplication with Processing and the Terraform provider, small DEMs the
tests write (tests/rasters.py), contract-1 ONNX models (tests/v1models.py), and a qgis_process.bin runner on the
built plugin.

QGIS is only started when a test asks for it (core and training tests stay free of it).
"""

import os
import shutil
import subprocess
import sys
from types import SimpleNamespace

import pytest

import rasters

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QGIS_PROCESS = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
QGIS_PLUGINS = "/usr/share/qgis/python/plugins"  # Debian's Processing framework

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


# -- GDAL's exception mode ------------------------------------------------------------------------------


def _gdal_exceptions(on):
    """Switch GDAL's exceptions on or off; False when this process cannot turn them off: QGIS >= 3.40's
    Processing turns GDAL/OGR/OSR exceptions on process-wide, and GDAL (3.6 on Debian 12) then refuses to turn
    them off - in such a QGIS the plugin never runs in that mode."""
    from osgeo import gdal

    if on:
        gdal.UseExceptions()
        return True
    try:
        gdal.DontUseExceptions()
    except RuntimeError:
        return False
    return not gdal.GetUseExceptions()


@pytest.fixture(params=[False, True], ids=["gdal-errors-as-codes", "gdal-exceptions"])
def exception_mode(request):
    """Each test run with GDAL's exceptions off (QGIS 3.22's default) and on (QGIS 3.40 turns them on for the
    whole process); restored after. Skips the off case where this process cannot turn them off."""
    from osgeo import gdal

    was = bool(gdal.GetUseExceptions())
    if not _gdal_exceptions(request.param):
        pytest.skip("this process keeps GDAL exceptions on (QGIS >= 3.40 with GDAL 3.6), so they cannot be off here")
    yield request.param
    _gdal_exceptions(was)


# -- rasters ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kit():
    """tests/rasters.py's helpers - synthetic relief, GeoTIFFs of it, what an identity model makes of them - for
    test modules that take them as a fixture rather than import them."""
    return SimpleNamespace(
        terrain=rasters.terrain,
        crs_wkt=rasters.crs_wkt,
        write_dem=rasters.write_dem,
        grid_elevation=rasters.grid_elevation,
        colourised=rasters.colourised,
        expected=rasters.expected,
        read_rgba=rasters.read_rgba,
    )


@pytest.fixture
def dem(tmp_path):
    """A 300 x 280 px UTM DEM at 200 m (the model's resolution): 4 chips at the default overlap; relief from
    -300 to 3000 m, so that a run has sea and mid-range land."""
    return rasters.write_dem(tmp_path / "dem.tif", rasters.terrain(280, 300, low=-300.0, high=3000.0))


# -- models ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    """Contract-1 models (tests/v1models.py) and broken ones, by name -> path."""
    import json

    from v1models import contract_metadata, write_model

    d = tmp_path_factory.mktemp("models")
    invalid = contract_metadata(ramp=json.dumps({"stops": [[0, 1, 2, 3]], "below": [0, 0, 0]}))
    paths = {
        "identity": write_model(d / "identity.onnx"),
        "negate": write_model(d / "negate.onnx", op="negate"),
        "no_metadata": write_model(d / "no_metadata.onnx", metadata=None),
        "invalid_metadata": write_model(d / "invalid_metadata.onnx", metadata=invalid),
        "wrong_shape": write_model(d / "wrong_shape.onnx", tile=128, metadata=contract_metadata()),
    }
    corrupt = d / "corrupt.onnx"
    corrupt.write_bytes(b"\x08\x07this is not a protobuf ONNX graph" * 10)
    paths["corrupt"] = str(corrupt)
    paths["missing"] = str(d / "does_not_exist.onnx")
    return paths


# -- QGIS in-process -------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def qgis_app():
    """The one QgsApplication of the session (offscreen), Processing initialised, Terraform registered."""
    from qgis.core import QgsApplication

    if QGIS_PLUGINS not in sys.path:
        sys.path.append(QGIS_PLUGINS)
    app = QgsApplication.instance()
    if app is None:
        QgsApplication.setPrefixPath("/usr", True)
        app = QgsApplication([], False)
        app.initQgis()
    from processing.core.Processing import Processing

    Processing.initialize()
    import terraform_plugin

    plugin = terraform_plugin.classFactory(None)  # as qgis_process does: no iface
    plugin.initProcessing()
    app._terraform_plugin = plugin  # keep the provider alive for the whole session
    yield app
    # No exitQgis(): tearing QGIS down under pytest crashes more often than it helps; the process ends anyway.


@pytest.fixture
def run_alg(qgis_app):
    """processing.run('terraform:terraformdem', params) with a fresh context; returns (results, feedback)."""
    import processing
    from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProject

    def run(params, feedback=None, context=None):
        feedback = feedback or QgsProcessingFeedback()
        if context is None:
            context = QgsProcessingContext()
            context.setProject(QgsProject.instance())
        return processing.run("terraform:terraformdem", params, feedback=feedback, context=context), feedback

    return run


# -- QGIS through qgis_process.bin -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def built_plugin(tmp_path_factory):
    """A private copy of `make plugin`'s build (another session rebuilding build/ cannot disturb ours)."""
    subprocess.run([sys.executable, os.path.join(ROOT, "scripts", "build_plugin.py")], check=True,
                   capture_output=True)
    plugin_path = tmp_path_factory.mktemp("plugins")
    dest = plugin_path / "terraform_plugin"
    shutil.copytree(os.path.join(ROOT, "build", "terraform_plugin"), dest, ignore=shutil.ignore_patterns("deps"))
    deps = os.path.join(ROOT, "build", "terraform_plugin", "deps")
    if os.path.isdir(deps):
        os.symlink(deps, dest / "deps")  # 68 MB of onnxruntime: share it rather than copy it
    return plugin_path


def make_qgis_process(plugin_path, config_path):
    """A runner for qgis_process.bin with its own QGIS profile (QGIS_CUSTOM_CONFIG_PATH), plugin enabled."""
    os.makedirs(config_path, exist_ok=True)
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(plugin_path),
               QGIS_CUSTOM_CONFIG_PATH=str(config_path))
    env.pop("PYTHONPATH", None)  # QGIS's own Python must not see the venv

    def run(*args, timeout=180):
        return subprocess.run([QGIS_PROCESS, *args], env=env, capture_output=True, text=True, timeout=timeout,
                              cwd=str(config_path))

    enabled = run("plugins", "enable", "terraform_plugin")
    assert enabled.returncode == 0, enabled.stdout + enabled.stderr
    return run


@pytest.fixture(scope="session")
def qgis_process_factory():
    """make_qgis_process(plugin_path, config_path) -> runner, for tests that need their own plugin copy."""
    return make_qgis_process


@pytest.fixture(scope="session")
def qgis_process(built_plugin, tmp_path_factory):
    if not os.path.exists(QGIS_PROCESS):
        pytest.skip("qgis_process.bin not installed")
    return make_qgis_process(built_plugin, tmp_path_factory.mktemp("qgis_profile"))
