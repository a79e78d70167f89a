"""Helpers of the tests that SIGKILL a real process mid-run (a writer, a trainer, qgis_process)."""

import contextlib
import os
import signal
import time


@contextlib.contextmanager
def reaped(child):
    """Whatever the block does or asserts, ``child`` does not outlive the test."""
    try:
        yield child
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def sigkill(child):
    """Kill ``child`` at once, as a crash or the OOM killer would, and check that SIGKILL is what ended it."""
    child.send_signal(signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL


def wait_for_tiles(temp, child, deadline, size=64 * 2**10):
    """Return once some tiles have landed in the temporary ``temp`` (it holds more than ``size`` bytes), for the
    caller to SIGKILL the run at once. Since issue 9's speed-ups the whole 2000² mosaic is written in about a
    second here, so a fixed pause after the temporary appears can outlast the run."""
    while child.poll() is None and time.monotonic() < deadline:
        try:
            if os.path.getsize(temp) > size:
                return
        except OSError:
            return  # already renamed into place: the run finished (the caller's SIGKILL assertion says so)
        time.sleep(0.005)
