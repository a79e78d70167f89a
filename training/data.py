"""Paired chips in the seed layout and the paired jitter.

A dataset folder holds region folders of ``<row>,<col>c.jpg`` (colourised elevation) and
``<row>,<col>.jpg`` (satellite) chips. Validation takes whole regions: neighbouring chips of one region
share terrain and light, so random chips of a training region would flatter the model.
"""

import os
import re
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from terraform_plugin.core.schema import MODEL_RANGE

LOW, HIGH = MODEL_RANGE

CHIP = 256
LOAD = 286  # the paper's jitter: resize to 286, crop a random 256
_CHIP_NAME = re.compile(r"^(\d+),(\d+)c\.jpg$")


@dataclass(frozen=True)
class Pair:
    region: str
    row: int
    col: int
    elevation: str  # path of the colourised elevation chip
    satellite: str


def _region_pairs(folder):
    region = os.path.basename(os.path.normpath(folder))
    pairs = []
    for name in os.listdir(folder):
        m = _CHIP_NAME.match(name)
        if not m:
            continue
        sat = os.path.join(folder, f"{m[1]},{m[2]}.jpg")
        if os.path.isfile(sat):  # an elevation chip without imagery is not a pair
            pairs.append(Pair(region, int(m[1]), int(m[2]), os.path.join(folder, name), sat))
    return sorted(pairs, key=lambda p: (p.row, p.col))


def find_pairs(dirs, regions=None):
    """All pairs under ``dirs``; each is a region folder or a folder of region folders.

    Sorted by (region, row, col) so every run sees the same order whatever the filesystem returns.
    """
    found = []
    for d in dirs:
        if not os.path.isdir(d):
            raise FileNotFoundError(f"data folder not found: {d}")
        direct = _region_pairs(d)
        if direct:
            found += direct
        else:
            for sub in sorted(os.listdir(d)):
                if os.path.isdir(os.path.join(d, sub)):
                    found += _region_pairs(os.path.join(d, sub))
    if regions is not None:
        wanted = {r.upper() for r in regions}
        found = [p for p in found if p.region.upper() in wanted]
    if not found:
        raise FileNotFoundError(f"no <row>,<col>c.jpg + <row>,<col>.jpg pairs under {', '.join(map(str, dirs))}")
    return sorted(found, key=lambda p: (p.region, p.row, p.col))


def split_by_region(pairs, val_regions):
    """(train, val) with whole regions held out; unknown region names are an error, not a silent no-op."""
    val = {r.upper() for r in val_regions or ()}
    known = {p.region.upper() for p in pairs}
    unknown = sorted(val - known)
    if unknown:
        raise ValueError(f"--val-regions {', '.join(unknown)} not in the data (regions: {', '.join(sorted(known))})")
    train = [p for p in pairs if p.region.upper() not in val]
    if not train:
        raise ValueError("every region is held out for validation; nothing left to train on")
    return train, [p for p in pairs if p.region.upper() in val]


def load_rgb(path) -> Image.Image:
    """The chip at ``path`` as RGB; OSError naming the file when it is truncated or not an image."""
    try:
        with Image.open(path) as im:
            return im.convert("RGB")
    except FileNotFoundError:
        raise
    except OSError as exc:  # PIL's "image file is truncated" does not say which file
        raise OSError(f"chip {path} is truncated or damaged and cannot be decoded ({exc})") from None


def to_tensor(img) -> torch.Tensor:
    """PIL RGB -> float32 CHW in the contract's MODEL_RANGE ([-1, 1])."""
    a = torch.from_numpy(np.asarray(img, dtype=np.uint8).copy()).permute(2, 0, 1).float()
    return a * ((HIGH - LOW) / 255.0) + LOW


def to_uint8(t: torch.Tensor) -> np.ndarray:
    """float CHW (or NCHW) in MODEL_RANGE -> uint8 HWC (NHWC)."""
    a = ((t.detach().float().cpu().clamp(LOW, HIGH) - LOW) * (255.0 / (HIGH - LOW))).round().to(torch.uint8)
    return a.permute(*range(a.dim() - 3), -2, -1, -3).numpy()


@dataclass(frozen=True)
class Jitter:
    """Where a jittered sample came from: the chip scaled by ``scale``, cut at (top, left), maybe mirrored."""

    top: float = 0.0
    left: float = 0.0
    scale: float = 1.0
    flipped: bool = False


