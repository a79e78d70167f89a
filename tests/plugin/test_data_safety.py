"""A run never destroys the user's data, through QGIS: in-process Processing and the built plugin under
qgis_process.bin.

Every refusal: a non-zero exit (or QgsProcessingException), the specific reason, the input's checksum unchanged,
and nothing new beside the target.
"""

import hashlib
import os
import shutil
import time

import numpy as np
import pytest
from osgeo import gdal
from killing import reaped, sigkill, wait_for_tiles


def sha(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def gcp_only(path, kit):
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 60, 50, 1, gdal.GDT_Float32)
    ds.GetRasterBand(1).WriteArray(kit.terrain(50, 60))
    gcps = [gdal.GCP(14.0 + x * 0.01, 46.0 - y * 0.01, 0, x, y) for x, y in ((0, 0), (60, 0), (0, 50), (60, 50))]
    ds.SetGCPs(gcps, _wgs84())
    ds = None
    return str(path)


def _wgs84():
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    return srs.ExportToWkt()


def two_band_dem(path, kit):
    return kit.write_dem(path, None, bands=[kit.terrain(60, 70), kit.terrain(60, 70, seed=1)])


def float64_spiked(path, kit):
    z = kit.terrain(60, 70).astype(np.float64)
    z[10:14, 10:15] = 1e300
    ds = gdal.GetDriverByName("GTiff").Create(str(path), 70, 60, 1, gdal.GDT_Float64)
    ds.SetGeoTransform((500000.0, 200.0, 0.0, 4500000.0, 0.0, -200.0))
    ds.SetProjection(kit.crs_wkt())
    ds.GetRasterBand(1).WriteArray(z)
    ds = None
    return str(path)


# name -> (extra parameters given {dem, folder}, expected fragments). OUTPUT defaults to folder/out.tif.
CASES = {
    "output_is_input": (lambda d, f: {"OUTPUT": d}, ["is the input", "would destroy the DEM"]),
    "output_is_input_dotted": (lambda d, f: {"OUTPUT": os.path.join(f, ".", "dem.tif")}, ["is the input"]),
    "output_is_symlink_to_input": (lambda d, f: {"OUTPUT": _link(f, d, os.symlink)}, ["is the input"]),
    "output_is_hard_link_to_input": (lambda d, f: {"OUTPUT": _link(f, d, os.link)}, ["is the input"]),
    "preview_is_input": (lambda d, f: {"PREVIEW": d}, ["preview", "is the input"]),
    "preview_is_output": (lambda d, f: {"PREVIEW": os.path.join(f, "out.tif")}, ["preview and the output"]),
    "preview_not_png": (lambda d, f: {"PREVIEW": os.path.join(f, "p.txt")}, [".png"]),
    "absurd_resolution": (lambda d, f: {"RESOLUTION": 0.1}, ["240000 × 240000 px", "57.6 gigapixels",
                                                              "2,000 × 2,000 output pixels for each", "at least 0.74 m",
                                                              "ALLOW_HUGE_GRID"]),
    # The opt-in lets a 0.01 m grid (5.76 terapixels, ~15 TB) past the size check, not past the free-space check.
    "huge_grid_opted_in": (lambda d, f: {"RESOLUTION": 0.01, "ALLOW_HUGE_GRID": True},
                           ["not enough free space", "estimated at 2.6 bytes per pixel", "a margin of", "are free"]),
    "band_not_integer": (lambda d, f: {"BAND": 1.5}, ["whole number", "1.5"]),
    "overlap_not_integer": (lambda d, f: {"OVERLAP": 2.5}, ["overlap must be a whole number", "2.5"]),
    "overlap_negative": (lambda d, f: {"OVERLAP": -1}, ["overlap must be 0 pixels or more", "-1"]),
    "model_not_onnx": (lambda d, f: {"MODEL": _text(f, "model.txt")}, ["ONNX file (.onnx)", "model.txt"]),
    "input_is_a_folder": (lambda d, f: {"INPUT": _folder(f)}, ["is a folder", "raster file"]),
    "limit_not_positive": (lambda d, f: {"MAX_ABS_ELEVATION": 0}, ["greater than 0"]),
    # The DEM as a source of the VRT given as INPUT (gdalbuildvrt mosaic.vrt dem.tif), and of a VRT of VRTs.
    "output_is_a_vrt_source": (lambda d, f: {"INPUT": _vrt(f, "mosaic.vrt", [d]), "OUTPUT": d},
                               ["is a file the input", "reads", "would destroy the DEM"]),
    "output_is_read_through_vrts": (lambda d, f: {"INPUT": _vrt(f, "outer.vrt", [_vrt(f, "inner.vrt", [d])]),
                                                  "OUTPUT": d}, ["is a file the input", "would destroy the DEM"]),
    # A georeferenced colour photo (3 bands of 8-bit red, green, blue) given as the DEM: refused, naming BAND.
    "input_is_a_colour_photo": (lambda d, f: {}, ["photo.jpg looks like a colour image", "BAND 1",
                                                  "the red channel's brightness", "gdal_translate -b 1"]),
}


