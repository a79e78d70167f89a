"""The mosaic on its own: one stripe's chip rows -> the real onnxruntime identity model -> blended block rows.

Random colours rather than ramp colours: every value 0-255 must survive the weighting, the division by the
weight sums and the rounding, at every overlap and on stripes that do not start at the grid's edge.
"""

import numpy as np
import pytest

from terraform_plugin.core.chiprows import ChipRow, chip_offsets, cut_batches
from terraform_plugin.core.chips import ChipLayout
from terraform_plugin.core.grid import Grid
from terraform_plugin.core.model import TerraformModel
from terraform_plugin.core.mosaic import blend_stripe
from terraform_plugin.core.plan import Plan, plan_stripes
from terraform_plugin.core.profile import STAGES, StageClock
from terraform_plugin.core.relief import Relief
from terraform_plugin.core.request import TerraformRequest
from terraform_plugin.core.source import reflect_indices
from v1models import write_model


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    return TerraformModel(write_model(tmp_path_factory.mktemp("m") / "identity.onnx"), threads=1)


def plan_for(image, overlap, stripe_width, model, batch_size=3):
    h, w, _ = image.shape
    layout = ChipLayout.build(w, h, model.tile_size, overlap)
    request = TerraformRequest("in.tif", "out.tif", model.path, overlap=overlap, batch_size=batch_size,
                               stripe_width=stripe_width)
    return Plan(request, "out.tif", Grid(w, h, (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), ""), layout,
                plan_stripes(layout, stripe_width), Relief(), model.ramp, 200.0, model.input_scaling,
                model.output_scaling)


def chip_rows(plan, image, stripe, clock):
    """What chiprows hands the mosaic: the image mirrored at the grid edges, scaled to the model's input, cut
    into the model's batches (timed as chiprows times it)."""
    scale, offset = plan.input_scaling
    h, w, _ = image.shape
    cols = reflect_indices(np.arange(stripe.ax0, stripe.ax0 + stripe.width), w)
    for row, y0 in enumerate(plan.layout.ys):
        rows = reflect_indices(np.arange(y0, y0 + plan.layout.tile), h)
        x = image[np.ix_(rows, cols)].transpose(2, 0, 1).astype(np.float32) * scale + offset
        with clock.stage("batch"):
            batches = cut_batches(x, chip_offsets(plan.layout, stripe), plan.layout.tile, plan.batch_size)
        yield ChipRow(stripe, row, batches, None)


@pytest.mark.parametrize("overlap, stripe_width", [(0, 8192), (64, 8192), (64, 256), (96, 512), (128, 256)])
def test_identity_chips_blend_back_to_the_image_exactly(identity, overlap, stripe_width):
    image = np.random.default_rng(overlap).integers(0, 256, (333, 1100, 3)).astype(np.uint8)
    plan = plan_for(image, overlap, stripe_width, identity)
    clock, batches = StageClock(), []
    out = np.zeros((333, 1100, 4), np.uint8)
    for stripe in plan.stripes:
        rows = chip_rows(plan, image, stripe, clock)
        for y0, planes in blend_stripe(plan, stripe, rows, identity, batches.append, clock):
            h = planes.shape[1]
            assert y0 % 256 == 0 and (h == 256 or y0 + h == 333)  # whole TIFF block rows
            out[y0 : y0 + h, stripe.x0 : stripe.x0 + planes.shape[2]] = planes.transpose(1, 2, 0)
    np.testing.assert_array_equal(out[..., :3], image)
    assert (out[..., 3] == 255).all()
    assert sum(batches) == plan.chip_runs and max(batches) <= 3
    profile = clock.as_dict()
    assert {"batch", "infer", "blend", "rows"} <= set(profile) <= set(STAGES)
    assert profile["infer"]["visits"] == len(batches)
