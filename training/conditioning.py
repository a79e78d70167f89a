"""The conditioning planes a contract-2 generator sees in training, made exactly as the plugin's engine makes them.

Channel layout of the ``cond`` tensor (C, H/stride, W/stride), fixed so that looks added later (a user's own
region, fine-tuned) append channels instead of moving them:

    0       latitude   |lat| / 90, clamped to the training range           (ONNX input "latitude")
    1 - 3   guide_rgb  the target image area-averaged over coarse cells     (ONNX input "guide_rgb")
    4       guide_mask 1 where the guide has data                           (ONNX input "guide_mask")
    5 ...   look       one-hot over the model's looks, all zero = "auto"    (ONNX input "look")

Training drops the look (to "auto") and the guide (to no guide) for a share of the samples each, so one model
answers with and without either. The guide is the training target itself, averaged over cells of 16-64 px
(random) and colour-shifted by what different basemaps differ by: it carries a palette, never the texture.
"""

from dataclasses import dataclass

import numpy as np

from terraform_plugin.core.schema import MODEL_RANGE

LOW, HIGH = MODEL_RANGE
STRIDE = 8  # the planes' pixel is 8 x 8 image pixels (1.6 km at 200 m): palette, not texture
COARSE_PX = 32  # the guide's cell that the model declares: 6.4 km at 200 m
COARSE_CHOICES = (16, 32, 32, 64)  # jitter of the cell size in training (32 twice as likely)
LATITUDE_SCALE = 1.0 / 90.0
FIXED_CHANNELS = 5  # latitude, guide RGB, guide mask
LOOK_AUTO_SHARE = 0.35
GUIDE_OFF_SHARE = 0.35
GUIDE_HOLE_SHARE = 0.15  # samples whose guide misses a rectangle (partial coverage)


@dataclass(frozen=True)
class ConditioningSpec:
    looks: tuple  # look ids, in channel order
    latitude_range: tuple  # (low, high) of |latitude| in degrees, what the model was trained on
    stride: int = STRIDE
    coarse_px: int = COARSE_PX

    @property
    def channels(self) -> int:
        return FIXED_CHANNELS + len(self.looks)

    def look_index(self, look_id):
        return self.looks.index(look_id) if look_id in self.looks else None

    def onnx_inputs(self, ramp_name="dem_rgb") -> list:
        """The contract-2 ``inputs`` declaration, in the ONNX input order (see training.export)."""
        return [
            {"name": ramp_name, "kind": "ramp_rgb", "channels": 3},
            {"name": "latitude", "kind": "latitude", "channels": 1, "absolute": True, "scale": LATITUDE_SCALE,
             "range_deg": [float(self.latitude_range[0]), float(self.latitude_range[1])]},
            {"name": "guide_rgb", "kind": "guide_rgb", "channels": 3, "coarse_px": self.coarse_px},
            {"name": "guide_mask", "kind": "guide_mask", "channels": 1},
            {"name": "look", "kind": "look", "channels": len(self.looks)},
        ]

    def split(self, cond):
        """The ONNX inputs (latitude, guide_rgb, guide_mask, look) as slices of a cond tensor (N, C, h, w)."""
        return cond[:, 0:1], cond[:, 1:4], cond[:, 4:5], cond[:, 5:]


