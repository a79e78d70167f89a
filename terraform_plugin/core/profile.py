"""Per-stage time counters: cheap enough (two clock reads per stage visit) to stay on in every run.

Each stage records the CPU seconds of the thread that ran it (``time.thread_time``) and its wall seconds.
Stages run in four threads (reader, main, blender, writer), so their CPU seconds add up to the engine's own
work; inference is the exception: onnxruntime spreads it over its own thread pool, so for ``infer`` only the
wall time is meaningful. ``wait_*`` stages are the main thread blocked on its neighbours: where they are large,
the model is starved (by the reader) or held back (by the blender or the writer).
"""

import threading
import time

STAGES = (
    "read",  # resample a window of the DEM onto the grid (GDAL warp), mirror at the edges
    "fill",  # no-data fill (transparent mode, only where a chip row has holes)
    "colourise",  # elevation -> ramp colours, as channel-first float32 in the model's input range
    "batch",  # copy chips into the model's batches (reader thread)
    "infer",  # onnxruntime
    "blend",  # weight the predictions, add them into the accumulator (blender thread)
    "rows",  # finished rows: weighted mean -> uint8 RGBA (blender thread), joined into whole TIFF block rows
    "write",  # compress (ZSTD) and write block rows (writer thread)
    "overviews",  # average each written block row into the overview levels (writer thread), then the levels a
    # stripe cannot make, from the last one it made (main thread); or GDAL's pass
    "preview",
    "wait_reader",  # main thread waiting for a colourised chip row
    "wait_writer",  # main thread waiting for room in the writer's queue
    "wait_blender",  # main thread waiting for room in the blender's queue
)


class _Visit:
    __slots__ = ("clock", "name", "cpu", "wall")

    def __init__(self, clock, name):
        self.clock, self.name = clock, name

    def __enter__(self):
        self.cpu, self.wall = time.thread_time(), time.perf_counter()
        return self

    def __exit__(self, *_):
        self.clock.add(self.name, time.thread_time() - self.cpu, time.perf_counter() - self.wall)
        return False


class StageClock:
    """Accumulates (cpu_s, wall_s, visits) per stage; safe to use from several threads."""

    def __init__(self):
        self._lock = threading.Lock()
        self.cpu = dict.fromkeys(STAGES, 0.0)
        self.wall = dict.fromkeys(STAGES, 0.0)
        self.visits = dict.fromkeys(STAGES, 0)

    def stage(self, name: str) -> _Visit:
        """``with clock.stage("colourise"): ...``"""
        return _Visit(self, name)

    def add(self, name: str, cpu_s: float, wall_s: float):
        with self._lock:
            self.cpu[name] += cpu_s
            self.wall[name] += wall_s
            self.visits[name] += 1

    def as_dict(self) -> dict:
        """{stage: {"cpu_s", "wall_s", "visits"}} for the stages that ran."""
        return {
            name: {"cpu_s": round(self.cpu[name], 4), "wall_s": round(self.wall[name], 4), "visits": self.visits[name]}
            for name in STAGES
            if self.visits[name]
        }
