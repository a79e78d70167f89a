import numpy as np
import pytest
import torch
from PIL import Image

from training.data import PairDataset, find_pairs, paired_jitter, split_by_region

PERM = [2, 0, 1]


def asymmetric_pair():
    """An image no flip or shift maps onto itself, and its 'satellite': the same pixels, channels permuted.

    Resizing, cropping and flipping act on each channel alike, so an aligned pair stays exactly
    sat == elev[..., PERM]; any difference in crop or flip between the two breaks the equality.
    """
    y, x = np.mgrid[0:256, 0:256]
    elev = np.stack([x, y, (x * y) // 256 + (x > 200) * 60], -1).clip(0, 255).astype(np.uint8)
    return Image.fromarray(elev), Image.fromarray(np.ascontiguousarray(elev[..., PERM]))


def test_jitter_moves_both_images_of_a_pair_together():
    elev, sat = asymmetric_pair()
    flips, offsets = set(), set()
    for seed in range(24):
        e, s = paired_jitter(elev, sat, np.random.default_rng(seed))
        e, s = np.asarray(e), np.asarray(s)
        assert e.shape == s.shape == (256, 256, 3)
        np.testing.assert_array_equal(s, e[..., PERM])
        flips.add(bool(e[128, 10, 0] > e[128, 245, 0]))  # red grows left to right unless flipped
        offsets.add(int(e[0, 128, 1]))  # green = row: the crop's top offset
    assert flips == {True, False}, "the jitter never (or always) flips"
    assert len(offsets) > 3, "the crop does not move"


def test_dataset_scaling_and_deterministic_jitter(pairs_dir):
    pairs = find_pairs([pairs_dir])
    ds = PairDataset(pairs, jitter=True, seed=3)
    x, y = ds[1]
    assert x.shape == y.shape == (3, 256, 256) and x.dtype == torch.float32
    assert -1.0 <= x.min() and x.max() <= 1.0
    assert torch.equal(ds[1][0], x)  # same (seed, epoch, index): same jitter, whichever worker loads it
    ds.epoch = 1
    assert not torch.equal(ds[1][0], x)


def test_validation_takes_whole_regions(pairs_dir):
    pairs = find_pairs([pairs_dir])
    assert {p.region for p in pairs} == {"ALPHA", "BETA"}
    train, val = split_by_region(pairs, ["beta"])
    assert {p.region for p in train} == {"ALPHA"} and {p.region for p in val} == {"BETA"}
    assert len(train) + len(val) == len(pairs)
    with pytest.raises(ValueError, match="GAMMA"):
        split_by_region(pairs, ["GAMMA"])
    with pytest.raises(ValueError, match="nothing left"):
        split_by_region(pairs, ["ALPHA", "BETA"])


def test_region_folder_can_be_given_directly(pairs_dir):
    import os

    assert {p.region for p in find_pairs([os.path.join(pairs_dir, "BETA")])} == {"BETA"}


def test_shared_seed_pairs(shared_pairs):
    pairs = find_pairs([shared_pairs])
    assert len(pairs) == 1251
    assert {p.region for p in pairs} == {"ANDES", "CALI", "ITALY", "NEPAL", "RI", "SICHUAN", "TANZANIA"}
