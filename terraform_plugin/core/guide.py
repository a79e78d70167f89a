"""A colour guide: a coarse true-colour layer whose colours, blurred to kilometres, set a model's palette.

The guide is any raster GDAL reads (GeoTIFF, VRT, a GeoPackage raster, ...) in any CRS and resolution: GDAL
warps it onto the *coarse grid*, the processing grid's CRS and origin with cells ``coarse_px`` processing
pixels wide, averaging the guide's pixels over each cell (area average: palette, not texture). That grid is
small (a 46080² px DEM at 32 px per cell: 1440² cells) and held in memory; tiles then read their planes from
it without touching the file.

Validity: the guide's alpha band, its no-data values (a pixel is no data when all three colours are) and its
mask mark pixels without colour. Each cell keeps the share of its area that has colour (its *coverage*,
measured on a 4 × 4 lattice of sub-cells) and the mean colour of that part. A plane value is the bilinear
interpolation between cell centres of colour × coverage, divided by the interpolated coverage: a cell half
off the guide weighs half, and partial coverage does not darken the edges. The mask is 1 where the
interpolated coverage is at least one half; colour is 0 where it is 0.

Cells sit on multiples of ``coarse_px`` from the grid's origin, and a ring of PAD_CELLS more cells around the
grid is warped too (the guide's colours beyond the DEM's edge, for tiles' margins): a block's planes depend
on its absolute position alone, whichever tile asks, so they tile seamlessly.
"""

import math
import numbers

import numpy as np
from osgeo import gdal

from .errors import InputError
from .gdalcall import gdal_call

# Cells warped beyond each side of the grid, so tile margins there still see the guide (where it has data).
PAD_CELLS = 4
# Sub-cells per cell side on which GDAL averages first, so that a cell's coverage (the share with colour) is
# known to 1/16 of its area; GDAL's own average reports only whether any source pixel had colour.
SUBCELLS = 4
# The fine warp runs in strips of at most this many sub-cell pixels (4 float32 bands: 64 MiB).
_STRIP_PIXELS = 4 * 1024 * 1024
# The share of a block's surroundings that must have colour for the mask to say "guided".
MIN_COVERAGE = 0.5

BYTE_HINT = (
    "convert it to 8-bit colour first, e.g. gdal_translate -ot Byte -scale LOW HIGH 0 255 guide.tif "
    "guide8.tif, with LOW and HIGH the darkest and brightest values to keep (gdalinfo -stats shows them)"
)


def _rgb_bands(dataset, path):
    """(red, green, blue, alpha or None) band numbers: the RGB colour interpretation, else bands 1-3."""
    count = dataset.RasterCount
    interp = {dataset.GetRasterBand(i).GetColorInterpretation(): i for i in range(count, 0, -1)}
    alpha = interp.get(gdal.GCI_AlphaBand)
    if all(c in interp for c in (gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand)):
        return interp[gdal.GCI_RedBand], interp[gdal.GCI_GreenBand], interp[gdal.GCI_BlueBand], alpha
    if count < 3:
        paletted = count == 1 and dataset.GetRasterBand(1).GetColorTable() is not None
        hint = ("it is a paletted image: expand its colour table first, gdal_translate -expand rgb guide.tif "
                "guide_rgb.tif" if paletted else "a true-colour guide has red, green and blue bands")
        raise InputError(f"the guide {path} has {count} band{'s' if count != 1 else ''}, not the 3 of a "
                         f"true-colour (RGB) image; {hint}")
    return 1, 2, 3, alpha if alpha not in (1, 2, 3) else None


