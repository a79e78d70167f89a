"""The run's helper threads: a producer that works ahead of the main thread, a consumer that works behind it.

Bounded queues keep memory flat (at most ``QUEUE_DEPTH`` items in flight), and an exception in a helper thread
is re-raised in the main thread, which decides. GDAL and onnxruntime release the GIL, so reading, inference
and writing overlap.
"""

import os
import queue
import sys
import threading

QUEUE_DEPTH = 2  # chip rows read ahead / batches of predictions waiting to be blended / block rows to write
# The helper threads run at a lower priority (Linux: niceness is per thread): onnxruntime's threads then take
# a core back the moment they wake instead of waiting for a reader or writer slice, and the helpers fill the
# gaps between the model's parallel sections. They still get every idle moment and a tenth of a busy core, and
# the main thread waits for them (wait_reader / wait_blender / wait_writer) when they fall behind, so nothing
# starves.
# Measured (bench/README.md), 4096², bundled model, interleaved runs, ratio to bare onnxruntime: niceness 0 ->
# 19 gave 0.76 -> 0.90, 0.85 -> 0.95, 0.87 -> 0.97 in pairs; then three rounds of 0 / 5 / 10 / 19 gave means of
# 0.86 / 0.91 / 0.99 / 0.89 (19 starves the reader at times). Another CPU-bound job of the same session
# (autogroup) at normal priority takes most of the helpers' share while it runs, and the run slows to match.
# Not SCHED_IDLE (helpers only on otherwise idle cores): with two CPU-bound processes in the same session a
# 2048² run took 57-78 s instead of 3-4 s at niceness 10, the reader starved. A short EEVDF slice for the
# helpers (sched_setattr, 0.1 or 0.3 ms) gained nothing measurable (bench/README.md).
HELPER_NICE = 10
_POLL_S = 0.1
_END = object()


def _lower_priority():
    """Raise the calling thread's niceness by HELPER_NICE on Linux, whose priorities are per thread (elsewhere
    a thread id given to setpriority could name another process: leave it)."""
    if not HELPER_NICE or not sys.platform.startswith("linux"):
        return
    try:
        tid = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, tid, min(19, os.getpriority(os.PRIO_PROCESS, tid) + HELPER_NICE))
    except OSError:  # not permitted (some sandboxes): run at the usual priority
        pass


class _Thread:
    def __init__(self, target, name):
        self.queue = queue.Queue(maxsize=QUEUE_DEPTH)
        self.stop = threading.Event()
        self.error = None
        self.thread = threading.Thread(target=self._guard, args=(target,), name=name, daemon=True)
        self.thread.start()

    def _guard(self, target):
        _lower_priority()
        try:
            target()
        except BaseException as exc:  # handed to the main thread
            self.error = exc
            self.stop.set()

    def _put(self, item) -> bool:
        """Blocking put that gives up (False) once the other side has stopped."""
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=_POLL_S)
                return True
            except queue.Full:
                continue
        return False

    def close(self):
        """Stop the thread and wait for it (unblocking a producer stuck on a full queue)."""
        self.stop.set()
        while self.thread.is_alive():
            try:
                self.queue.get_nowait()
            except queue.Empty:
                pass
            self.thread.join(timeout=_POLL_S)


class Ahead(_Thread):
    """Iterates ``items`` (an iterator) in a thread, up to QUEUE_DEPTH items ahead of the consumer.

    Iterating raises the producer's error; ``close()`` abandons the rest. Use as a context manager.
    """

    def __init__(self, items, name="terraform-reader"):
        def produce():
            for item in items:
                if not self._put(item):
                    return
            self._put(_END)

        super().__init__(produce, name)

    def __iter__(self):
        return self

    def __next__(self):
        while True:
            try:
                item = self.queue.get(timeout=_POLL_S)
            except queue.Empty:
                if self.error is not None:
                    raise self.error
                if not self.thread.is_alive() and self.queue.empty():
                    raise self.error or RuntimeError("the reader thread stopped early")
                continue
            if item is _END:
                raise StopIteration
            return item

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()
        return False


class Behind(_Thread):
    """Calls ``consume(item)`` in a thread for each ``put`` item, in order; ``finish()`` waits for the last.

    ``put`` raises the consumer's error as soon as it is known. Use as a context manager: leaving it with an
    exception abandons what is queued.
    """

    def __init__(self, consume, name="terraform-writer"):
        def drain():
            while True:
                try:
                    item = self.queue.get(timeout=_POLL_S)
                except queue.Empty:
                    if self.stop.is_set():
                        return
                    continue
                if item is _END:
                    return
                consume(item)

        super().__init__(drain, name)

    def put(self, item):
        if self.error is not None or not self._put(item):
            raise self.error or RuntimeError("the writer thread stopped")

    def finish(self):
        """Wait until every item is consumed; raises the consumer's error."""
        self.put(_END)
        self.thread.join()
        if self.error is not None:
            raise self.error

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.close()
        return False
