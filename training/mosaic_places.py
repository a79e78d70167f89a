"""A seed mosaic put back on its place on Earth: georeference, GeoTIFFs, and rasters warped onto another's grid.

The seed mosaics are plain JPEGs, but each is an equirectangular latitude/longitude grid whose bounds were
fitted to landmarks (``regions.SEED_REGIONS``; regions of a dataset's manifest.json may carry the same
``top_lat``/``bottom_lat``/``left_lon``/``right_lon`` bounds, or the ``grid`` of the GeoTIFFs they were prepared
from). Written as GeoTIFFs with that georeference, the elevation runs through the engine as a user's DEM would
(resampled to the model's ground pixels, latitude from the georeference), and the real mosaic, warped onto the
output's grid with the engine's own resampling, is what the output is compared with.
"""

import os

import numpy as np
from osgeo import gdal, osr

from .regions import SEED_REGIONS

# The engine resamples the DEM bilinearly onto its grid (core.source.ResampledSource): the real image follows.
RESAMPLING = "bilinear"


def _wgs84_wkt() -> str:
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(4326)
    return srs.ExportToWkt()


def manifest_entries(folders) -> dict:
    """{region: manifest entry} from the manifest.json of each dataset folder that has one."""
    from .prepare import MANIFEST, read_manifest

    found = {}
    for folder in folders or []:
        path = os.path.join(folder, MANIFEST)
        if os.path.isfile(path):
            found.update(read_manifest(path)["regions"])
    return found


def mosaic_georeference(region, shape, entries=None):
    """(wkt, geotransform) of ``region``'s whole mosaic of ``shape`` (rows, cols), or None with no bounds known.

    A manifest entry (``entries``) wins over the seed table: a prepared region's ``grid`` (scaled when the mosaic
    is not at the grid's size), else equirectangular bounds, top-left corner at (left_lon, top_lat)."""
    entry = (entries or {}).get(region) or SEED_REGIONS.get(region) or {}
    h, w = shape[:2]
    grid = entry.get("grid")
    if grid:
        gt = list(grid["geotransform"])
        sx, sy = grid.get("width", w) / w, grid.get("height", h) / h
        return grid["wkt"], (gt[0], gt[1] * sx, gt[2] * sy, gt[3], gt[4] * sx, gt[5] * sy)
    if not all(k in entry for k in ("top_lat", "bottom_lat", "left_lon", "right_lon")):
        return None
    top, bottom, left, right = (float(entry[k]) for k in ("top_lat", "bottom_lat", "left_lon", "right_lon"))
    return _wgs84_wkt(), (left, (right - left) / w, 0.0, top, 0.0, -(top - bottom) / h)


def write_geotiff(path, bands, georeference, data_type=gdal.GDT_Byte):
    """``bands`` (H, W) or (H, W, B) -> a tiled GeoTIFF at ``georeference`` (wkt, geotransform)."""
    bands = bands[..., None] if bands.ndim == 2 else bands
    ds = gdal.GetDriverByName("GTiff").Create(str(path), bands.shape[1], bands.shape[0], bands.shape[2], data_type,
                                              ["TILED=YES", "COMPRESS=DEFLATE"])
    wkt, gt = georeference
    ds.SetProjection(wkt)
    ds.SetGeoTransform(tuple(gt))
    for b in range(bands.shape[2]):
        ds.GetRasterBand(b + 1).WriteArray(bands[..., b])
    if bands.shape[2] == 3:
        for b, interp in enumerate((gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand)):
            ds.GetRasterBand(b + 1).SetColorInterpretation(interp)
    ds = None
    return str(path)


def write_guide(path, real, georeference, recipe):
    """The guide ``recipe`` makes of the real mosaic, as a GeoTIFF of its cells (a user's coarse basemap)."""
    wkt, gt = georeference
    c = recipe.cell
    cells = np.rint(recipe.cells(real)).astype(np.uint8)
    return write_geotiff(path, cells, (wkt, (gt[0], gt[1] * c, gt[2] * c, gt[3], gt[4] * c, gt[5] * c)))


class OutputGrid:
    """The grid of a raster the engine wrote: rasters are warped onto it to be compared pixel for pixel."""

    def __init__(self, path):
        ds = gdal.Open(str(path))
        self.width, self.height = ds.RasterXSize, ds.RasterYSize
        self.wkt, self.geotransform = ds.GetProjection(), ds.GetGeoTransform()
        self.metadata = ds.GetMetadata()
        self.rgba = np.stack([ds.GetRasterBand(b + 1).ReadAsArray() for b in range(ds.RasterCount)], -1)
        ds = None

    def warp(self, path, resampling=RESAMPLING) -> np.ndarray:
        """(H, W, bands + 1) of ``path`` on this grid; the last band is 255 where it has data, 0 outside it."""
        x0, dx, _, y0, _, dy = self.geotransform
        bounds = (x0, y0 + dy * self.height, x0 + dx * self.width, y0)
        ds = gdal.Warp("", str(path), format="MEM", outputBounds=bounds, width=self.width, height=self.height,
                       dstSRS=self.wkt, resampleAlg=resampling, dstAlpha=True)
        if ds is None:
            raise RuntimeError(f"cannot warp {path} onto the output's grid: {gdal.GetLastErrorMsg()}")
        out = np.stack([ds.GetRasterBand(b + 1).ReadAsArray() for b in range(ds.RasterCount)], -1)
        ds = None
        return out

    def tiles(self) -> tuple:
        """(stride_y, stride_x) of the engine's kept tile centres from the grid's origin, from the output's tags;
        None when it blended fixed chips (a contract-1 model) or says nothing."""
        tile, margin = self.metadata.get("TERRAFORM_TILE"), self.metadata.get("TERRAFORM_MARGIN")
        if not tile or margin is None:
            return None
        w, _, h = tile.partition("x")
        return int(h or w) - 2 * int(margin), int(w) - 2 * int(margin)


def common_window(*valid) -> tuple:
    """(y0, y1, x0, x1): the largest-looking rectangle where every mask in ``valid`` is true: the rows and columns
    mostly valid, then edges trimmed one line at a time (the worst first) until none is missing (a warp or a grid's
    rounding leaves thin empty edges); ValueError when nothing is left."""
    both = np.logical_and.reduce(valid)
    rows, cols = np.flatnonzero(both.mean(axis=1) > 0.5), np.flatnonzero(both.mean(axis=0) > 0.5)
    if not len(rows) or not len(cols):
        raise ValueError("the output and the real mosaic do not overlap")
    y0, y1, x0, x1 = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    while y0 < y1 and x0 < x1:
        window = both[y0:y1, x0:x1]
        if window.all():
            return y0, y1, x0, x1
        missing = {"top": (~window[0]).sum() / window.shape[1], "bottom": (~window[-1]).sum() / window.shape[1],
                   "left": (~window[:, 0]).sum() / window.shape[0], "right": (~window[:, -1]).sum() / window.shape[0]}
        side = max(missing, key=missing.get)
        y0, y1, x0, x1 = (y0 + (side == "top"), y1 - (side == "bottom"), x0 + (side == "left"), x1 - (side == "right"))
    raise ValueError("the output and the real mosaic share no complete rectangle")
