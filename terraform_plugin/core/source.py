"""The elevation source: the input DEM opened with GDAL and resampled, lazily, onto the processing grid.

Nothing here reads a raster whole. The resampling is a warped VRT (bilinear, nodata-aware, no reprojection:
the grid is in the layer's own CRS) read window by window; windows reaching outside the grid are filled by
mirroring the grid at its edges, which is what the edge chips need.
"""

import math
import os

import numpy as np
from osgeo import gdal

from .errors import InputError
from .gdalcall import gdal_call
from .sampling import decimated_strips, read_strip

# The validity check reads at most this many pixels per side (decimated, or from an overview).
CHECK_SIDE = 1024


def _call(what, fn, *args, **kwargs):
    return gdal_call(InputError, what, fn, *args, **kwargs)


def open_dem(path) -> "gdal.Dataset":
    """Open ``path`` read-only as a raster; InputError when it is missing or not a raster GDAL reads."""
    path = os.fspath(path)
    if not os.path.exists(path) and not path.startswith("/vsi"):
        raise InputError(f"elevation raster not found: {path}")
    try:
        dataset = gdal_call(InputError, path, gdal.OpenEx, path, gdal.OF_RASTER | gdal.OF_READONLY)
    except InputError:
        dataset = None
    if (dataset is None or dataset.RasterCount == 0) and os.path.isdir(path):  # a folder can be one: an ESRI grid
        raise InputError(
            f"{path} is a folder, not an elevation raster: choose a raster file in it (GeoTIFF, VRT, IMG...)"
        )
    if dataset is None or dataset.RasterCount == 0:
        raise InputError(f"{path} is not a raster GDAL can read (is it an elevation model? a vector file?)")
    return dataset


def elevation_band(dataset, band) -> "gdal.Band":
    """The 1-based ``band`` of ``dataset``; InputError when out of range.

    Keep ``dataset`` referenced while using the band: GDAL 3.6's Python bands do not keep their dataset
    alive, and a band of a collected dataset crashes the interpreter.
    """
    count = dataset.RasterCount
    if isinstance(band, float) and not band.is_integer():  # never rounded: 1.5 is a typo, not band 2
        raise InputError(
            f"band must be a whole number, got {band!r}: {os.path.basename(dataset.GetDescription())} has "
            f"{count} band{'s' if count != 1 else ''} (numbered from 1)"
        )
    if isinstance(band, bool) or not isinstance(band, (int, np.integer)) or not 1 <= band <= count:
        raise InputError(
            f"band {band!r} does not exist: {os.path.basename(dataset.GetDescription())} has "
            f"{count} band{'s' if count != 1 else ''} (numbered from 1)"
        )
    check_not_imagery(dataset, int(band))
    return dataset.GetRasterBand(int(band))


_CHANNELS = {gdal.GCI_RedBand: "red", gdal.GCI_GreenBand: "green", gdal.GCI_BlueBand: "blue",
             gdal.GCI_AlphaBand: "alpha"}


def check_not_imagery(dataset, band: int):
    """InputError when ``dataset`` is a colour image rather than elevations: 3 or 4 bands of 8-bit values
    (0-255) that GDAL interprets as red, green, blue (and alpha) - a georeferenced photo or map, whose band 1
    would be read as metres of red. Refused rather than warned about: the result would be a plausible-looking,
    wrong map. A one-band 8-bit DEM (whole metres, or scaled) passes, as does a multi-band raster of elevations
    whose bands are not coloured; a colour band meant as elevations can be taken out on its own first."""
    interps = [dataset.GetRasterBand(i).GetColorInterpretation() for i in range(1, dataset.RasterCount + 1)]
    types = {dataset.GetRasterBand(i).DataType for i in range(1, dataset.RasterCount + 1)}
    rgb = {gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand}
    if dataset.RasterCount not in (3, 4) or types != {gdal.GDT_Byte} or not rgb <= set(interps):
        return
    name = os.path.basename(dataset.GetDescription())
    channels = ", ".join(_CHANNELS.get(i, gdal.GetColorInterpretationName(i)) for i in interps)
    stem = os.path.splitext(name)[0]
    raise InputError(
        f"{name} looks like a colour image, not an elevation model: {dataset.RasterCount} bands of 8-bit values "
        f"(0-255) that it marks as {channels}, so BAND {band} would be read as the "
        f"{_CHANNELS.get(interps[band - 1], 'colour')} channel's brightness in metres. Choose a DEM (one band of "
        f"heights). If band {band} really holds elevations, take it out on its own first: "
        f"gdal_translate -b {band} {name} {stem}_band{band}.tif"
    )


