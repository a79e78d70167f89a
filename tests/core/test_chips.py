"""Chip layout and blend weights: full coverage with context at the borders, weights that merge exactly."""

import numpy as np
import pytest

from terraform_plugin.core.chips import ChipLayout, blend_weights, check_overlap, chip_origins, edge_ramp
from terraform_plugin.core.errors import InputError

SIZES = [1, 7, 100, 191, 255, 256, 257, 448, 613, 1000, 5003]


@pytest.mark.parametrize("overlap", [0, 32, 64, 128])
@pytest.mark.parametrize("size", SIZES)
def test_origins_cover_the_axis_with_border_context(size, overlap):
    tile = 256
    xs = chip_origins(size, tile, overlap)
    assert np.all(np.diff(xs) == tile - overlap)
    # Every pixel is covered, and the border pixels sit at least overlap/2 inside a chip (or the chip is
    # centred on a raster smaller than it).
    margin = overlap // 2 if len(xs) > 1 else 0
    assert xs[0] <= -margin and xs[-1] + tile >= size + margin
    # Centred: the run sticks out equally on both sides, to within a pixel.
    assert abs(-xs[0] - (xs[-1] + tile - size)) <= 1
    # Minimal: one chip fewer would not cover the axis with that margin.
    assert len(xs) == 1 or (len(xs) - 2) * (tile - overlap) + tile < size + 2 * (overlap // 2)


@pytest.mark.parametrize("overlap", [0, 1, 64, 128])
def test_weights_are_strictly_positive_and_a_partition_of_unity(overlap):
    tile = 256
    w = blend_weights(tile, overlap)
    assert w.shape == (tile, tile) and w.dtype == np.float32
    assert w.min() > 0 and w.max() <= 1
    # Along one axis, chips stepping by the stride sum to exactly 1 away from the ends: nothing to
    # normalise in the interior, so the blend cannot darken or brighten.
    ramp = edge_ramp(tile, overlap)
    stride = tile - overlap
    total = np.zeros(stride * 6 + tile)
    for k in range(7):
        total[k * stride : k * stride + tile] += ramp
    np.testing.assert_allclose(total[tile : 6 * stride], 1.0, atol=1e-12)
    # Symmetric, flat in the middle.
    np.testing.assert_array_equal(ramp, ramp[::-1])
    assert np.all(ramp[overlap : tile - overlap] == 1.0)


@pytest.mark.parametrize("bad", [-1, 129, 256, 1.5, "64", None, True])
def test_bad_overlap_is_a_clear_error(bad):
    with pytest.raises(InputError, match="overlap"):
        check_overlap(bad, 256)


def test_integral_float_overlap_is_accepted():
    assert check_overlap(64.0, 256) == 64


def test_columns_touching_matches_brute_force():
    layout = ChipLayout.build(1000, 300, 256, 64)
    for x0, x1 in [(0, 1), (0, 256), (100, 700), (256, 512), (999, 1000), (0, 1000), (500, 501)]:
        brute = [i for i, x in enumerate(layout.xs) if x < x1 and x + 256 > x0]
        assert list(layout.columns_touching(x0, x1)) == brute


@pytest.mark.parametrize("height", [1, 100, 256, 700, 1013])
def test_finished_rows_partition_the_grid_in_order(height):
    layout = ChipLayout.build(10, height, 256, 64)
    spans = [layout.finished_rows(r) for r in range(len(layout.ys))]
    rows = [y for y0, y1 in spans for y in range(y0, y1)]
    assert rows == list(range(height))
    for r, (y0, y1) in enumerate(spans):  # a finished row lies inside its own chip row
        if y1 > y0:
            assert layout.ys[r] <= y0 and y1 <= layout.ys[r] + 256