def _check_guide(dataset, path):
    """(red, green, blue, alpha) band numbers of a usable guide, or InputError saying what to do."""
    red, green, blue, alpha = _rgb_bands(dataset, path)
    for number in (red, green, blue):
        band = dataset.GetRasterBand(number)
        if band.DataType != gdal.GDT_Byte:
            raise InputError(
                f"the guide {path} has {gdal.GetDataTypeName(band.DataType)} colour values (band {number}), "
                f"not the 8-bit (Byte, 0-255) colours of a true-colour image; {BYTE_HINT}"
            )
    has_crs = bool(dataset.GetProjection()) or bool(dataset.GetGCPCount() and dataset.GetGCPProjection())
    if not has_crs:
        raise InputError(
            f"the guide {path} has no coordinate reference system (no CRS), so where its colours lie is unknown; "
            "assign its CRS in QGIS (Layer Properties → Source) or save it with one (gdal_edit.py -a_srs)"
        )
    if dataset.GetGeoTransform(can_return_null=True) is None and not dataset.GetGCPCount():
        raise InputError(f"the guide {path} has no georeferencing (geotransform); georeference it first")
    return red, green, blue, alpha


class GuidePlanes:
    """The guide on the coarse grid, in memory; ``planes`` gives any tile its colour and mask planes."""

    def __init__(self, colour_coverage, coverage, coarse_px):
        # (4, rows + 2, cols + 2) float32: mean colour × coverage (3), coverage in [0, 1] (1), per coarse cell,
        # with a ring of zeros (no guide) around the held cells; held cell (PAD_CELLS, PAD_CELLS) is the grid's
        # first.
        self._cells = np.pad(np.concatenate([colour_coverage, coverage[None]]).astype(np.float32),
                             ((0, 0), (1, 1), (1, 1)))
        self.coarse_px = int(coarse_px)

    @property
    def cells(self):
        """(rows, cols) of the coarse grid held, padding included."""
        return self._cells.shape[1] - 2, self._cells.shape[2] - 2

    @classmethod
    def open(cls, path, grid, coarse_px: int) -> "GuidePlanes":
        """Warp the guide raster at ``path`` onto the coarse grid of ``grid`` (a core.grid.Grid: the whole
        processing grid, never a Dask stripe's, whose origin would move the cells; windows are then in its pixels).
        ``path`` is anything GDAL opens, a GDAL WMS/TMS XML description of a web tile service included.

        InputError for a guide that cannot be opened, has fewer than 3 bands, colours other than Byte, no
        CRS, a CRS that cannot be transformed into the DEM's, or no colour over the DEM at all.
        """
        if not (isinstance(coarse_px, numbers.Integral) and coarse_px >= 1):
            raise ValueError(f"coarse_px must be a positive int, got {coarse_px!r}")
        dataset = gdal_call(InputError, f"the guide {path} cannot be opened as a raster", gdal.OpenEx, str(path),
                            gdal.OF_RASTER | gdal.OF_READONLY | gdal.OF_VERBOSE_ERROR)
        red, green, blue, alpha = _check_guide(dataset, path)
        bands = [red, green, blue] + ([alpha] if alpha else [])
        source = gdal_call(InputError, f"the guide {path} cannot be read", gdal.Translate, "", dataset,
                           format="VRT", bandList=bands)
        rows = math.ceil(grid.height / coarse_px) + 2 * PAD_CELLS
        cols = math.ceil(grid.width / coarse_px) + 2 * PAD_CELLS
        colour_coverage = np.zeros((3, rows, cols), np.float32)
        coverage = np.zeros((rows, cols), np.float32)
        strip = max(1, _STRIP_PIXELS // (cols * SUBCELLS * SUBCELLS))
        for top in range(0, rows, strip):
            n = min(strip, rows - top)
            colour_coverage[:, top:top + n], coverage[top:top + n] = _warp_cells(
                source, alpha is not None, grid, coarse_px, top, n, cols, path)
        inner = coverage[PAD_CELLS:rows - PAD_CELLS, PAD_CELLS:cols - PAD_CELLS]
        if not inner.any():
            raise InputError(_no_overlap_message(dataset, grid, path))
        return cls(colour_coverage, coverage, coarse_px)

    def planes(self, x0: int, y0: int, width: int, height: int, stride: int):
        """(rgb float32 (3, height // stride, width // stride) in 0-255, mask float32 (same rows and cols)):
        the guide at the centre of each stride × stride block of processing pixels from (x0, y0), all four
        multiples of ``stride``; the window may reach beyond the grid."""
        if not (isinstance(stride, numbers.Integral) and stride >= 1 and width >= 0 and height >= 0):
            raise ValueError(f"bad guide window: stride {stride!r}, size {width} x {height}")
        for name, value in (("x0", x0), ("y0", y0), ("width", width), ("height", height)):
            if value % stride:
                raise ValueError(f"{name} {value} is not a multiple of the plane stride {stride}")
        # Block centres in cell units from the centre of the zero ring's first cell: absolute, whichever window
        # asks (cell k of the grid has its centre at pixel (k + 0.5) · coarse_px).
        u = (x0 + stride * (np.arange(width // stride) + 0.5)) / self.coarse_px + (PAD_CELLS + 0.5)
        v = (y0 + stride * (np.arange(height // stride) + 0.5)) / self.coarse_px + (PAD_CELLS + 0.5)
        values = bilinear(self._cells, u, v)
        colour, cover = values[:3], values[3]
        mask = cover >= MIN_COVERAGE
        rgb = np.where(mask, colour / np.where(mask, cover, np.float32(1.0)), np.float32(0.0))
        return np.clip(rgb, 0.0, 255.0).astype(np.float32), mask.astype(np.float32)

    def cell_window(self, cx0: int, cy0: int, cols: int, rows: int):
        """(mean colour 0-255 (3, rows, cols), coverage (rows, cols)) float32 of the coarse cells from grid cell
        (cx0, cy0) (cell k spans pixels [k, k + 1) * coarse_px from the grid's origin); cells beyond those held
        have coverage 0."""
        held_rows, held_cols = self.cells
        out = np.zeros((4, rows, cols), np.float32)
        # Grid cell k is held at index k + PAD_CELLS + 1 (after the zero ring and the padding).
        y0, x0 = cy0 + PAD_CELLS + 1, cx0 + PAD_CELLS + 1
        sy0, sx0 = max(y0, 1), max(x0, 1)
        sy1, sx1 = min(y0 + rows, held_rows + 1), min(x0 + cols, held_cols + 1)
        if sy1 > sy0 and sx1 > sx0:
            out[:, sy0 - y0:sy1 - y0, sx0 - x0:sx1 - x0] = self._cells[:, sy0:sy1, sx0:sx1]
        cover = out[3]
        colour = np.where(cover > 0, out[:3] / np.where(cover > 0, cover, np.float32(1.0)), np.float32(0.0))
        return colour, cover


def bilinear(cells, u, v, out=None):
    """(channels, len(v), len(u)) float32: ``cells`` (channels, rows, cols) interpolated at fractional cell
    positions (cell centres at integers), first along rows then columns, into ``out`` when given; a position
    beyond the outermost cells reads them, so their ring of zeros stands for everything outside."""
    _, rows, cols = cells.shape
    i0, j0 = np.floor(u), np.floor(v)
    fx, fy = (u - i0).astype(np.float32), (v - j0).astype(np.float32)[:, None]
    i0, j0 = i0.astype(np.int64), j0.astype(np.int64)
    left, right = np.clip(i0, 0, cols - 1), np.clip(i0 + 1, 0, cols - 1)
    upper, lower = np.clip(j0, 0, rows - 1), np.clip(j0 + 1, 0, rows - 1)
    needed = np.unique(np.concatenate([upper, lower]))  # ~ tile height / coarse_px rows
    slab = cells[:, needed]
    # (channels, needed rows, len(u)); the column gathers leave channels innermost in memory: made row-major, or
    # every row read below strides across memory (5x slower for a tile).
    across = np.ascontiguousarray(slab[:, :, left] * (1.0 - fx) + slab[:, :, right] * fx)
    if out is None:
        out = np.empty((cells.shape[0], len(v), len(u)), np.float32)
    # Rows between the same two cell rows come in runs, each one pair of rows of ``across`` broadcast over it:
    # no full-size temporaries (a 2048 px tile centre's are 50 MB, each fresh from the OS: ~100 ms of page faults).
    starts = np.flatnonzero(np.diff(j0, prepend=j0[0] - 1))
    for start, stop in zip(starts, np.append(starts[1:], len(v))):
        above = across[:, np.searchsorted(needed, upper[start])][:, None]
        below = across[:, np.searchsorted(needed, lower[start])][:, None]
        np.multiply(above, 1.0 - fy[start:stop], out=out[:, start:stop])
        out[:, start:stop] += below * fy[start:stop]
    return out


def _warp_cells(source, has_alpha, grid, coarse_px, top, rows, cols, path):
    """(colour × coverage (3, rows, cols), coverage (rows, cols)) for the coarse-grid cell rows from ``top``
    (counted from the first padded row): GDAL averages the guide onto sub-cells, numpy the sub-cells."""
    gt = grid.geotransform
    cell_x, cell_y = gt[1] * coarse_px, gt[5] * coarse_px
    left = gt[0] - PAD_CELLS * cell_x
    upper = gt[3] + (top - PAD_CELLS) * cell_y
    fine = gdal.GetDriverByName("MEM").Create("", cols * SUBCELLS, rows * SUBCELLS, 4, gdal.GDT_Float32)
    fine.SetGeoTransform((left, cell_x / SUBCELLS, 0.0, upper, 0.0, cell_y / SUBCELLS))
    fine.SetProjection(grid.wkt)
    fine.GetRasterBand(4).SetColorInterpretation(gdal.GCI_AlphaBand)
    gdal_call(
        InputError,
        f"the guide {path} cannot be warped onto the DEM's CRS (a map of another planet, or a CRS PROJ cannot "
        "transform)",
        # Into an existing dataset gdal.Warp answers 1 or 0, not a dataset: 0 is failure (exceptions off).
        lambda: gdal.Warp(fine, source, resampleAlg="average", srcAlpha=has_alpha, dstAlpha=True,
                          warpOptions=["INIT_DEST=0", "UNIFIED_SRC_NODATA=YES"]) or None,
    )
    values = fine.ReadAsArray().astype(np.float64)  # (4, rows·S, cols·S)
    valid = (values[3] > 0).reshape(rows, SUBCELLS, cols, SUBCELLS)
    colour = (values[:3] * (values[3] > 0)).reshape(3, rows, SUBCELLS, cols, SUBCELLS)
    return colour.mean(axis=(2, 4)), valid.mean(axis=(1, 3))


def _extent(dataset):
    gt = dataset.GetGeoTransform()
    xs = (gt[0], gt[0] + gt[1] * dataset.RasterXSize)
    ys = (gt[3], gt[3] + gt[5] * dataset.RasterYSize)
    return min(xs), min(ys), max(xs), max(ys)


def _no_overlap_message(dataset, grid, path):
    """Why no cell got colour, with both extents in the DEM's CRS where the guide's can be put in it."""
    from osgeo import osr

    gt = grid.geotransform
    dem = (gt[0], gt[3] + gt[5] * grid.height, gt[0] + gt[1] * grid.width, gt[3])
    guide = None
    if dataset.GetGeoTransform(can_return_null=True) is not None:
        source, target = osr.SpatialReference(), osr.SpatialReference()
        try:
            source.ImportFromWkt(dataset.GetProjection())
            target.ImportFromWkt(grid.wkt)
            for srs in (source, target):
                srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            guide = osr.CoordinateTransformation(source, target).TransformBounds(*_extent(dataset), 21)
        except (RuntimeError, AttributeError, TypeError):
            guide = None
    if guide is not None and all(math.isfinite(v) for v in guide):
        overlaps = guide[0] < dem[2] and dem[0] < guide[2] and guide[1] < dem[3] and dem[1] < guide[3]
        problem = "has no colour (only no-data or transparent pixels) over" if overlaps else "does not overlap"
        where = f"the guide covers {_fmt(guide)}, the DEM {_fmt(dem)} (both in the DEM's CRS)"
    else:
        problem = "does not overlap"
        where = f"the DEM covers {_fmt(dem)} in its CRS; the guide's extent cannot be expressed in that CRS"
    return (f"the guide {path} {problem} the DEM: {where}; "
            "choose a guide that covers the DEM's area, or run without one")


def _fmt(box):
    def number(v):
        return f"{v:.0f}" if abs(v) >= 1000 else f"{v:.6g}"  # metres whole, degrees to 6 digits

    return f"x {number(box[0])} to {number(box[2])}, y {number(box[1])} to {number(box[3])}"
