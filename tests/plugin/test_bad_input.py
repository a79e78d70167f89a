"""Bad input: each a clear QgsProcessingException, QGIS keeps running, nothing at the output path."""

import os

import numpy as np
import pytest



def expect_failure(run_alg, params, out, *fragments, feedback=None):
    from qgis.core import QgsApplication, QgsProcessingException

    with pytest.raises(QgsProcessingException) as caught:
        run_alg({**params, "OUTPUT": str(out)}, feedback=feedback)
    message = str(caught.value)
    for fragment in fragments:
        assert fragment.lower() in message.lower(), message
    assert not os.path.exists(out)
    folder = os.path.dirname(out)
    leftovers = [n for n in os.listdir(folder) if n.startswith(os.path.basename(out))] if os.path.isdir(folder) else []
    assert not leftovers, leftovers  # no temporary file beside it either
    # QGIS is still there and still runs the algorithm.
    assert QgsApplication.processingRegistry().algorithmById("terraform:terraformdem") is not None
    print(message)  # shown with -s / -rA: what the user reads
    return message


def test_no_crs(run_alg, models, tmp_path, kit):
    dem = kit.write_dem(tmp_path / "no_crs.tif", kit.terrain(50, 50), crs=None)
    expect_failure(run_alg, {"INPUT": dem, "MODEL": models["identity"]}, tmp_path / "o.tif",
                   "no coordinate reference system", "Assign")


def test_band_out_of_range(run_alg, models, dem, tmp_path):
    expect_failure(run_alg, {"INPUT": dem, "BAND": 3, "MODEL": models["identity"]}, tmp_path / "o.tif",
                   "Band 3 does not exist", "1 band")


def test_all_nodata(run_alg, models, tmp_path, kit):
    dem = kit.write_dem(tmp_path / "empty.tif", np.full((60, 60), -9999, np.float32), nodata=-9999)
    expect_failure(run_alg, {"INPUT": dem, "MODEL": models["identity"]}, tmp_path / "o.tif", "data")


@pytest.mark.parametrize("gdal_exceptions", [False, True])
def test_not_a_raster(run_alg, models, tmp_path, gdal_exceptions):
    from osgeo import gdal

    fake = tmp_path / "notes.tif"
    fake.write_text("this is a text file, not a GeoTIFF\n" * 20)
    # GDAL's exception mode is process-wide: anything else in QGIS may have turned it on.
    was = gdal.GetUseExceptions()
    if gdal_exceptions:
        gdal.UseExceptions()
    else:
        try:
            gdal.DontUseExceptions()
        except RuntimeError as exc:
            # QGIS >= 3.40's Processing turns GDAL/OGR/OSR exceptions on for the whole process, and GDAL (3.6 on
            # Debian 12) then refuses to turn them off: in such a QGIS the plugin never runs in that mode.
            pytest.skip(f"this QGIS keeps GDAL exceptions on process-wide, so they cannot be off here ({exc})")
    try:
        _not_a_raster(run_alg, models, tmp_path, fake)
    finally:
        if was:
            gdal.UseExceptions()
        elif gdal.GetUseExceptions():
            try:
                gdal.DontUseExceptions()
            except RuntimeError:
                pass  # see above: this QGIS keeps them on


def _not_a_raster(run_alg, models, tmp_path, fake):
    expect_failure(run_alg, {"INPUT": str(fake), "MODEL": models["identity"]}, tmp_path / "o.tif", "notes.tif",
                   "not a raster")


@pytest.mark.parametrize(
    "model, fragment",
    [
        ("missing", "not found"),
        ("corrupt", "cannot load"),
        ("no_metadata", "not a Terraform DEM model"),
        ("invalid_metadata", "ramp"),
        ("wrong_shape", "[N, 3, 256, 256]"),
    ],
)
def test_bad_model(run_alg, models, dem, tmp_path, model, fragment):
    expect_failure(run_alg, {"INPUT": dem, "MODEL": models[model]}, tmp_path / "o.tif", fragment)


def test_unwritable_output(run_alg, models, dem, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("a file where a folder should be")
    expect_failure(run_alg, {"INPUT": dem, "MODEL": models["identity"]}, blocker / "out.tif", "Cannot write")


def test_vertical_scale_must_be_positive(run_alg, models, dem, tmp_path):
    expect_failure(run_alg, {"INPUT": dem, "MODEL": models["identity"], "VERTICAL_SCALE": 0}, tmp_path / "o.tif",
                   "greater than 0")


def test_cancel_mid_run(run_alg, models, tmp_path, kit):
    from qgis.core import QgsProcessingFeedback

    # 1000 px square at 200 m: 36 chips in several batches, so the run is cancelled between batches.
    dem = kit.write_dem(tmp_path / "big.tif", kit.terrain(1000, 1000))
    feedback = QgsProcessingFeedback()
    reports = []

    def on_progress(percent):
        reports.append(percent)
        feedback.cancel()

    feedback.progressChanged.connect(on_progress)
    expect_failure(run_alg, {"INPUT": dem, "MODEL": models["identity"]}, tmp_path / "o.tif", "cancel",
                   feedback=feedback)
    assert reports and reports[0] < 100
