"""GUIDE as any QGIS raster layer: what the engine is given for it (``with_guide``).

A layer GDAL reads itself (provider 'gdal': a GeoTIFF, a VRT, a GeoPackage raster, a GDAL WMS description) is
passed by its source, and the engine reads it directly. Any other layer (a QGIS XYZ, WMS or WMTS web layer, whose
provider fetches and caches tiles) is rendered by its own provider (``QgsRasterDataProvider.block``) over the
DEM's extent, at about a quarter of one of the model's coarse guide cells, into a temporary RGBA GeoTIFF in the
layer's CRS; the engine then warps and averages that like any file. Rendering needs no network of its own:
it is the provider's, as when QGIS draws the layer (file:// tiles work without one).
"""

import dataclasses
import math
import os
import re
from urllib.parse import urlsplit, urlunsplit

import numpy as np
from osgeo import gdal, osr
from qgis.core import Qgis, QgsRectangle

from .core.errors import TerraformError
from .core.gdalcall import gdal_call
from .core.grid import processing_grid
from .core.guide import PAD_CELLS
from .core.onnxmeta import read_metadata
from .core.request import check_request
from .core.source import open_dem

# Rendering pixels per coarse cell side: GDAL then averages 16 of them into each cell, enough for a palette.
PIXELS_PER_CELL = 4
# Bound on the rendering (RGBA bytes x 4): beyond it the rendering gets coarser than a quarter cell.
MAX_RENDER_PIXELS = 64 * 1024 * 1024
STRIP_ROWS = 512  # rows fetched from the provider per call
ARGB_TYPES = (Qgis.DataType.ARGB32, Qgis.DataType.ARGB32_Premultiplied)


class GuideLayerError(Exception):
    """The layer cannot be rendered as a guide (the algorithm reports it as a QgsProcessingException)."""


def with_guide(request, layer, scratch, feedback=None):
    """``request`` with ``layer`` as its guide: a layer GDAL reads, by its source; any other rendered over the DEM
    into a temporary GeoTIFF in the folder ``scratch()`` gives, once the rest of the request has passed the
    engine's checks, and named by its public source. A model that takes no guide (or a broken model or DEM) gets
    the layer's source unrendered: the engine refuses the run in its own words."""
    if not needs_rendering(layer):
        return dataclasses.replace(request, guide_path=gdal_source(layer))
    label = public_source(layer)
    target = _rendering_target(request)
    if target is None:
        return dataclasses.replace(request, guide_path=layer.source(), guide_label=label)
    check_request(request)  # before rendering: a wrong output path should not wait for it
    grid, coarse_px = target
    path = render(layer, grid, coarse_px, os.path.join(scratch(), "guide.tif"), feedback)
    return dataclasses.replace(request, guide_path=path, guide_label=label)


def _rendering_target(request):
    """(processing grid, coarse_px) a web layer is rendered for, or None where the engine will refuse the run."""
    try:
        metadata = read_metadata(request.model_path)
        spec = metadata.plane("guide_rgb")
        if spec is None:
            return None
        grid = processing_grid(open_dem(request.input_path), request.resolution_m or metadata.resolution_m)
    except TerraformError:
        return None
    return grid, spec.options["coarse_px"]


def needs_rendering(layer) -> bool:
    return layer.providerType() != "gdal"


def gdal_source(layer) -> str:
    """What GDAL opens for a 'gdal' layer: its data source (a path, or a GDAL connection string)."""
    return layer.dataProvider().dataSourceUri()