def check_has_data(band, name="the raster"):
    """InputError when a decimated look at ``band`` (and its nodata/mask) finds no valid elevation.

    At most CHECK_SIDE² pixels are sampled (GDAL takes them from an overview when there is one), in strips
    (``sampling.decimated_strips``: bounded source blocks, dropped after each) that stop at the first valid
    pixel, so this costs the same memory on a 46080 x 23040 mosaic as on a chip; the first look is one row of
    samples (a DEM with data there passes at once: an 8192² one in 0.01 s instead of 0.23). A raster whose rare
    valid pixels all fall between the samples passes and simply comes out transparent.
    """
    width, height = band.XSize, band.YSize
    scale = max(1.0, max(width, height) / CHECK_SIDE)
    buf_w, buf_h = max(1, int(width / scale)), max(1, int(height / scale))
    has_mask = not band.GetMaskFlags() & gdal.GMF_ALL_VALID
    mask = band.GetMaskBand()
    strips = decimated_strips(band, buf_h)
    if strips[0][1] > 1:  # the first sampled row on its own, rounded as the strips are
        strips.insert(0, (0, 1, 0, height // buf_h))
    for strip in strips:
        valid = np.isfinite(_call("cannot read the elevation band", read_strip, band, strip, buf_w))
        if has_mask:
            valid &= _call("cannot read the nodata mask", read_strip, mask, strip, buf_w) > 0
        if valid.any():
            return
    nodata = band.GetNoDataValue()
    raise InputError(
        f"{name} has no valid elevations: every sampled pixel is nodata"
        + (f" (nodata value {nodata:g})" if nodata is not None else "")
    )


def reflect_indices(index: np.ndarray, size: int) -> np.ndarray:
    """Map any integer positions into [0, size) by mirroring at the edges (edge pixel repeated), periodically.

    Periodic mirroring keeps working when a window is many times larger than a tiny raster.
    """
    period = 2 * size
    m = np.mod(index, period)
    return np.where(m < size, m, period - 1 - m)


class ResampledSource:
    """One band of a DEM on a processing grid, read in windows as float32 with NaN for nodata."""

    def __init__(self, dataset, band_index: int, grid, max_abs_elevation=None):
        self.dataset = dataset
        self.grid = grid
        # Values beyond ±max_abs_elevation (fill values, garbage) read as NaN, i.e. no-data. They are
        # masked after resampling, so grid pixels that a bilinear kernel mixed with one are masked too.
        self.max_abs_elevation = max_abs_elevation
        # The band on its own first (gdalwarp in GDAL 3.6 has no band selection); a VRT, so nothing is copied.
        self._band_vrt = _call(
            "cannot select the elevation band", gdal.Translate, "", dataset, format="VRT", bandList=[band_index]
        )
        left, xres, _, top, _, yres = grid.geotransform
        bounds = (left, top + yres * grid.height, left + xres * grid.width, top)
        # No srcSRS/dstSRS: the grid is in the layer's own CRS, so the warper only resamples (and cannot wrap
        # 0-360 degree Mars longitudes). Bilinear uses only valid source pixels around each grid point, and
        # GDAL widens the kernel when downsampling, so a 30 m DEM averaged to 200 m does not alias.
        self._warped = _call(
            "cannot resample the elevation band onto the processing grid",
            gdal.Warp,
            "",
            self._band_vrt,
            format="VRT",
            outputBounds=bounds,
            width=grid.width,
            height=grid.height,
            resampleAlg="bilinear",
            outputType=gdal.GDT_Float32,
            dstNodata=float("nan"),
        )
        self._band = self._warped.GetRasterBand(1)
        # A grid that is the input's own pixel grid needs no resampling: bilinear at exactly the source pixel
        # centres gives back the source values (tests/core/test_source.py checks it bit for bit), and reading
        # them straight from the band costs a quarter of the warp (bench/README.md).
        self._direct = self._band_vrt.GetRasterBand(1) if on_own_grid(self._band_vrt, grid) else None
        self._nodata = _exact_nodata(self._direct) if self._direct is not None else None

    def read(self, x0: int, y0: int, width: int, height: int) -> np.ndarray:
        """(height, width) float32 window at grid offset (x0, y0), mirrored where it leaves the grid."""
        rows = reflect_indices(np.arange(y0, y0 + height), self.grid.height)
        cols = reflect_indices(np.arange(x0, x0 + width), self.grid.width)
        r0, r1 = int(rows.min()), int(rows.max()) + 1
        c0, c1 = int(cols.min()), int(cols.max()) + 1
        block = self._block(c0, r0, c1 - c0, r1 - r0)
        inside = r0 == y0 and c0 == x0 and r1 - r0 == height and c1 - c0 == width
        return self._physical(block if inside else block[np.ix_(rows - r0, cols - c0)])

    def _block(self, x0, y0, width, height):
        what = f"cannot read rows {y0}-{y0 + height} of the resampled elevation"
        if self._direct is None:
            return _call(what, self._band.ReadAsArray, x0, y0, width, height).astype(np.float32, copy=False)
        band = self._direct
        z = _call(what, band.ReadAsArray, x0, y0, width, height, buf_type=gdal.GDT_Float32)
        if self._nodata is not None:  # the nodata value, compared in float32 where that is exact
            z[z == self._nodata] = np.nan
        elif not band.GetMaskFlags() & gdal.GMF_ALL_VALID:  # mask band, alpha, other nodata: as the warper
            mask = _call(what, band.GetMaskBand().ReadAsArray, x0, y0, width, height)
            z[mask == 0] = np.nan
        return z

    def _physical(self, z):
        if self.max_abs_elevation is not None:
            with np.errstate(invalid="ignore"):
                z[np.abs(z) > self.max_abs_elevation] = np.nan
        return z

    def release_cache(self, keep_bytes: int = 0):
        """Drop GDAL's cached blocks of this source once the block cache holds more than ``keep_bytes``.

        Rows already processed are not needed again, and GDAL's default cache (5 % of RAM) would otherwise
        grow with the raster up to that size. Keeping a little lets the next chip row reuse the warped blocks
        it shares with this one.
        """
        if gdal.GetCacheUsed() > keep_bytes:
            for ds in (self._warped, self._band_vrt, self.dataset):
                ds.FlushCache()

    def read_decimated(self, width: int, height: int) -> np.ndarray:
        """The whole grid at width x height: pixel averages when reducing the source (from overviews when the
        input has them); bilinear when enlarging it, as the run itself resamples, so coarse MOLA pixels stay
        smooth like the terraformed panel instead of turning into blocks."""
        left, xres, _, top, _, yres = self.grid.geotransform
        bounds = (left, top + yres * self.grid.height, left + xres * self.grid.width, top)
        small = _call(
            "cannot read a reduced copy of the elevation",
            gdal.Warp,
            "",
            self._band_vrt,
            format="MEM",
            outputBounds=bounds,
            width=width,
            height=height,
            resampleAlg="average" if width < self._band_vrt.RasterXSize else "bilinear",
            outputType=gdal.GDT_Float32,
            dstNodata=float("nan"),
        )
        return self._physical(small.GetRasterBand(1).ReadAsArray())


# Types whose every value float32 holds exactly: comparing in float32 finds exactly the nodata pixels.
_FLOAT32_EXACT = {gdal.GDT_Byte, gdal.GDT_Int16, gdal.GDT_UInt16, gdal.GDT_Float32}


def _exact_nodata(band):
    """The band's nodata value as float32 when it is the band's only mask and float32 compares it exactly
    (reading GDAL's mask band costs as much again as the data); else None (read the mask)."""
    if band.GetMaskFlags() != gdal.GMF_NODATA or band.DataType not in _FLOAT32_EXACT:
        return None
    nodata = band.GetNoDataValue()
    if nodata is None or math.isnan(nodata):
        return None  # NaN is read as NaN anyway, and never equals itself
    return np.float32(nodata) if np.float32(nodata) == nodata else None


def on_own_grid(dataset, grid) -> bool:
    """Whether ``grid`` is exactly ``dataset``'s pixel grid (same origin, pixel size and shape)."""
    return (
        dataset.RasterXSize == grid.width
        and dataset.RasterYSize == grid.height
        and tuple(dataset.GetGeoTransform()) == tuple(grid.geotransform)
    )


def fill_nodata(z: np.ndarray, max_distance: int) -> np.ndarray:
    """NaNs replaced by inverse-distance interpolation from valid pixels up to ``max_distance`` away
    (GDAL's FillNodata); NaNs farther than that stay NaN. Returns a new array."""
    height, width = z.shape
    mem = gdal.GetDriverByName("MEM").Create("", width, height, 1, gdal.GDT_Float32)
    band = mem.GetRasterBand(1)
    band.SetNoDataValue(math.nan)
    band.WriteArray(z)
    gdal.FillNodata(band, None, max_distance, 0)
    return band.ReadAsArray()