def _vrt(folder, name, sources):
    path = os.path.join(folder, name)
    gdal.BuildVRT(path, sources)
    return path


def _link(folder, dem, how):
    path = os.path.join(folder, "link.tif")
    how(dem, path)
    return path


def _text(folder, name):
    path = os.path.join(folder, name)
    with open(path, "w") as f:
        f.write("not a model\n")
    return path


def _folder(folder):
    path = os.path.join(folder, "tiles")
    os.makedirs(path, exist_ok=True)
    return path


def prepare(case, tmp_path, kit, models):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(120, 120))
    if case == "band_not_integer":
        dem = two_band_dem(tmp_path / "dem.tif", kit)
    if case == "input_is_a_colour_photo":
        from rasters import write_photo

        dem = write_photo(tmp_path / "photo.jpg")
    extra, fragments = CASES[case]
    params = {"INPUT": dem, "MODEL": models["identity"], "OUTPUT": str(tmp_path / "out.tif")}
    params.update(extra(dem, str(tmp_path)))
    return dem, params, fragments


def check_untouched(dem, before, folder, listing, message, fragments, qgis_sidecar=False):
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    assert sha(dem) == before
    now = sorted(os.listdir(folder))
    if qgis_sidecar:  # qgis_process loads INPUT as a layer, and QGIS saves its statistics in its .aux.xml
        now = [n for n in now if n in listing or not (n.endswith(".aux.xml") and n[: -len(".aux.xml")] in listing)]
    assert now == listing  # no output, no temporary, no preview


@pytest.mark.parametrize("case", sorted(CASES))
def test_refused_in_process(run_alg, models, tmp_path, kit, case):
    from qgis.core import QgsProcessingException

    dem, params, fragments = prepare(case, tmp_path, kit, models)
    before, listing = sha(dem), sorted(os.listdir(tmp_path))
    with pytest.raises(QgsProcessingException) as caught:
        run_alg(params)
    check_untouched(dem, before, tmp_path, listing, str(caught.value), fragments)


QP_CASES = ["output_is_input", "output_is_input_dotted", "output_is_symlink_to_input", "output_is_hard_link_to_input",
            "preview_is_input", "preview_is_output", "absurd_resolution", "band_not_integer",
            "overlap_not_integer", "overlap_negative", "model_not_onnx", "input_is_a_folder", "preview_not_png",
            "limit_not_positive", "huge_grid_opted_in", "output_is_a_vrt_source", "output_is_read_through_vrts",
            "input_is_a_colour_photo"]


def qp_args(params):
    return ["run", "terraform:terraformdem", "--", *(f"{k}={v}" for k, v in params.items())]


@pytest.mark.parametrize("case", QP_CASES)
def test_refused_by_qgis_process(qgis_process, models, tmp_path, kit, case):
    dem, params, fragments = prepare(case, tmp_path, kit, models)
    before, listing = sha(dem), sorted(os.listdir(tmp_path))
    done = qgis_process(*qp_args(params))
    assert done.returncode != 0, done.stdout
    check_untouched(dem, before, tmp_path, listing, done.stdout + done.stderr, fragments, qgis_sidecar=True)


