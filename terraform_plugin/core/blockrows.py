"""The hand-off from the mosaic to the writer: finished rows regrouped into whole 256-row TIFF block rows.

A tile of a compressed GeoTIFF should be written (and compressed) once; the mosaic finishes rows in steps of
the chip stride, which is not a multiple of the block, so rows wait here until a block row is complete.
"""

from contextlib import nullcontext

import numpy as np

from .writer import BLOCK


def block_rows(finished, x0: int, height: int, clock=None):
    """Yield (x0, y0, planes) whole block rows (the last may be shorter) from ``finished`` (y0, planes) rows,
    band first (4, rows, width), which arrive in order and together cover grid rows [0, height). ``clock``
    times the joins as "rows"."""
    parts, start, rows = [], 0, 0
    for y0, planes in finished:
        if y0 != start + rows:  # not an assert: plugins.qgis.org blocks those (Bandit B101)
            raise RuntimeError(f"finished rows arrive out of order: {y0} after {start + rows}")
        parts.append(planes)
        rows += planes.shape[1]
        end = start + rows
        complete = end if end >= height else (end // BLOCK) * BLOCK
        if complete > start:
            if len(parts) > 1:
                with clock.stage("rows") if clock else nullcontext():
                    joined = np.concatenate(parts, axis=1)
            else:
                joined = parts[0]
            cut = complete - start
            yield x0, start, joined[:, :cut]
            rest = joined[:, cut:]
            parts = [rest] if rest.shape[1] else []
            start, rows = complete, rest.shape[1]
