"""One way to call GDAL: whatever its exception mode, a failure becomes a TerraformError with GDAL's reason.

GDAL reports failure three ways - a RuntimeError when ``gdal.UseExceptions()`` is on (tests or another QGIS
plugin may turn it on, process-wide), ``None`` for a missing object, or a non-zero ``CPLErr`` status - and
leaves the reason in its thread-local last-error message. ``gdal_call`` handles all three, quietly (the reason
goes into the raised error, not onto stderr or QGIS's log), so no caller repeats that dance.

Some failures have no return value to carry them: a block that GDAL's cache writes out while flushing (a full
disk) is only an error message, and FlushCache returns nothing before GDAL 3.7. So a call that writes
(``status=True``) also fails when it left a failure in GDAL's error state. Closing a dataset is where a GeoTIFF
writes its directories; ``close_dataset`` makes that a checked call too.
"""

import sys
import time

from osgeo import gdal


def _failed_meanwhile() -> bool:
    return gdal.GetLastErrorType() >= gdal.CE_Failure


def gdal_call(error, what: str, fn, *args, status: bool = False, **kwargs):
    """``fn(*args, **kwargs)``; raises ``error(f"{what}: <GDAL's reason>")`` on failure.

    ``status=True`` for calls that return a CPLErr code (WriteRaster, BuildOverviews) or nothing (FlushCache):
    a non-zero code, or a failure GDAL reported during the call, is failure. Otherwise ``None`` is failure.
    Returns what ``fn`` returned.
    """
    gdal.ErrorReset()
    gdal.PushErrorHandler("CPLQuietErrorHandler")
    raised = None
    try:
        result = fn(*args, **kwargs)
    except RuntimeError as exc:
        raised = str(exc)
    finally:
        gdal.PopErrorHandler()
    # The error's traceback keeps this frame: it must not keep a dataset (``fn`` is often a bound method of
    # one) open, or the caller could not close it and remove its file.
    del fn, args, kwargs
    if raised is not None:
        raise error(f"{what}: {raised}")
    if (bool(result) or _failed_meanwhile()) if status else result is None:
        raise error(f"{what}: {gdal.GetLastErrorMsg() or 'GDAL gave no reason'}")
    return result


def close_dataset(error, what: str, holder: list):
    """Close the dataset in ``holder`` (a one-item list, emptied: the caller keeps no reference that would keep
    it open); raises ``error(f"{what}: <GDAL's reason>")`` when closing failed to write it.

    GDAL 3.8 has ``Dataset.Close``, which returns (or raises) what closing did. Before it, the dataset closes
    when its last reference goes, and a failure there is only GDAL's error state - with exceptions on, also an
    exception the interpreter can only print as "Exception ignored": that one is dropped, the reason is raised
    here instead. A dataset still held elsewhere is flushed here, checked, and closes when its holder lets go.
    """
    dataset = holder.pop()
    if hasattr(dataset, "Close"):
        # With exceptions on, a Close() that fails (GDAL 3.10: a full disk) raises and leaves the Python
        # dataset holding the freed handle, which its destructor then frees again: a segfault. With exceptions
        # off it returns the failure's code and lets go of the handle.
        with gdal.ExceptionMgr(useExceptions=False):
            gdal_call(error, what, dataset.Close, status=True)
        return
    if not _sole_holder(dataset):
        # Held on (a caller's traceback, a finished frame kept by a profiler that outlived its wait): closing
        # happens when that goes, so write everything now, checked; the file is complete and readable already.
        gdal_call(error, what, dataset.FlushCache, status=True)
    holder.append(dataset)
    del dataset
    reasons = _release(holder)
    if reasons or _failed_meanwhile():
        raise error(f"{what}: {reasons[0] if reasons else gdal.GetLastErrorMsg()}")  # the first: the cause


def _sole_holder(dataset, wait_s: float = 2.0) -> bool:
    """Whether the caller's name is the last reference to ``dataset``, waiting up to ``wait_s`` for others to
    go. Another thread may hold one briefly: Dask's worker samples every thread's stack 100 times a second, and
    a frame it holds when the frame returns keeps that frame's locals (a dataset just returned) alive with it."""
    deadline = time.monotonic() + wait_s
    # The caller's name, this parameter and getrefcount's argument: anything more is held elsewhere.
    while sys.getrefcount(dataset) > 3:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def discard_dataset(holder: list):
    """Drop the dataset in ``holder`` (a one-item list, emptied) whose file is being deleted, quietly, without
    ``Dataset.Close``: on GDAL 3.10, Close() of a GeoTIFF whose writes failed (a full disk) aborts the process,
    while dropping the last reference does not. A traceback on its way up may still hold the dataset: it then
    closes when that goes (its file already unlinked)."""
    _release(holder)


def _release(holder):
    """Drop the last reference in ``holder`` with GDAL's errors recorded, not printed; returns their messages."""
    reasons = []

    def record(kind, _number, message):
        if kind >= gdal.CE_Failure:
            reasons.append(message)

    hook = sys.unraisablehook

    def drop_close_errors(unraisable):  # the destructor's RuntimeError: ``reasons`` holds the same message
        if not (isinstance(unraisable.exc_value, RuntimeError) and "delete_" in repr(unraisable.object)):
            hook(unraisable)

    gdal.ErrorReset()
    gdal.PushErrorHandler(record)
    sys.unraisablehook = drop_close_errors
    try:
        holder.clear()  # the last reference: GDAL writes what it still holds and closes the file
    finally:
        sys.unraisablehook = hook
        gdal.PopErrorHandler()
    return reasons
