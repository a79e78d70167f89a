"""The default tile of a tiling-independent model follows its receptive radius: the smallest centre of whole
TIFF blocks whose margins cost at most 1.35 computed pixels per output pixel."""

import pytest

import v2models
from terraform_plugin.core.grid import Grid
from terraform_plugin.core.plan import MAX_COMPUTED_PER_OUTPUT_PX, default_centre, default_tile, make_layout
from terraform_plugin.core.request import TerraformRequest
from terraform_plugin.core.schema import parse_metadata


@pytest.mark.parametrize("margin, centre", [(0, 256), (24, 512), (96, 1280), (128, 1792), (256, 3328)])
def test_the_smallest_block_aligned_centre_within_the_budget(margin, centre):
    assert default_centre(margin, 32) == centre
    assert ((centre + 2 * margin) / centre) ** 2 <= MAX_COMPUTED_PER_OUTPUT_PX
    if centre > 256:  # one block less would compute too much
        assert ((centre - 256 + 2 * margin) / (centre - 256)) ** 2 > MAX_COMPUTED_PER_OUTPUT_PX
    assert default_tile(margin, 32) == centre + 2 * margin


def test_the_trained_5_level_build_gets_2048_px_tiles_and_keeps_within_the_budget():
    """R = 128 (124 measured, rounded up) and A = 32: 1280 px centres would compute 1.44 px per output px."""
    specs = v2models.input_specs(["latitude", "guide_rgb", "guide_mask"])
    meta = parse_metadata(v2models.v2_metadata(specs, radius=128, alignment=32))
    grid = Grid(46080, 23040, (0.0, 200.0, 0.0, 0.0, 0.0, -200.0), "")
    layout = make_layout(TerraformRequest("in.tif", "out.tif", "m.onnx"), grid, meta)
    assert (layout.tile_w, layout.tile_h, layout.margin) == (2048, 2048, 128)
    assert layout.computed_per_output_px <= MAX_COMPUTED_PER_OUTPUT_PX
    assert all(int(x + layout.margin) % 256 == 0 for x in layout.xs)  # centres start on TIFF blocks
