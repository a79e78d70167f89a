"""The ramp's lookup table gives exactly the colours of linear interpolation between stops, rounded.

The identity-model tests compare against ``Ramp.colourise`` itself; here it is held to the definition (numpy's
interp per channel, float32, rounded; ``below`` under the first stop, on NaN and on sea) at the values where a
table could slip: every stop and its float32 neighbours, bin edges, colour steps, NaN, infinities.
"""

import numpy as np
import pytest

from terraform_plugin.core.ramp import Ramp, training_ramp


def by_definition(ramp, z, sea=None):
    z = np.asarray(z, dtype=np.float32)
    out = np.empty(z.shape + (3,), np.uint8)
    for c in range(3):
        with np.errstate(invalid="ignore"):
            out[..., c] = np.rint(np.interp(z, ramp.elevations, ramp.colours[:, c]).astype(np.float32))
    under = ~(z >= ramp.elevations[0])
    if sea is not None:
        under |= sea
    out[under] = ramp.below
    return out


def hard_values(ramp, rng):
    e = ramp.elevations.astype(np.float32)
    near_stops = np.concatenate([e, np.nextafter(e, -np.inf), np.nextafter(e, np.inf)])
    span = float(ramp.elevations[-1] - ramp.elevations[0])
    dense = np.linspace(ramp.elevations[0] - 0.01 * span, ramp.elevations[-1] + 0.01 * span, 400_003)
    dense = dense.astype(np.float32)
    edges = (np.floor(dense * 16) / 16).astype(np.float32)  # the training ramp's bin edges, and neighbours
    special = np.array([np.nan, np.inf, -np.inf, 3e38, -3e38, 0.0, -0.0], np.float32)
    wide = rng.uniform(ramp.elevations[0] - span, ramp.elevations[-1] + span, 1_000_000).astype(np.float32)
    return np.concatenate([near_stops, dense, edges, np.nextafter(edges, np.inf), np.nextafter(edges, -np.inf),
                           special, wide])


RAMPS = {
    "training": training_ramp(),
    "fractional": Ramp.from_dict({"stops": [[-12.3, 0, 10, 250], [0.7, 255, 0, 3], [1234.567, 1, 2, 3]],
                                  "below": [9, 9, 9]}),
    "one metre": Ramp.from_dict({"stops": [[0, 0, 0, 0], [1, 255, 255, 255]], "below": [1, 2, 3]}),
    "far from zero": Ramp.from_dict({"stops": [[1e7, 0, 0, 0], [1e7 + 0.5, 255, 128, 7]], "below": [0, 0, 0]}),
}


@pytest.mark.parametrize("name", RAMPS)
def test_table_colours_equal_interpolation(name):
    ramp = RAMPS[name]
    rng = np.random.default_rng(5)
    z = hard_values(ramp, rng)
    sea = rng.random(z.shape) < 0.1
    np.testing.assert_array_equal(ramp.colourise(z), by_definition(ramp, z))
    np.testing.assert_array_equal(ramp.colourise(z, sea=sea), by_definition(ramp, z, sea))
    grid = z[: 1000 * 700].reshape(1000, 700)  # 2-D, as the pipeline calls it, and float64 input
    np.testing.assert_array_equal(ramp.colourise(grid.astype(np.float64)), by_definition(ramp, grid))


def test_the_training_ramp_uses_its_table_and_most_bins_are_plain_lookups():
    table = training_ramp()._table
    assert table is not None and table.exact.mean() < 0.02


@pytest.mark.parametrize("name", RAMPS)
def test_planes_through_levels_equal_the_colours_mapped_after(name):
    """What the pipeline asks for: the model's input (v * scale + offset, float32) straight from the table."""
    ramp = RAMPS[name]
    rng = np.random.default_rng(6)
    z = hard_values(ramp, rng)[: 1200 * 1000].reshape(1200, 1000)
    sea = rng.random(z.shape) < 0.1
    levels = np.arange(256, dtype=np.float32)
    levels *= np.float32(2 / 255)
    levels += np.float32(-1)
    expected = by_definition(ramp, z, sea).transpose(2, 0, 1).astype(np.float32)
    expected *= np.float32(2 / 255)
    expected += np.float32(-1)
    np.testing.assert_array_equal(ramp.colourise_planes(z, sea, levels), expected)
    np.testing.assert_array_equal(ramp.colourise_planes(z), by_definition(ramp, z).transpose(2, 0, 1))
    # Into part of a bigger buffer (the pipeline writes a chip row's new rows below the reused overlap).
    buffer = np.zeros((3, 1200, 1100), np.float32)
    ramp.colourise_planes(z, sea, levels, out=buffer[:, :, 50:1050])
    np.testing.assert_array_equal(buffer[:, :, 50:1050], expected)
    assert not buffer[:, :, :50].any() and not buffer[:, :, 1050:].any()