def block_centres(size, stride, offset=0.0, scale=1.0):
    """Coordinates (in the source image's pixels) of the centres of the stride x stride blocks of an image of
    ``size`` px that was cut at ``offset`` from a version of the source scaled by ``scale``."""
    return (offset + stride * (np.arange(size // stride) + 0.5)) / scale


def latitude_plane(lat_deg, spec: ConditioningSpec) -> np.ndarray:
    """Degrees -> the plane's values: |lat| clamped to the trained range, scaled (as the engine does)."""
    low, high = spec.latitude_range
    return (np.clip(np.abs(lat_deg), low, high) * LATITUDE_SCALE).astype(np.float32)


def area_average(img, cell):
    """(H, W, 3) -> (H/cell, W/cell, 3) float64 means of whole cells (H and W multiples of ``cell``)."""
    h, w = img.shape[:2]
    return img.reshape(h // cell, cell, w // cell, cell, -1).mean(axis=(1, 3))


def interpolate_cells(cells, cell, centres_y, centres_x):
    """Bilinear between cell centres, clamped at the outer centres, at image coordinates (y, x) -> (C, h, w)."""
    n_y, n_x = cells.shape[:2]
    u = np.clip(centres_y / cell - 0.5, 0, n_y - 1)
    v = np.clip(centres_x / cell - 0.5, 0, n_x - 1)
    y0, x0 = np.floor(u).astype(int), np.floor(v).astype(int)
    y1, x1 = np.minimum(y0 + 1, n_y - 1), np.minimum(x0 + 1, n_x - 1)
    fy, fx = (u - y0)[:, None, None], (v - x0)[None, :, None]
    top = cells[y0][:, x0] * (1 - fx) + cells[y0][:, x1] * fx
    bottom = cells[y1][:, x0] * (1 - fx) + cells[y1][:, x1] * fx
    return (top * (1 - fy) + bottom * fy).transpose(2, 0, 1)


def guide_planes(satellite, cell, stride, rng=None):
    """The guide an engine would make from ``satellite`` (H, W, 3 uint8): cells of ``cell`` px averaged,
    interpolated at the stride-block centres; with ``rng``, colour-shifted like another basemap. -> (3, h, w) 0-255."""
    h, w = satellite.shape[:2]
    cells = area_average(satellite.astype(np.float64), cell)
    if rng is not None:
        gain = rng.normal(1.0, 0.06, size=3) * rng.normal(1.0, 0.05)
        cells = cells * gain + rng.normal(0.0, 6.0, size=3)
    planes = interpolate_cells(cells, cell, block_centres(h, stride), block_centres(w, stride))
    return np.clip(planes, 0.0, 255.0)


def make_cond(spec: ConditioningSpec, lat_deg, guide=None, guide_mask=None, look=None) -> np.ndarray:
    """The (C, h, w) float32 conditioning of one sample.

    ``lat_deg`` (h, w) degrees; ``guide`` (3, h, w) 0-255 or None (no guide); ``guide_mask`` (h, w) 0/1 or None
    (all valid when there is a guide); ``look`` a look id or None ("auto")."""
    h, w = lat_deg.shape
    cond = np.zeros((spec.channels, h, w), np.float32)
    cond[0] = latitude_plane(lat_deg, spec)
    if guide is not None:
        mask = np.ones((h, w), np.float32) if guide_mask is None else guide_mask.astype(np.float32)
        cond[1:4] = (guide * ((HIGH - LOW) / 255.0) + LOW) * mask
        cond[4] = mask
    index = spec.look_index(look) if look is not None else None
    if look is not None and index is None:
        raise ValueError(f"look {look!r} is not one of {', '.join(spec.looks)}")
    if index is not None:
        cond[FIXED_CHANNELS + index] = 1.0
    return cond


def training_cond(spec: ConditioningSpec, lat_deg, satellite, look, rng) -> np.ndarray:
    """A training sample's conditioning: the look dropped to auto, the guide dropped, holed and jittered at random."""
    look = None if rng.random() < LOOK_AUTO_SHARE else look
    guide = mask = None
    if rng.random() >= GUIDE_OFF_SHARE:
        cell = int(rng.choice(COARSE_CHOICES))
        guide = guide_planes(satellite, cell, spec.stride, rng)
        if rng.random() < GUIDE_HOLE_SHARE:
            h, w = lat_deg.shape
            mask = np.ones((h, w), np.float32)
            y0, x0 = (int(v) for v in rng.integers(0, [h, w]))
            y1, x1 = (int(v) for v in rng.integers([y0 + 1, x0 + 1], [h + 1, w + 1]))
            mask[y0:y1, x0:x1] = 0.0
    return make_cond(spec, lat_deg, guide, mask, look)


def conditioning_of(state, folders=None):
    """(ConditioningSpec, {region: RegionGeo}) of a checkpoint (None for a contract-1 generator)."""
    from .regions import dataset_regions, region_geo

    record = state.get("conditioning")
    if not record:
        return None
    spec = ConditioningSpec(tuple(lk["id"] for lk in record["looks"]), tuple(record["latitude_range"]),
                            record.get("stride", STRIDE), record.get("coarse_px", COARSE_PX))
    known = dataset_regions(folders or state.get("args", {}).get("data") or [])
    places = {r: known.get(r) or region_geo(r, info) for r, info in record.get("regions", {}).items()}
    return spec, places
