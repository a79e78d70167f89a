"""Running a model on held-out chips as a user runs a place, and the colour guides an evaluation makes.

A contract-1 model takes the chip's colours alone. A contract-2 model is fed what the engine would feed it for
that place: the chip's own latitude (each block centre's, from its region's place, as training computes it),
look "auto", and either no guide (the headline: what a user gets with the DEM alone) or a guide made from the
real image by a ``GuideRecipe``:

- ``guide``: averaged over the model's own ``coarse_px`` cells, colours unchanged: the guide training made;
- ``guide_other``: a coarser average and another colour balance, as a different basemap would give: a model
  that leans on one basemap's exact look scores much worse with it than with ``guide``.

A guide is also scored as a prediction on its own (interpolated back to full resolution): the colours a model
should land near, with none of the detail it should add.
"""

import time
from dataclasses import dataclass

import numpy as np

from terraform_plugin.core.conditioning import latitude_values

from .conditioning import block_centres, interpolate_cells
from .data import Jitter, sample_latitude

# Another basemap's colour balance: a few % warmer and darker in blue than the imagery the model learned from.
OTHER_GAIN = (1.04, 0.98, 0.94)


@dataclass(frozen=True)
class GuideRecipe:
    """How a guide is made from a real image: mean colours over ``cell`` px cells, times ``gain`` per channel."""

    name: str  # what metrics.json calls it (and "model_<name>", the model run with it)
    cell: int
    gain: tuple = (1.0, 1.0, 1.0)

    def describe(self) -> str:
        shift = "" if self.gain == (1.0, 1.0, 1.0) else ", colours x " + "/".join(f"{g:g}" for g in self.gain)
        return f"{self.cell} px cells{shift}"

    def cells(self, image) -> np.ndarray:
        """(ceil(H / cell), ceil(W / cell), 3) float64 0-255: each cell's mean over the pixels it holds (a cell cut
        by the image's edge averages the part inside, as GDAL's average resampling does), colour-shifted."""
        h, w = image.shape[:2]
        c = self.cell
        ny, nx = -(-h // c), -(-w // c)
        padded = np.zeros((ny * c, nx * c, 3))
        weight = np.zeros((ny * c, nx * c, 1))
        padded[:h, :w] = image
        weight[:h, :w] = 1.0
        sums = padded.reshape(ny, c, nx, c, 3).sum(axis=(1, 3))
        counts = weight.reshape(ny, c, nx, c, 1).sum(axis=(1, 3))
        return np.clip(sums / counts * np.asarray(self.gain), 0.0, 255.0)

    def planes(self, image, stride) -> np.ndarray:
        """(3, H / stride, W / stride) 0-255: the guide at the model's plane blocks' centres."""
        h, w = image.shape[:2]
        return interpolate_cells(self.cells(image), self.cell, block_centres(h, stride), block_centres(w, stride))

    def picture(self, image) -> np.ndarray:
        """(H, W, 3) uint8: the guide interpolated at every pixel, as a prediction of the image."""
        h, w = image.shape[:2]
        planes = interpolate_cells(self.cells(image), self.cell, np.arange(h) + 0.5, np.arange(w) + 0.5)
        return np.rint(planes.transpose(1, 2, 0)).astype(np.uint8)


def guide_recipes(coarse_px, other_cell=None) -> list:
    """The guide training makes (the model's ``coarse_px``) and one made differently (``other_cell`` px, default
    twice as coarse, colours shifted by OTHER_GAIN)."""
    other = int(other_cell or 2 * coarse_px)
    return [GuideRecipe("guide", int(coarse_px)), GuideRecipe("guide_other", other, OTHER_GAIN)]


def chip_planes(model, lat_deg, guide=None) -> dict:
    """{kind: (N, channels, h, w) float32}: the planes a contract-2 model is fed, as the engine fills them.

    ``lat_deg`` (N, h, w) degrees at the block centres; ``guide`` (N, 3, h, w) 0-255 or None (no guide); look
    always "auto" (all zero), what a user who picks no look gets."""
    meta = model.metadata
    n, h, w = lat_deg.shape
    scale, offset = model.input_scaling
    planes = {}
    for spec in meta.inputs:
        if spec.kind == "latitude":
            planes["latitude"] = latitude_values(lat_deg, spec.options)[:, None]
        elif spec.kind == "guide_rgb":
            planes["guide_rgb"] = (np.zeros((n, 3, h, w), np.float32) if guide is None
                                   else (guide * scale + offset).astype(np.float32))
        elif spec.kind == "guide_mask":
            planes["guide_mask"] = np.full((n, 1, h, w), 0.0 if guide is None else 1.0, np.float32)
        elif spec.kind == "look":
            planes["look"] = np.zeros((n, spec.channels, h, w), np.float32)
    return planes


class ChipRunner:
    """``predict(pairs, elevation, real)`` -> {source: (N, T, T, 3) uint8} for a batch of one region's chips.

    Sources: "model" (contract 1: the chip alone; contract 2: latitude, look auto, no guide), and for a
    contract-2 model that takes a guide, "model_<recipe>" (the model with that guide) and "<recipe>" (the guide
    itself). ``model_seconds`` times the headline "model" calls only, so the figure compares across contracts.
    """

    def __init__(self, model, places=None, recipes=()):
        self.model = model
        meta = model.metadata
        self.conditioned = meta.tiling_independent
        self.guided = self.conditioned and meta.plane("guide_rgb") is not None
        self.recipes = list(recipes) if self.guided else []
        self.places = places or {}
        self.model_seconds = 0.0

    @property
    def sources(self) -> list:
        return ["model"] + [s for r in self.recipes for s in (f"model_{r.name}", r.name)]

    def latitudes(self, pairs) -> np.ndarray:
        stride = self.model.metadata.plane_stride
        return np.stack([sample_latitude(self.places[p.region], p, Jitter(), stride) for p in pairs])

    def predict(self, pairs, elevation, real) -> dict:
        def run(planes=None):
            return np.rint(self.model.predict(elevation, planes)).astype(np.uint8)

        t0 = time.perf_counter()
        if not self.conditioned:
            out = {"model": run()}
            self.model_seconds += time.perf_counter() - t0
            return out
        lat = self.latitudes(pairs)
        out = {"model": run(chip_planes(self.model, lat))}
        self.model_seconds += time.perf_counter() - t0
        stride = self.model.metadata.plane_stride
        for recipe in self.recipes:
            guide = np.stack([recipe.planes(r, stride) for r in real])
            out[f"model_{recipe.name}"] = run(chip_planes(self.model, lat, guide))
            out[recipe.name] = np.stack([recipe.picture(r) for r in real])
        return out
