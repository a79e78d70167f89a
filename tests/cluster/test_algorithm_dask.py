"""The QGIS algorithm's "Dask scheduler address": the same job sent to a real cluster (a `dask scheduler` and
two `dask worker` processes) gives the file a local run gives, with QGIS feedback; a dead address is a clear
QgsProcessingException."""

import socket

import numpy as np
import pytest
from osgeo import gdal


def pixels_and_tags(path):
    ds = gdal.Open(str(path))
    return ds.ReadAsArray(), ds.GetMetadata(), ds.GetGeoTransform(), ds.GetRasterBand(1).GetOverviewCount()


def test_algorithm_on_a_dask_cluster_writes_the_local_output(run_alg, models, tmp_path, kit, cluster):
    from qgis.core import QgsProcessingFeedback

    z = kit.terrain(300, 700)
    z[50:90, 200:420] = -9999.0
    dem = kit.write_dem(tmp_path / "dem.tif", z, nodata=-9999.0)
    local, _ = run_alg({"INPUT": dem, "MODEL": models["identity"], "OUTPUT": str(tmp_path / "local.tif")})

    class Feedback(QgsProcessingFeedback):
        def __init__(self):
            super().__init__()
            self.percent, self.lines = [], []

        def setProgress(self, value):  # noqa: N802 (QGIS's name)
            self.percent.append(value)
            super().setProgress(value)

        def pushInfo(self, info):  # noqa: N802
            self.lines.append(info)
            super().pushInfo(info)

    feedback = Feedback()
    results, _ = run_alg({"INPUT": dem, "MODEL": models["identity"], "OUTPUT": str(tmp_path / "dask.tif"),
                          "DASK_SCHEDULER": cluster.address}, feedback=feedback)
    got, want = pixels_and_tags(results["OUTPUT"]), pixels_and_tags(local["OUTPUT"])
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1:] == want[1:]
    assert feedback.percent[-1] == 100.0 and any(cluster.address in line for line in feedback.lines)


def test_algorithm_with_a_dead_scheduler_address_says_so(run_alg, models, tmp_path, kit):
    from qgis.core import QgsProcessingException

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(100, 100))
    with pytest.raises(QgsProcessingException, match="cannot reach the Dask scheduler at " + address):
        run_alg({"INPUT": dem, "MODEL": models["identity"], "OUTPUT": str(tmp_path / "out.tif"),
                 "DASK_SCHEDULER": address})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dem.tif"]


def test_without_dask_the_algorithm_says_how_to_install_it_and_runs_here(run_alg, models, tmp_path, kit,
                                                                         monkeypatch):
    """Dask is optional in QGIS: without dask.distributed (QGIS's own Python often lacks it) the address gets
    the installer's option and install command, an empty address runs here as ever, and the parameter's help
    names the same pin."""
    import sys

    from qgis.core import QgsApplication, QgsProcessingException

    from terraform_plugin.cluster import runner

    monkeypatch.setitem(sys.modules, "distributed", None)  # `import distributed` now fails, as where it is missing
    assert runner.dask_problem()
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(100, 100))
    params = {"INPUT": dem, "MODEL": models["identity"], "OUTPUT": str(tmp_path / "out.tif")}
    with pytest.raises(QgsProcessingException) as error:
        run_alg({**params, "DASK_SCHEDULER": "tcp://127.0.0.1:9"})
    # Inside QGIS the hint names the installer's Dask option and its by-hand equivalent (into the folder the
    # plugin adds after QGIS's own modules; the QGIS Python's own site-packages may be externally managed).
    from terraform_plugin import deps

    assert "Also install Dask" in str(error.value)
    assert f'--target "{deps.dask_deps_dir()}" "{runner.DASK_REQUIREMENT}"' in str(error.value)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dem.tif"]
    results, _ = run_alg({**params, "DASK_SCHEDULER": ""})
    assert gdal.Open(results["OUTPUT"]).RasterCount == 4
    alg = QgsApplication.processingRegistry().algorithmById("terraform:terraformdem")
    assert runner.DASK_REQUIREMENT in alg.parameterDefinition("DASK_SCHEDULER").help()
