"""One GDAL error helper: the same clear error whether gdal.UseExceptions() is on or off."""

import pytest
from osgeo import gdal

from terraform_plugin.core.errors import InputError, OutputError
from terraform_plugin.core.gdalcall import gdal_call


@pytest.fixture(params=[False, True], ids=["gdal-errors-as-codes", "gdal-exceptions"])
def exception_mode(request):
    was = gdal.GetUseExceptions()
    gdal.UseExceptions() if request.param else gdal.DontUseExceptions()
    yield request.param
    gdal.UseExceptions() if was else gdal.DontUseExceptions()


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
