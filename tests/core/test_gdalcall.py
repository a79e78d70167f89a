"""One GDAL error helper: the same clear error whether gdal.UseExceptions() is on or off."""

import os
import threading

import numpy as np
import pytest
from osgeo import gdal

from terraform_plugin.core.errors import InputError, OutputError
from terraform_plugin.core.gdalcall import close_dataset, discard_dataset, gdal_call


def _written_in_rows(path, pixels):
    """A GeoTIFF written a few rows at a time, as the engine writes: its blocks wait in GDAL's cache."""
    ds = gdal.GetDriverByName("GTiff").Create(path, pixels.shape[1], pixels.shape[0], 1, gdal.GDT_Byte)
    for y in range(0, pixels.shape[0], 3):
        ds.GetRasterBand(1).WriteArray(pixels[y : y + 3], 0, y)
    return ds


def test_a_missing_file_is_the_callers_error_with_gdals_reason(tmp_path, exception_mode):
    missing = str(tmp_path / "nothing.tif")
    with pytest.raises(InputError, match=r"cannot open it: .*nothing\.tif") as caught:
        gdal_call(InputError, "cannot open it", gdal.Open, missing)
    assert caught.value.__cause__ is None  # the message says it all; no GDAL traceback chained to it


def test_a_failed_status_code_is_an_error(tmp_path, exception_mode):
    ds = gdal.GetDriverByName("MEM").Create("", 4, 4, 1, gdal.GDT_Byte)
    with pytest.raises(OutputError, match="cannot write"):
        # A window outside the raster: GDAL refuses it (CE_Failure, or RuntimeError with exceptions on).
        gdal_call(OutputError, "cannot write", ds.WriteRaster, 10, 10, 2, 2, b"\0" * 4, status=True)


def test_success_returns_the_result(tmp_path, exception_mode):
    ds = gdal.GetDriverByName("MEM").Create("", 4, 3, 1, gdal.GDT_Byte)
    assert gdal_call(OutputError, "x", ds.WriteRaster, 0, 0, 1, 1, b"\x07", status=True) == 0
    array = gdal_call(InputError, "x", ds.GetRasterBand(1).ReadAsArray)
    assert array.shape == (3, 4) and array[0, 0] == 7
    assert gdal_call(OutputError, "x", ds.FlushCache, status=True) in (None, 0)


def test_a_failure_reported_during_a_write_is_an_error_even_when_the_status_is_none(exception_mode):
    """FlushCache returns nothing before GDAL 3.7: a block it could not write is only in GDAL's error state."""
    ds = gdal.GetDriverByName("MEM").Create("", 4, 4, 1, gdal.GDT_Byte)

    def flush_that_fails():
        ds.FlushCache()
        gdal.Error(gdal.CE_Failure, 3, "No space left on device")  # what a full disk leaves

    with pytest.raises(OutputError, match="cannot flush: No space left on device"):
        gdal_call(OutputError, "cannot flush", flush_that_fails, status=True)


def test_closing_is_checked_and_quiet(tmp_path, exception_mode, capfd):
    """A block still in GDAL's cache when the disk fills: closing must fail, with the reason, and nothing
    printed (not GDAL's ERROR lines, not the interpreter's "Exception ignored")."""
    from disks import fill, small_disk

    with small_disk(tmp_path / "disk", 2**20) as folder:
        path = os.path.join(folder, "a.tif")
        # Rows, not one array: GDAL 3.10 writes a whole-image array straight to the file, and there would be
        # nothing left for closing to fail on.
        ds = _written_in_rows(path, np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8))
        fill(folder)
        holder, ds = [ds], None  # the holder's reference is the last one
        with pytest.raises(OutputError, match="cannot close a.tif: .+"):
            close_dataset(OutputError, "cannot close a.tif", holder)
        assert holder == []
        err = capfd.readouterr().err
        assert "ERROR" not in err and "Exception ignored" not in err, err


def test_a_dataset_held_for_a_moment_elsewhere_is_closed_whole(tmp_path, exception_mode):
    """Another thread that holds the dataset briefly (Dask's worker profiler keeps a returned frame's locals)
    is waited for: the file is closed here, all of it written."""
    pixels = np.random.default_rng(1).integers(0, 256, (256, 256), dtype=np.uint8)
    path = str(tmp_path / "a.tif")
    ds = _written_in_rows(path, pixels)
    held = [ds]
    threading.Timer(0.2, held.clear).start()  # lets go 0.2 s after closing starts
    holder, ds = [ds], None
    close_dataset(OutputError, "cannot close a.tif", holder)
    assert holder == []
    if not hasattr(gdal.Dataset, "Close"):  # GDAL >= 3.8 closes explicitly, whoever holds it; before, it waits
        assert held == []
    np.testing.assert_array_equal(gdal.Open(path).ReadAsArray(), pixels)


def test_a_dataset_held_on_elsewhere_still_has_its_writes_checked(tmp_path, exception_mode):
    """A holder that keeps the dataset (GDAL < 3.8 closes on the last reference): what closing would write is
    written and checked now, so a full disk still fails the close with its reason."""
    from disks import fill, small_disk

    with small_disk(tmp_path / "disk", 2**20) as folder:
        path = os.path.join(folder, "a.tif")
        ds = _written_in_rows(path, np.random.default_rng(0).integers(0, 256, (512, 512), dtype=np.uint8))
        if hasattr(ds, "Close"):
            pytest.skip("GDAL >= 3.8 closes explicitly (Dataset.Close), whoever holds it")
        fill(folder)
        kept = ds
        holder, ds = [kept], None
        with pytest.raises(OutputError, match="cannot close a.tif: .+"):
            close_dataset(OutputError, "cannot close a.tif", holder)
        assert holder == []
        kept = [kept]
        discard_dataset(kept)  # as the writer drops a failed output: quietly