def public_source(layer) -> str:
    """The layer's provider and address, without what must not travel into an output's metadata: user names,
    passwords, authentication ids and URL query strings (API keys)."""
    from qgis.core import QgsProviderRegistry

    provider = layer.providerType()
    parts = QgsProviderRegistry.instance().decodeUri(provider, layer.source()) or {}
    address = parts.get("url") or parts.get("path") or ""
    if address:
        split = urlsplit(address)
        host = split.hostname or ""
        if split.port:
            host = f"{host}:{split.port}"
        # QGIS 3.22 decodes a file:// tile URL to a bare path, 3.44 keeps the scheme: say file:// in both.
        scheme = split.scheme or ("file" if split.path.startswith("/") else "")
        address = urlunsplit((scheme, host, split.path, "", ""))
    else:  # no URL the provider names: the source's first field, stripped of key=value secrets
        address = re.sub(r"(password|username|authcfg|key|token)=[^&\s]*", r"\1=...", layer.source(),
                         flags=re.IGNORECASE)
    kind = parts.get("type")
    return f"{layer.name()} ({provider}{' ' + kind if kind else ''} layer {address})"


def _srs(wkt_or_authid):
    srs = osr.SpatialReference()
    if srs.SetFromUserInput(wkt_or_authid) != 0:
        raise GuideLayerError(f"its CRS cannot be read ({wkt_or_authid[:80]})")
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def _layer_srs(layer):
    crs = layer.crs()
    if not crs.isValid():
        raise GuideLayerError("it has no valid CRS")
    return _srs(crs.authid() or crs.toWkt())


def render_extent(grid, coarse_px, layer_srs):
    """(xmin, ymin, xmax, ymax) in the layer's CRS and (columns, rows) of the rendering: the grid and the ring of
    PAD_CELLS coarse cells the engine reads around it, PIXELS_PER_CELL pixels a cell (fewer beyond
    MAX_RENDER_PIXELS)."""
    gt = grid.geotransform
    pad_x, pad_y = PAD_CELLS * coarse_px * gt[1], PAD_CELLS * coarse_px * -gt[5]
    box = (gt[0] - pad_x, gt[3] + gt[5] * grid.height - pad_y, gt[0] + gt[1] * grid.width + pad_x, gt[3] + pad_y)
    transform = osr.CoordinateTransformation(_srs(grid.wkt), layer_srs)
    try:
        extent = transform.TransformBounds(*box, 21)
    except RuntimeError as exc:
        raise GuideLayerError(f"the DEM's extent cannot be expressed in its CRS ({exc})") from None
    if not all(math.isfinite(v) for v in extent) or extent[2] <= extent[0] or extent[3] <= extent[1]:
        raise GuideLayerError("the DEM's extent cannot be expressed in its CRS")
    cols = (math.ceil(grid.width / coarse_px) + 2 * PAD_CELLS) * PIXELS_PER_CELL
    rows = (math.ceil(grid.height / coarse_px) + 2 * PAD_CELLS) * PIXELS_PER_CELL
    shrink = math.sqrt(max(1.0, cols * rows / MAX_RENDER_PIXELS))
    return extent, (max(1, int(cols / shrink)), max(1, int(rows / shrink)))


def _rgba_of_argb(block, rows, cols, premultiplied):
    """(4, rows, cols) uint8 RGBA of an ARGB32 block (bytes B, G, R, A in memory), colours un-premultiplied."""
    raw = np.frombuffer(bytes(block.data()), np.uint8)
    if raw.size != rows * cols * 4:
        raise GuideLayerError(f"its provider returned {raw.size} bytes for a {cols} x {rows} px ARGB block")
    bgra = raw.reshape(rows, cols, 4)
    rgba = np.stack([bgra[..., 2], bgra[..., 1], bgra[..., 0], bgra[..., 3]])
    if premultiplied:
        alpha = rgba[3].astype(np.float32)
        scale = np.where(alpha > 0, 255.0 / np.maximum(alpha, 1.0), 0.0)
        rgba[:3] = np.clip(np.rint(rgba[:3] * scale), 0, 255).astype(np.uint8)
    return rgba


