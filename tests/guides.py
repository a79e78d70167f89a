"""Colour guides for the tests: true-colour rasters whose colours are known functions of longitude and latitude,
and the XYZ tiles a web map layer would serve (written here, read through file://: there is no network).

The guide is EPSG:4326 at 0.01° over 14.5-16.7°E, 40.2-42.2°N: red rises 1 DN per pixel eastwards, green 1 DN
per pixel southwards, blue is 100. Averaged over cells of a few kilometres and interpolated between cell
centres, a linear field stays itself, so the colour a model is fed at any point is known without the engine.
"""

import os

import numpy as np
from osgeo import gdal, osr
from pyproj import CRS, Transformer  # an independent reference for where points lie (tests only)

GT = (14.5, 0.01, 0.0, 42.2, 0.0, -0.01)
SIZE = (220, 200)  # columns, rows
BLUE = 100
WEB_MERCATOR_HALF = 20037508.342789244


def red_at(lon):
    return 20.0 + (np.asarray(lon) - GT[0]) / GT[1] - 0.5


def green_at(lat):
    return 20.0 + (GT[3] - np.asarray(lat)) / -GT[5] - 0.5


def colours(cols=SIZE[0]):
    """(3, rows, cols) uint8 of the guide, its first ``cols`` columns (a guide stopping short of the DEM)."""
    rows = SIZE[1]
    red = np.broadcast_to(20 + np.arange(cols), (rows, cols))
    green = np.broadcast_to((20 + np.arange(rows))[:, None], (rows, cols))
    return np.stack([red, green, np.full((rows, cols), BLUE)]).astype(np.uint8)


def box(lon0, lon1, lat0, lat1):
    """(row slice, column slice) of the guide's pixels inside a lon/lat box."""
    c0, c1 = (np.array([lon0, lon1]) - GT[0]) / GT[1]
    r0, r1 = (GT[3] - np.array([lat1, lat0])) / -GT[5]
    return slice(int(round(r0)), int(round(r1))), slice(int(round(c0)), int(round(c1)))


def write(path, bands=None, crs="EPSG:4326", gt=GT, nodata=None, dtype=None):
    """A GeoTIFF of ``bands`` (default: the whole guide); ``nodata`` on every band."""
    bands = colours() if bands is None else np.asarray(bands)
    if dtype is not None:
        bands = bands.astype(dtype)
    kind = {np.dtype(np.uint8): gdal.GDT_Byte, np.dtype(np.uint16): gdal.GDT_UInt16}[bands.dtype]
    ds = gdal.GetDriverByName("GTiff").Create(str(path), bands.shape[2], bands.shape[1], len(bands), kind)
    ds.SetGeoTransform(gt)
    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    ds.SetProjection(srs.ExportToWkt())
    for i, band in enumerate(bands, start=1):
        if nodata is not None:
            ds.GetRasterBand(i).SetNoDataValue(nodata)
        ds.GetRasterBand(i).WriteArray(band)
    ds = None
    return str(path)


def lonlat(crs, xs, ys):
    """Longitude and latitude of CRS coordinates (pyproj, traditional x/y order)."""
    return Transformer.from_crs(CRS(crs), CRS("EPSG:4326"), always_xy=True).transform(xs, ys)


def block_centres(gt, width, height, stride=8):
    """CRS coordinates (x, y), each (height // stride, width // stride), of the stride x stride blocks' centres
    of a raster with geotransform ``gt``."""
    u = stride * (np.arange(width // stride) + 0.5)
    v = stride * (np.arange(height // stride) + 0.5)
    return np.meshgrid(gt[0] + u * gt[1], gt[3] + v * gt[5])


def write_xyz_tiles(folder, source, zooms=(6, 7, 8), bounds=(14.6, 40.3, 16.6, 42.1)):
    """Web Mercator XYZ tiles ({z}/{x}/{y}.png, 256 px, transparent outside ``source``) covering ``bounds``
    (lon/lat) at ``zooms``: what a tile server would give a QGIS XYZ layer. Returns the URL template."""
    to_mercator = osr.CoordinateTransformation(_traditional("EPSG:4326"), _traditional("EPSG:3857"))
    (x_west, y_north), (x_east, y_south) = (to_mercator.TransformPoint(bounds[0], bounds[3])[:2],
                                            to_mercator.TransformPoint(bounds[2], bounds[1])[:2])
    half = WEB_MERCATOR_HALF
    for zoom in zooms:
        size = 2 * half / 2**zoom
        for tx in range(int((x_west + half) // size), int((x_east + half) // size) + 1):
            for ty in range(int((half - y_north) // size), int((half - y_south) // size) + 1):
                left, top = -half + tx * size, half - ty * size
                tile = gdal.Warp("", source, format="MEM", dstSRS="EPSG:3857", width=256, height=256,
                                 outputBounds=(left, top - size, left + size, top), resampleAlg="average",
                                 dstAlpha=True)
                os.makedirs(os.path.join(folder, str(zoom), str(tx)), exist_ok=True)
                gdal.Translate(os.path.join(folder, str(zoom), str(tx), f"{ty}.png"), tile, format="PNG")
    return f"file://{folder}/{{z}}/{{x}}/{{y}}.png"


def _traditional(crs):
    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs
