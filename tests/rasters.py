"""Small rasters the tests write themselves: smooth synthetic relief and GeoTIFFs of it, and what an identity
model must make of them (one copy for all test folders; test modules import it, or take the ``kit`` fixture).

``expected`` is the DEM resampled onto the processing grid (core.source, tested on its own in test_source.py)
and colourised: with an identity generator, any seam, shift, darkened edge or lost pixel in the output is the
tiling, blending or writing's fault.
"""

import numpy as np
from osgeo import gdal, osr


def terrain(height, width, seed=0, low=-500.0, high=6000.0):
    """Smooth deterministic relief spanning sea and mountains, different in every chip."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    z = np.zeros((height, width))
    for k in range(1, 6):
        fy, fx, py, px = rng.uniform(0.5, 2.0, 4) * [k, k, 6, 6]
        z += np.sin(2 * np.pi * fy * y / max(height, 64) + py) * np.cos(2 * np.pi * fx * x / max(width, 64) + px) / k
    z = (z - z.min()) / (np.ptp(z) or 1.0)
    return (low + z * (high - low)).astype(np.float32)


def crs_wkt(crs="EPSG:32633"):
    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    return srs.ExportToWkt()


def write_dem(path, z=None, crs="EPSG:32633", pixel=200.0, origin=(500000.0, 4500000.0), nodata=None, bands=None):
    """Float32 GeoTIFF of ``z`` (or of the arrays in ``bands``); ``crs`` is WKT, anything GDAL's
    SetFromUserInput takes, or None for a raster with no CRS."""
    arrays = bands if bands is not None else [z]
    h, w = arrays[0].shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, len(arrays), gdal.GDT_Float32)
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    if crs is not None:
        ds.SetProjection(crs if crs.lstrip().startswith(("GEOG", "PROJ")) else crs_wkt(crs))
    for i, a in enumerate(arrays, start=1):
        if nodata is not None:
            ds.GetRasterBand(i).SetNoDataValue(nodata)
        ds.GetRasterBand(i).WriteArray(np.asarray(a, dtype=np.float32))
    ds = None
    return str(path)


def write_tif(path, bands, epsg=32633, origin=(500000.0, 4600000.0), pixel=100.0, nodata=None, alpha=False):
    """A north-up GeoTIFF of ``bands`` (count, rows, cols), Byte for uint8 else Float32, in EPSG ``epsg``;
    ``alpha`` marks the last band as alpha. For the trainer's prepare tests (DEM and imagery pairs)."""
    bands = np.asarray(bands)
    kind = gdal.GDT_Byte if bands.dtype == np.uint8 else gdal.GDT_Float32
    ds = gdal.GetDriverByName("GTiff").Create(str(path), bands.shape[2], bands.shape[1], len(bands), kind)
    ds.SetGeoTransform((origin[0], pixel, 0.0, origin[1], 0.0, -pixel))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(epsg)
    ds.SetProjection(srs.ExportToWkt())
    for i, band in enumerate(bands, start=1):
        if nodata is not None:
            ds.GetRasterBand(i).SetNoDataValue(nodata)
        ds.GetRasterBand(i).WriteArray(band)
    if alpha:
        ds.GetRasterBand(len(bands)).SetColorInterpretation(gdal.GCI_AlphaBand)
    ds = None
    return str(path)


def transformed_bounds(src_epsg, dst_epsg, x0, y0, x1, y1):
    """(min x, min y, max x, max y) of the rectangle's four corners taken from ``src_epsg`` to ``dst_epsg``
    (x = easting / longitude first)."""
    src, dst = osr.SpatialReference(), osr.SpatialReference()
    src.ImportFromEPSG(src_epsg)
    dst.ImportFromEPSG(dst_epsg)
    src.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    dst.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    t = osr.CoordinateTransformation(src, dst)
    xs, ys = zip(*(t.TransformPoint(x, y)[:2] for x in (x0, x1) for y in (y0, y1)))
    return min(xs), min(ys), max(xs), max(ys)


def overview_levels_of(path):
    """The overview levels of an RGBA GeoTIFF, each (4, rows, columns) uint8."""
    ds = gdal.Open(str(path))
    band = ds.GetRasterBand(1)
    return [
        np.stack([ds.GetRasterBand(b).GetOverview(i).ReadAsArray() for b in range(1, 5)])
        for i in range(band.GetOverviewCount())
    ]


def gdal_average_overviews(path, image):
    """``image`` ((4, rows, columns) uint8 RGBA) written whole to ``path`` as the writer creates its output, the
    overviews by GDAL's own AVERAGE pass: the reference the streamed overviews must equal. Returns its levels."""
    from terraform_plugin.core.writer import CREATION_OPTIONS, overview_levels

    _, height, width = image.shape
    ds = gdal.GetDriverByName("GTiff").Create(str(path), width, height, 4, gdal.GDT_Byte, list(CREATION_OPTIONS))
    assert ds.WriteArray(np.ascontiguousarray(image)) == 0
    assert ds.BuildOverviews("AVERAGE", overview_levels(width, height)) == 0
    ds = None
    return overview_levels_of(path)


def write_photo(path, height=48, width=64, alpha=False, driver="JPEG"):
    """A georeferenced colour photo, as a user might mistake for a DEM: 3 bands of Byte (4 with ``alpha``,
    GeoTIFF only) that GDAL reads as red, green, blue; a world file and the CRS in its .aux.xml for a JPEG."""
    count = 4 if alpha else 3
    mem = gdal.GetDriverByName("MEM").Create("", width, height, count, gdal.GDT_Byte)
    mem.SetGeoTransform((500000.0, 200.0, 0.0, 4500000.0, 0.0, -200.0))
    mem.SetProjection(crs_wkt())
    rng = np.random.default_rng(7)
    for i in range(1, count + 1):
        mem.GetRasterBand(i).WriteArray(rng.integers(0, 256, (height, width), dtype=np.uint8))
    if driver == "JPEG":
        gdal.GetDriverByName("JPEG").CreateCopy(str(path), mem, options=["WORLDFILE=YES"])
    else:
        options = ["PHOTOMETRIC=RGB"] + (["ALPHA=YES"] if alpha else [])
        gdal.GetDriverByName("GTiff").CreateCopy(str(path), mem, options=options)
    return str(path)


# -- what an identity model must reproduce ---------------------------------------------------------------


def grid_elevation(input_path, resolution_m, band=1):
    """(z on the processing grid with NaN for nodata, grid)."""
    from terraform_plugin.core import source
    from terraform_plugin.core.grid import processing_grid

    dataset = gdal.Open(str(input_path))
    grid = processing_grid(dataset, resolution_m)
    return source.ResampledSource(dataset, band, grid).read(0, 0, grid.width, grid.height), grid


def colourised(z, sea_level=0.0, vertical_scale=1.0):
    from terraform_plugin.core.ramp import training_ramp
    from terraform_plugin.core.relief import Relief

    relief = Relief(sea_level, vertical_scale)
    return training_ramp().colourise(relief.ramp_elevation(z), sea=relief.sea_mask(z))


def expected(input_path, resolution_m, sea_level=0.0, vertical_scale=1.0, band=1):
    """(rgb, valid, grid) an identity model must reproduce."""
    z, grid = grid_elevation(input_path, resolution_m, band)
    return colourised(z, sea_level, vertical_scale), np.isfinite(z), grid


def read_rgba(path):
    dataset = gdal.Open(str(path))
    assert dataset.RasterCount == 4
    return dataset.ReadAsArray().transpose(1, 2, 0)
