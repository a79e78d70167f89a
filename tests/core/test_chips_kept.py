"""Kept-centre layouts (tiling-independent models): centres that partition the grid from its origin, origins on
the alignment, margins of at least the receptive radius, the fewest and then the smallest tiles."""

import numpy as np
import pytest

from terraform_plugin.core.chips import ChipLayout, check_tile, margin_for
from terraform_plugin.core.errors import InputError
from terraform_plugin.core.plan import TILE_ROW_PIXELS, plan_stripes

SIZES = [1, 31, 100, 255, 1280, 1281, 3000, 4096, 5003, 46080]


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("tile, radius, alignment", [(1472, 96, 32), (1216, 93, 32), (304, 21, 8), (2048, 0, 128)])
def test_centres_partition_each_axis_from_the_origin(size, tile, radius, alignment):
    margin = margin_for(radius, alignment)
    assert margin >= radius and margin % alignment == 0
    layout = ChipLayout.kept(size, size, tile, margin, alignment)
    for origins, side, quantum in ((layout.xs, layout.tile_w, 256), (layout.ys, layout.tile_h, alignment)):
        centre = side - 2 * margin
        assert side <= tile and side % alignment == 0 and np.all(origins % alignment == 0)
        starts = origins + margin
        assert starts[0] == 0 and np.all(np.diff(starts) == centre)  # side by side from the grid's origin
        assert starts[-1] < size <= starts[-1] + centre  # the last centre holds the last pixel, no spare tile
        most = tile - 2 * margin
        if size <= most:
            assert len(origins) == 1 and centre == -(-size // alignment) * alignment  # smallest single tile
        else:
            assert centre % quantum == 0
            assert len(origins) == -(-size // (most - most % quantum))  # the fewest tiles of at most ``tile``


def test_finished_rows_and_columns_follow_the_centres():
    layout = ChipLayout.kept(3000, 3000, 1472, 96, 32)
    spans = [layout.finished_rows(r) for r in range(len(layout.ys))]
    assert [y for y0, y1 in spans for y in range(y0, y1)] == list(range(3000))
    for r, (y0, y1) in enumerate(spans):
        assert (y0, y1) == (max(0, layout.ys[r] + 96), min(3000, layout.ys[r] + layout.tile_h - 96))
    # A column range touches the tiles whose centres meet it, not those whose margins do.
    centre = layout.stride_x
    assert list(layout.columns_touching(0, centre)) == [0]
    assert list(layout.columns_touching(centre - 1, centre + 1)) == [0, 1]
    np.testing.assert_array_equal(layout.weights().sum(), (layout.tile_h - 192) * (layout.tile_w - 192))


@pytest.mark.parametrize("stripe_width", [256, 1024, 2560, 8192])
def test_stripes_are_whole_tile_columns_with_bounded_rows(stripe_width):
    layout = ChipLayout.kept(46080, 3000, 1472, 96, 32)
    stripes = plan_stripes(layout, stripe_width)
    assert stripes[0].x0 == 0 and stripes[-1].x1 == 46080
    assert [c for s in stripes for c in s.columns] == list(range(len(layout.xs)))  # each column once
    for a, b in zip(stripes, stripes[1:]):
        assert a.x1 == b.x0 and a.x1 % 256 == 0 and a.x1 % layout.stride_x == 0
    for s in stripes:
        assert s.width * layout.tile_h <= max(TILE_ROW_PIXELS, layout.tile_w * layout.tile_h)
        assert s.x1 - s.x0 <= max(stripe_width, layout.stride_x)


@pytest.mark.parametrize("bad", [300, 1470, 447, 0, -32, 1.5, "1472", True])
def test_a_tile_that_does_not_fit_the_model_is_refused(bad):
    with pytest.raises(InputError, match="tile size must be a multiple of 32 px of at least 448"):
        check_tile(bad, 96, 32)
