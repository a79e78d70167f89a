"""The ramp: elevation -> colour, as the seed data and every model declare it."""

import glob
import os

import numpy as np
import pytest

from terraform_plugin.core.errors import ModelError
from terraform_plugin.core.ramp import Ramp, training_ramp

SEED = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "seed-pairs")


def test_training_ramp_endpoints_and_sea():
    ramp = training_ramp()
    rgb = ramp.colourise(np.array([[-0.01, 0.0, 9000.0, 25000.0, np.nan]]))
    assert rgb[0, 0].tolist() == [255, 255, 255]  # below 0 m: sea white
    assert rgb[0, 1].tolist() == [48, 18, 59]  # Turbo's first colour at 0 m
    assert rgb[0, 2].tolist() == [122, 4, 3]  # Turbo's last colour at 9000 m
    assert rgb[0, 3].tolist() == [122, 4, 3]  # above the range saturates, never wraps
    assert rgb[0, 4].tolist() == [255, 255, 255]  # no data reads as sea unless the caller fills it


def test_linear_between_stops_and_sea_mask():
    ramp = Ramp.from_dict({"stops": [[0, 0, 0, 0], [100, 200, 100, 50]], "below": [1, 2, 3]})
    z = np.array([[25.0, 50.0, 75.0]])
    assert ramp.colourise(z).tolist() == [[[50, 25, 12], [100, 50, 25], [150, 75, 38]]]
    sea = np.array([[False, True, False]])
    assert ramp.colourise(z, sea=sea)[0, 1].tolist() == [1, 2, 3]


def test_round_trip_through_metadata_form():
    ramp = training_ramp()
    again = Ramp.from_dict(ramp.to_dict())
    z = np.linspace(-50, 9500, 10_000).reshape(100, 100)
    assert np.array_equal(ramp.colourise(z), again.colourise(z))


@pytest.mark.parametrize(
    "spec, words",
    [
        ({"stops": [[0, 0, 0, 0]], "below": [0, 0, 0]}, "at least two"),
        ({"stops": [[10, 0, 0, 0], [5, 1, 1, 1]], "below": [0, 0, 0]}, "increasing"),
        ({"stops": [[0, 0, 0, 0], [5, 1, 1, 300]], "below": [0, 0, 0]}, "0-255"),
        ({"stops": [[0, 0, 0, 0], [5, 1, 1, 1]], "below": [0, 0]}, "below"),
        ({"stops": [[0, 0, 0, 0], [5, 1, 1, 1]]}, "below"),
        ({"stops": "turbo", "below": [0, 0, 0]}, "stops"),
    ],
)
def test_invalid_ramps_are_refused_with_the_reason(spec, words):
    with pytest.raises(ModelError, match=words):
        Ramp.from_dict(spec)


@pytest.mark.skipif(not os.path.isdir(SEED), reason="../shared/data/seed-pairs is absent")
def test_training_ramp_matches_the_seed_chips():
    """The seed chips are JPEGs of Turbo over 0-9000 m: every land pixel sits near a ramp colour."""
    from PIL import Image

    palette = training_ramp().colourise(np.linspace(0, 9000, 4096)).astype(np.float32)
    distances = []
    for path in sorted(glob.glob(os.path.join(SEED, "ANDES", "*c.jpg")))[:8]:
        chip = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32).reshape(-1, 3)[::7]
        land = ~(chip > 235).all(axis=1)
        d2 = ((chip[land, None, :] - palette[None]) ** 2).sum(-1).min(axis=1)
        distances.append(np.sqrt(d2))
    assert np.median(np.concatenate(distances)) < 3.0  # JPEG noise only (README: ~2.4/255)