def test_relative_output_that_is_the_input_by_qgis_process(qgis_process, models, tmp_path, kit):
    """qgis_process runs in its profile folder (the fixture's cwd): OUTPUT relative to it, INPUT absolute."""
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(100, 100))
    before, listing = sha(dem), sorted(os.listdir(tmp_path))
    relative = os.path.relpath(dem, _runner_cwd(qgis_process))
    done = qgis_process(*qp_args({"INPUT": dem, "MODEL": models["identity"], "OUTPUT": relative}))
    assert done.returncode != 0
    check_untouched(dem, before, tmp_path, listing, done.stdout + done.stderr, ["is the input"], qgis_sidecar=True)


def _runner_cwd(qgis_process):
    """The folder the conftest runner starts qgis_process.bin in (its profile folder, held by the closure)."""
    for cell in qgis_process.__closure__ or ():
        value = cell.cell_contents
        if isinstance(value, str) and os.path.isdir(value):
            return value
        if hasattr(value, "__fspath__") and os.path.isdir(value):
            return os.fspath(value)
    pytest.skip("cannot tell the qgis_process runner's working folder")


def test_gcp_only_raster_by_qgis_process(qgis_process, models, tmp_path, kit):
    dem = gcp_only(tmp_path / "scan.tif", kit)
    before, listing = sha(dem), sorted(os.listdir(tmp_path))
    done = qgis_process(*qp_args({"INPUT": dem, "MODEL": models["identity"], "OUTPUT": str(tmp_path / "o.tif")}))
    assert done.returncode != 0
    check_untouched(dem, before, tmp_path, listing, done.stdout + done.stderr,
                    ["ground control points", "no geotransform", "gdalwarp"], qgis_sidecar=True)


def test_non_physical_elevations_counted_by_qgis_process(qgis_process, models, tmp_path, kit):
    dem = float64_spiked(tmp_path / "dem.tif", kit)
    before = sha(dem)
    out = tmp_path / "out.tif"
    done = qgis_process(*qp_args({"INPUT": dem, "MODEL": models["identity"], "FIT_TO_EARTH": "true",
                                  "OUTPUT": str(out)}))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "20 of 4,200 pixels of dem.tif have non-physical elevations" in done.stdout, done.stdout
    scale = [line for line in done.stdout.splitlines() if line.startswith("Vertical scale")]
    assert scale and 1 < float(scale[0].split()[2]) < 10, scale
    assert sha(dem) == before
    assert sorted(set(os.listdir(tmp_path)) - {"dem.tif.aux.xml"}) == ["dem.tif", "out.tif"]
    written = gdal.Open(str(out))  # keep the dataset referenced while its band is read
    alpha = written.GetRasterBand(4).ReadAsArray()
    assert (alpha[10:14, 10:15] == 0).all() and alpha.mean() > 240


def test_huge_grid_opt_in_is_an_advanced_parameter(qgis_app):
    from qgis.core import QgsApplication, QgsProcessingParameterDefinition

    alg = QgsApplication.processingRegistry().algorithmById("terraform:terraformdem")
    for name in ("ALLOW_HUGE_GRID", "MAX_ABS_ELEVATION"):
        param = alg.parameterDefinition(name)
        assert param is not None and param.flags() & QgsProcessingParameterDefinition.FlagAdvanced
    assert alg.parameterDefinition("ALLOW_HUGE_GRID").defaultValue() is False
    assert alg.parameterDefinition("MAX_ABS_ELEVATION").defaultValue() == 1e5


