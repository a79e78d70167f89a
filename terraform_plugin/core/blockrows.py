"""The hand-off from the mosaic to the writer: finished rows regrouped into whole 256-row TIFF block rows.

A tile of a compressed GeoTIFF should be written (and compressed) once; the mosaic finishes rows in steps of
the chip stride, which is not a multiple of the block, so rows wait here until a block row is complete.
"""

from contextlib import nullcontext

import numpy as np

BLOCK = 256  # TIFF tile side; rows are written in whole block rows so no tile is compressed twice


class BlockRows:
    """Finished rows in, whole block rows out: ``add(y0, planes)`` returns the block rows it completes (the
    mosaic's rows into the output, and each overview level's rows into that level)."""

    def __init__(self, height: int, clock=None):
        self.height, self.clock = height, clock
        self.parts, self.start, self.rows = [], 0, 0

    def add(self, y0: int, planes) -> list:
        """(y0, planes) of each block row that the finished rows ``planes`` (band first (4, rows, width),
        from grid row ``y0``, in order) complete; the last block row may be shorter."""
        if y0 != self.start + self.rows:  # not an assert: plugins.qgis.org blocks those (Bandit B101)
            raise RuntimeError(f"finished rows arrive out of order: {y0} after {self.start + self.rows}")
        self.parts.append(planes)
        self.rows += planes.shape[1]
        end = self.start + self.rows
        complete = end if end >= self.height else (end // BLOCK) * BLOCK
        if complete <= self.start:
            return []
        if len(self.parts) > 1:
            with self.clock.stage("rows") if self.clock else nullcontext():
                joined = np.concatenate(self.parts, axis=1)
        else:
            joined = self.parts[0]
        cut = complete - self.start
        block = (self.start, joined[:, :cut])
        rest = joined[:, cut:]
        self.parts = [rest] if rest.shape[1] else []
        self.start, self.rows = complete, rest.shape[1]
        return [block]