def _rgba_of_bands(provider, extent, rows, cols):
    """(4, rows, cols) uint8 RGBA from the provider's bands 1-3 (8-bit each); alpha 0 where all three are no data."""
    planes, valid = [], np.zeros((rows, cols), bool)
    for band in (1, 2, 3):
        block = provider.block(band, extent, cols, rows)
        values = np.frombuffer(bytes(block.data()), np.uint8).reshape(rows, cols)
        planes.append(values)
        has_data = np.ones((rows, cols), bool)
        if block.hasNoDataValue():
            has_data &= values != block.noDataValue()
        valid |= has_data
    return np.stack(planes + [valid.astype(np.uint8) * 255])


def check_colours(layer):
    """GuideLayerError unless the layer's provider gives colours: ARGB (web layers), or three 8-bit bands."""
    provider = layer.dataProvider()
    kind = provider.dataType(1)
    if kind in ARGB_TYPES:
        return
    if provider.bandCount() < 3:
        raise GuideLayerError(f"it has {provider.bandCount()} band(s), not the 3 of a true-colour (RGB) image")
    for band in (1, 2, 3):
        kind = provider.dataType(band)
        if kind != Qgis.DataType.Byte:
            name = getattr(kind, "name", str(kind))
            raise GuideLayerError(
                f"band {band} holds {name} values, not the 8-bit (Byte, 0-255) colours of a true-colour image; "
                "save it as 8-bit RGB first (Raster > Conversion > Translate with -ot Byte -scale)"
            )


def render(layer, grid, coarse_px, path, feedback=None) -> str:
    """Render ``layer`` over the processing ``grid``'s extent (and the engine's ring of cells around it) into an
    RGBA GeoTIFF at ``path`` in the layer's CRS; returns ``path``. GuideLayerError says why it cannot."""
    check_colours(layer)
    layer_srs = _layer_srs(layer)
    (xmin, ymin, xmax, ymax), (cols, rows) = render_extent(grid, coarse_px, layer_srs)
    provider = layer.dataProvider().clone()  # its own: the algorithm may run outside the thread that owns the layer
    argb = provider.dataType(1) in ARGB_TYPES
    premultiplied = provider.dataType(1) == Qgis.DataType.ARGB32_Premultiplied
    dx, dy = (xmax - xmin) / cols, (ymax - ymin) / rows
    if feedback is not None:
        feedback.pushInfo(f"Rendering the guide layer {layer.name()} over the DEM: {cols} x {rows} px of "
                          f"{dx:.6g} x {dy:.6g} {layer.crs().authid() or 'CRS units'}")
    out = gdal_call(GuideLayerError, f"cannot create {path}", gdal.GetDriverByName("GTiff").Create, path, cols, rows,
                    4, gdal.GDT_Byte, ["TILED=YES", "COMPRESS=DEFLATE", "PHOTOMETRIC=RGB", "ALPHA=YES"])
    out.GetRasterBand(4).SetColorInterpretation(gdal.GCI_AlphaBand)  # what the engine masks the guide by
    out.SetGeoTransform((xmin, dx, 0.0, ymax, 0.0, -dy))
    out.SetProjection(layer_srs.ExportToWkt())
    for top in range(0, rows, STRIP_ROWS):
        if feedback is not None and feedback.isCanceled():
            out = None
            raise GuideLayerError("cancelled while rendering it")
        n = min(STRIP_ROWS, rows - top)
        extent = QgsRectangle(xmin, ymax - (top + n) * dy, xmax, ymax - top * dy)
        if argb:
            block = provider.block(1, extent, cols, n)
            if not block.isValid():
                raise GuideLayerError(f"its provider returned no image for rows {top}-{top + n} of the rendering")
            rgba = _rgba_of_argb(block, n, cols, premultiplied)
        else:
            rgba = _rgba_of_bands(provider, extent, n, cols)
        for band in range(4):
            out.GetRasterBand(band + 1).WriteArray(rgba[band], 0, top)
    out.FlushCache()
    out = None
    return os.fspath(path)