def test_sigkilled_qgis_process_run_is_cleaned_by_the_next(qgis_process, built_plugin, qgis_process_factory, models,
                                                           tmp_path, kit):
    """Issue 11 case 4 as users hit it: qgis_process.bin killed with SIGKILL while writing; the next run to the
    same target removes the orphaned temporary and succeeds."""
    import signal
    import subprocess
    import time

    qgis_process_bin = shutil.which("qgis_process.bin") or "/usr/bin/qgis_process.bin"
    profile = tmp_path / "profile"
    qgis_process_factory(built_plugin, profile)  # enables the plugin in this profile
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(built_plugin),
               QGIS_CUSTOM_CONFIG_PATH=str(profile))
    env.pop("PYTHONPATH", None)
    work = tmp_path / "work"
    work.mkdir()
    dem = kit.write_dem(work / "dem.tif", kit.terrain(2000, 2000))
    before = sha(dem)
    out = work / "out.tif"
    args = qp_args({"INPUT": dem, "MODEL": models["identity"], "OUTPUT": str(out)})
    child = subprocess.Popen([qgis_process_bin, *args], env=env, cwd=str(profile), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    with reaped(child):
        deadline, temps = time.monotonic() + 300, []
        while not temps and child.poll() is None and time.monotonic() < deadline:
            temps = [n for n in os.listdir(work) if n.endswith(".part.tif")]
            time.sleep(0.02)
        assert temps, f"no temporary file appeared (exit {child.poll()})"
        wait_for_tiles(os.path.join(work, temps[0]), child, deadline)
        sigkill(child)
    assert [n for n in os.listdir(work) if n.startswith(".out.tif.tdem-")] and not out.exists()
    done = qgis_process(*args)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "left by an earlier run that was killed" in done.stdout
    assert sorted(set(os.listdir(work)) - {"dem.tif.aux.xml"}) == ["dem.tif", "out.tif"]
    assert sha(dem) == before


# -- a disk that fills while qgis_process writes; a tiny output on a nearly full disk ----------------------------


def test_a_disk_that_fills_during_a_qgis_process_run_keeps_the_earlier_output(qgis_process, models, tmp_path,
                                                                              kit):
    """The filesystem fills as soon as the run's temporary appears: a non-zero exit, no "Done", the error says
    the disk is full and where, the earlier output byte for byte and nothing else left; the DEM untouched."""
    from disks import fill_when, small_disk

    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(1200, 1200))
    small = kit.write_dem(tmp_path / "small.tif", kit.terrain(40, 50))
    before_dem = sha(dem)
    with small_disk(tmp_path / "disk", 16 * 2**20) as folder:
        out = os.path.join(folder, "out.tif")
        first = qgis_process(*qp_args({"INPUT": small, "MODEL": models["identity"], "OUTPUT": out}))
        assert first.returncode == 0, first.stdout + first.stderr
        before = sha(out)
        with fill_when(folder, lambda p: p.endswith(".part.tif")) as filled:
            done = qgis_process(*qp_args({"INPUT": dem, "MODEL": models["identity"], "OUTPUT": out,
                                          "PREVIEW": os.path.join(folder, "p.png")}))
        printed = done.stdout + done.stderr
        assert filled["filled"], printed
        assert done.returncode != 0, printed
        assert "the disk is full" in printed and f"mounted at {folder}" in printed, printed
        assert "the file already there is kept" in printed and "Done in" not in printed, printed
        assert "Traceback" not in printed and "ERROR 1" not in printed, printed
        assert sha(out) == before and gdal.Open(out).RasterCount == 4
        assert sorted(os.listdir(folder)) == ["out.tif", "zz-filler.bin"]
    assert sha(dem) == before_dem


def test_a_tiny_output_runs_on_a_nearly_full_disk_by_qgis_process(qgis_process, models, tmp_path, kit):
    from disks import free, small_disk

    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(3, 3))
    with small_disk(tmp_path / "disk", 2 * 2**20) as folder:
        assert free(folder) <= 2 * 2**20
        out = os.path.join(folder, "out.tif")
        done = qgis_process(*qp_args({"INPUT": dem, "MODEL": models["identity"], "OUTPUT": out,
                                      "PREVIEW": os.path.join(folder, "p.png")}))
        assert done.returncode == 0, done.stdout + done.stderr
        assert sorted(os.listdir(folder)) == ["out.tif", "p.png"]
        assert gdal.Open(out).RasterXSize == 3
