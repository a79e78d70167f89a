"""Where each training region is on its planet, and the look it stands for.

A contract-2 generator is told each pixel's latitude and, optionally, a *look*: the training region whose land
cover it should paint. Both come from here.

- The seven seed regions carry no georeference (the seed project published plain JPEG mosaics). Their bounds
  were fitted to landmarks in the mosaics (lakes, coastlines, summits; ``SEED_REGIONS``, method and residuals
  in docs/training.md), with an uncertainty in degrees that is recorded in the dataset's manifest and in the
  model's metadata.
- Regions made by ``training.prepare --dem/--imagery`` come from real GeoTIFFs: the manifest records their
  grid (CRS and geotransform), and every chip pixel's latitude is computed from it exactly.

A region's latitude field maps mosaic pixel coordinates (row, col; 0.5 = a pixel's centre) to degrees.
"""

import math
import os
from dataclasses import dataclass, field

import numpy as np

SEED_RESOLUTION_M = 200.0

# id -> (label a user reads, bounds of the mosaic: top, bottom latitude; left, right longitude; the mosaic's
# side in px; projection the mosaic's rows follow). Fitted to 5-9 landmarks each (summits, lake centroids,
# capes; docs/region_bounds.json): the mosaics are plain latitude/longitude grids, 200 m per pixel north-south
# (rms residuals 0.4-1.4 km, about the landmarks' own accuracy; Web Mercator leaves 2.6-6 km), each with its
# bottom-left corner on whole degrees. Uncertainty = max(0.01 deg, 2 x rms).
SEED_REGIONS = {
    "ANDES": {"label": "Bolivian Altiplano — arid high plateau and salt flats",
        "top_lat": -13.1008, "bottom_lat": -19.9998, "left_lon": -72.0025, "right_lon": -64.6456,
        "side_px": 3840, "projection": "equirectangular", "uncertainty_deg": 0.01},
    "CALI": {"label": "California and Nevada — dry valleys, sierra and desert",
        "top_lat": 39.5194, "bottom_lat": 34.0002, "left_lon": -122.0092, "right_lon": -115.3309,
        "side_px": 3072, "projection": "equirectangular", "uncertainty_deg": 0.01},
    "ITALY": {"label": "Northern Italy — Alps, Po plain and green Apennines",
        "top_lat": 46.5217, "bottom_lat": 41.0025, "left_lon": 6.9901, "right_lon": 14.3235,
        "side_px": 3072, "projection": "equirectangular", "uncertainty_deg": 0.024},
    "NEPAL": {"label": "Central Himalaya — monsoon foothills below the high plateau",
        "top_lat": 30.8974, "bottom_lat": 23.9983, "left_lon": 80.0065, "right_lon": 87.5592,
        "side_px": 3840, "projection": "equirectangular", "uncertainty_deg": 0.01},
    "RI": {"label": "North-eastern USA — temperate forest, farmland and lakes",
        "top_lat": 45.5172, "bottom_lat": 39.9980, "left_lon": -78.0082, "right_lon": -70.7830,
        "side_px": 3072, "projection": "equirectangular", "uncertainty_deg": 0.01},
    "SICHUAN": {"label": "Hengduan mountains — forested gorges below snowy ranges",
        "top_lat": 32.5108, "bottom_lat": 26.9916, "left_lon": 98.0002, "right_lon": 104.1898,
        "side_px": 3072, "projection": "equirectangular", "uncertainty_deg": 0.015},
    "TANZANIA": {"label": "East African highlands — savanna, rift and volcanoes",
        "top_lat": 1.8951, "bottom_lat": -5.0040, "left_lon": 33.0080, "right_lon": 39.9277,
        "side_px": 3840, "projection": "equirectangular", "uncertainty_deg": 0.011},
}


def _mercator_y(lat):
    return np.log(np.tan(np.pi / 4 + np.radians(lat) / 2))


def _mercator_lat(y):
    return np.degrees(2 * np.arctan(np.exp(y)) - np.pi / 2)


