"""The run's helper threads: items in order, errors handed over, and the helpers yield the cores to the model."""

import os
import sys
import threading

import pytest

from terraform_plugin.core.workers import HELPER_NICE, Ahead, Behind


def niceness():
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-thread priorities: Linux only")
def test_helper_threads_run_at_the_lowest_priority_and_the_caller_keeps_its_own():
    before = niceness()
    seen = []

    def produce():
        for i in range(3):
            seen.append(niceness())
            yield i

    with Ahead(produce()) as items:
        assert list(items) == [0, 1, 2]
    consumed = []
    with Behind(lambda item: consumed.append((item, niceness()))) as writer:
        for i in range(3):
            writer.put(i)
        writer.finish()
    expected = min(19, before + HELPER_NICE)
    assert seen == [expected] * 3
    assert consumed == [(i, expected) for i in range(3)]
    assert niceness() == before  # only the helper threads, not the thread that runs the model


def test_a_helper_error_reaches_the_caller():
    def produce():
        yield 1
        raise ValueError("broken DEM block")

    with Ahead(produce()) as items:
        assert next(items) == 1
        with pytest.raises(ValueError, match="broken DEM block"):
            next(items)