def paired_jitter(elevation, satellite, rng: np.random.Generator, load=LOAD, size=CHIP, with_geometry=False):
    """Resize both to ``load``, then ONE crop offset and ONE flip decision applied to both images.

    Drawing them once per pair is the point: the seed flipped the two images independently, teaching
    the generator to put mountains where the ramp says valleys. ``with_geometry`` also returns the Jitter
    (the conditioning planes follow the crop).
    """
    source_side = elevation.size[0]
    elevation = elevation.resize((load, load), Image.BICUBIC)
    satellite = satellite.resize((load, load), Image.BICUBIC)
    top, left = (int(v) for v in rng.integers(0, load - size + 1, size=2))
    box = (left, top, left + size, top + size)
    elevation, satellite = elevation.crop(box), satellite.crop(box)
    flipped = bool(rng.random() < 0.5)
    if flipped:
        elevation = elevation.transpose(Image.FLIP_LEFT_RIGHT)
        satellite = satellite.transpose(Image.FLIP_LEFT_RIGHT)
    if with_geometry:
        return elevation, satellite, Jitter(top, left, load / source_side, flipped)
    return elevation, satellite


def sample_latitude(geo, pair, jitter: Jitter, stride, size=CHIP) -> np.ndarray:
    """Degrees at the centres of the sample's stride x stride blocks, from the region's place (regions.RegionGeo)."""
    from .conditioning import block_centres

    rows = pair.row + block_centres(size, stride, jitter.top, jitter.scale)
    cols = pair.col + block_centres(size, stride, jitter.left, jitter.scale)
    if jitter.flipped:
        cols = cols[::-1]
    return geo.latitude(rows[:, None], cols[None, :])


class PairDataset(torch.utils.data.Dataset):
    """Pairs as (elevation, satellite) tensors in [-1, 1], and (contract 2) their conditioning planes.

    With ``jitter``, the random draws come from a generator seeded by (seed, epoch, index): the same
    sample gets the same jitter whatever worker loads it, which is what lets a resumed run match an
    uninterrupted one exactly.

    ``conditioning`` = (ConditioningSpec, {region id: regions.RegionGeo}) adds a third tensor, the sample's
    ``cond`` planes: in training (``jitter``) with the look and guide dropped at random (``training_cond``);
    otherwise as a user runs a held-out place: its latitude, look "auto" unless ``look`` says the region's
    own, and a guide only when ``guide`` is set.
    """

    def __init__(self, pairs, jitter=False, seed=0, conditioning=None, look=False, guide=False):
        self.pairs = list(pairs)
        self.jitter = jitter
        self.seed = seed
        self.epoch = 0
        self.conditioning = conditioning
        self.look, self.guide = look, guide

    def __len__(self):
        return len(self.pairs)

    def __getitem__(self, index):
        pair = self.pairs[index]
        elevation, satellite = load_rgb(pair.elevation), load_rgb(pair.satellite)
        if elevation.size != (CHIP, CHIP) or satellite.size != (CHIP, CHIP):
            raise ValueError(f"{pair.elevation}: chips must be {CHIP}x{CHIP}, got {elevation.size} and {satellite.size}")
        geometry = Jitter()
        rng = np.random.default_rng([self.seed, self.epoch, index])
        if self.jitter:
            elevation, satellite, geometry = paired_jitter(elevation, satellite, rng, with_geometry=True)
        if self.conditioning is None:
            return to_tensor(elevation), to_tensor(satellite)
        return to_tensor(elevation), to_tensor(satellite), torch.from_numpy(self.cond(pair, satellite, geometry, rng))

    def cond(self, pair, satellite, geometry, rng):
        from .conditioning import guide_planes, make_cond, training_cond

        spec, places = self.conditioning
        lat = sample_latitude(places[pair.region], pair, geometry, spec.stride)
        image = np.asarray(satellite, dtype=np.uint8)
        if self.jitter:
            return training_cond(spec, lat, image, pair.region, rng)
        guide = guide_planes(image, spec.coarse_px, spec.stride) if self.guide else None
        return make_cond(spec, lat, guide, look=pair.region if self.look and pair.region in spec.looks else None)


class EpochSampler(torch.utils.data.Sampler):
    """A seeded permutation per epoch, started at ``start`` (the batches a resumed run already did)."""

    def __init__(self, n, seed, epoch=0, start=0):
        self.n, self.seed, self.epoch, self.start = n, seed, epoch, start

    def __iter__(self):
        g = torch.Generator().manual_seed(self.seed * 100003 + self.epoch)
        return iter(torch.randperm(self.n, generator=g)[self.start :].tolist())

    def __len__(self):
        return self.n - self.start