@dataclass(frozen=True)
class RegionGeo:
    """A region's place: its look and a map from mosaic pixels to latitude."""

    id: str
    label: str
    top_lat: float = None  # bounds form (seed mosaics)
    bottom_lat: float = None
    side_px: int = None
    projection: str = "equirectangular"
    uncertainty_deg: float = 0.0
    grid: dict = field(default=None, compare=False)  # grid form: {"wkt", "geotransform"} (prepared regions)

    def latitude(self, rows, cols) -> np.ndarray:
        """Degrees at mosaic pixel coordinates ``rows``, ``cols`` (arrays, broadcast; pixel centres at +0.5)."""
        rows, cols = np.broadcast_arrays(np.asarray(rows, np.float64), np.asarray(cols, np.float64))
        if self.grid is not None:
            return _grid_latitude(self.grid, rows, cols)
        t = rows / self.side_px
        if self.projection == "webmercator":
            top, bottom = _mercator_y(self.top_lat), _mercator_y(self.bottom_lat)
            return _mercator_lat(top + (bottom - top) * t)
        return self.top_lat + (self.bottom_lat - self.top_lat) * t

    def latitude_range(self) -> tuple:
        """(south, north) over the region, in degrees."""
        if self.grid is not None:
            h, w = self.grid["height"], self.grid["width"]
            r, c = np.meshgrid(np.linspace(0, h, 9), np.linspace(0, w, 9), indexing="ij")
            lat = self.latitude(r, c)
            return float(lat.min()), float(lat.max())
        return min(self.top_lat, self.bottom_lat), max(self.top_lat, self.bottom_lat)

    def describe(self) -> dict:
        """What the manifest and the model's metadata record of it."""
        south, north = self.latitude_range()
        out = {"id": self.id, "label": self.label, "latitude_deg": [round(south, 3), round(north, 3)]}
        if self.grid is None:
            out["latitude_uncertainty_deg"] = self.uncertainty_deg
        return out


def _grid_latitude(grid, rows, cols):
    from osgeo import osr

    srs = osr.SpatialReference()
    srs.ImportFromWkt(grid["wkt"])
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    geographic = srs.CloneGeogCS()
    geographic.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    gt = grid["geotransform"]
    x = gt[0] + cols * gt[1] + rows * gt[2]
    y = gt[3] + cols * gt[4] + rows * gt[5]
    if srs.IsGeographic():
        return y
    points = np.stack([x.ravel(), y.ravel()], axis=1)
    out = np.asarray(osr.CoordinateTransformation(srs, geographic).TransformPoints(points))
    return out[:, 1].reshape(rows.shape)


def seed_region(region_id) -> RegionGeo:
    spec = SEED_REGIONS[region_id]
    return RegionGeo(region_id, spec["label"], spec["top_lat"], spec["bottom_lat"], spec["side_px"],
                     spec["projection"], spec["uncertainty_deg"])


def region_geo(region_id, manifest_entry=None) -> RegionGeo:
    """The place of ``region_id``: from its manifest entry (a prepared region's grid, or bounds written there),
    else the seed table; SystemExit when neither knows it (a region needs a latitude to train a contract-2
    model)."""
    entry = manifest_entry or {}
    label = entry.get("label") or SEED_REGIONS.get(region_id, {}).get("label") or region_id
    if entry.get("grid"):
        return RegionGeo(region_id, label, grid=entry["grid"])
    if "top_lat" in entry:
        return RegionGeo(region_id, label, entry["top_lat"], entry["bottom_lat"], entry["side_px"],
                         entry.get("projection", "equirectangular"), entry.get("uncertainty_deg", 0.0))
    if region_id in SEED_REGIONS:
        return seed_region(region_id)
    raise SystemExit(f"region {region_id}: its place on the planet is unknown (no grid or bounds in the dataset's "
                     "manifest.json); make it with `training.prepare --dem ... --imagery ...`, which records it")


def dataset_regions(folders) -> dict:
    """id -> RegionGeo for every region the manifests under ``folders`` describe, plus the seed regions."""
    from .prepare import MANIFEST, read_manifest

    found = {}
    for folder in folders:
        path = os.path.join(folder, MANIFEST)
        if os.path.isfile(path):
            for region_id, entry in read_manifest(path)["regions"].items():
                found[region_id] = region_geo(region_id, entry)
    return found


def latitude_step_deg(resolution_m=SEED_RESOLUTION_M) -> float:
    """Degrees of latitude per pixel at ``resolution_m`` on Earth (mean meridional degree, 111.2 km)."""
    return resolution_m / (math.pi * 6371008.8 / 180.0)
