"""One way to call GDAL: whatever its exception mode, a failure becomes a TerraformError with GDAL's reason.

GDAL reports failure three ways - a RuntimeError when ``gdal.UseExceptions()`` is on (tests or another QGIS
plugin may turn it on, process-wide), ``None`` for a missing object, or a non-zero ``CPLErr`` status - and
leaves the reason in its thread-local last-error message. ``gdal_call`` handles all three, quietly (the reason
goes into the raised error, not onto stderr or QGIS's log), so no caller repeats that dance.
"""

from osgeo import gdal


def gdal_call(error, what: str, fn, *args, status: bool = False, **kwargs):
    """``fn(*args, **kwargs)``; raises ``error(f"{what}: <GDAL's reason>")`` on failure.

    ``status=True`` for calls that return a CPLErr code (WriteRaster, BuildOverviews) or nothing (FlushCache):
    a non-zero code is failure. Otherwise ``None`` is failure. Returns what ``fn`` returned.
    """
    gdal.ErrorReset()
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    try:
        result = fn(*args, **kwargs)
    except RuntimeError as exc:
        raise error(f"{what}: {exc}") from None
    finally:
        gdal.PopErrorHandler()
    if bool(result) if status else result is None:
        raise error(f"{what}: {gdal.GetLastErrorMsg() or 'GDAL gave no reason'}")
    return result
