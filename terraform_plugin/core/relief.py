"""Relief: sea level and vertical scaling, so Mars (or anything) maps into the model's Earth ramp.

The model learned Earth: relief 0-9000 m above a sea that is coloured ``below``. Mars spans about -8 km to
+21 km around an areoid that has no sea, so the user picks where the ocean is (``sea_level``) and how the land
above it is squeezed into Earth's range (``vertical_scale``), or lets ``fit_vertical_scale`` pick the scale.
"""

import math
from dataclasses import dataclass

import numpy as np

from .errors import InputError
from .ramp import is_sea

# A few million samples pin a 99th percentile to well under a percent of the relief, in tens of MB at most,
# whatever the raster's size.
DEFAULT_MAX_SAMPLES = 4_000_000
# Where fit_vertical_scale should put the percentile: this fraction of the way up the model's ramp.
FIT_TARGET_FRACTION = 0.9


@dataclass(frozen=True)
class Relief:
    sea_level: float = 0.0  # in the layer's vertical units; below it is ocean
    vertical_scale: float = 1.0  # the ramp sees (z - sea_level) * vertical_scale

    def __post_init__(self):
        if not _finite_number(self.sea_level):
            raise InputError(f"sea level must be a finite number of metres, got {self.sea_level!r}")
        if not (_finite_number(self.vertical_scale) and self.vertical_scale > 0):
            raise InputError(
                f"vertical scale must be a finite number greater than 0, got {self.vertical_scale!r} "
                "(1 keeps the relief as it is; below 1 flattens it, e.g. 0.4 fits Mars into Earth's range)"
            )

    def ramp_elevation(self, z: np.ndarray) -> np.ndarray:
        """What the ramp colours: (z - sea_level) * vertical_scale; NaN (no data) stays NaN."""
        z = np.asarray(z)
        # float32 keeps int16 DEMs exact and halves memory; float64 input stays float64.
        dtype = np.float64 if z.dtype == np.float64 else np.float32
        out = z.astype(dtype, copy=True)
        out -= dtype(self.sea_level)
        out *= dtype(self.vertical_scale)
        return out

    def sea_mask(self, z: np.ndarray) -> np.ndarray:
        """Where the ocean is: ``ramp.is_sea`` (at or below sea level; NaN is not sea)."""
        return is_sea(z, self.sea_level)


def _finite_number(value) -> bool:
    return isinstance(value, (int, float, np.floating, np.integer)) and not isinstance(value, bool) and (
        math.isfinite(value)
    )


def fit_target_m(ramp, fraction: float = FIT_TARGET_FRACTION) -> float:
    """The relief ``fit_vertical_scale`` should aim at for a model's ``ramp``: 90 % of the way up its stops.

    For the training ramp (Turbo over 0-9000 m) that is 8100 m.
    """
    bottom, top = float(ramp.elevations[0]), float(ramp.top_m)
    return bottom + fraction * (top - bottom)


def _decimated_buffer(width, height, max_samples):
    """(buf_w, buf_h) no larger than the raster, about max_samples pixels, aspect ratio kept."""
    if width * height <= max_samples:
        return width, height
    step = math.sqrt(width * height / max_samples)
    return max(1, min(width, int(width / step))), max(1, min(height, int(height / step)))


def _read_sampled(band, buf_w, buf_h):
    """The whole ``band`` read at buf_w × buf_h (nearest, so values are real elevations), in strips of bounded
    source (``sampling.decimated_strips``)."""
    from .gdalcall import gdal_call
    from .sampling import decimated_strips, read_strip

    out = np.empty((buf_h, buf_w), dtype=np.float64)
    for strip in decimated_strips(band, buf_h):
        r0, r1, y0, y1 = strip
        out[r0:r1] = gdal_call(InputError, f"cannot read the elevation band (rows {y0}-{y1})", read_strip, band,
                               strip, buf_w)
    return out


def sample_elevations(band, max_samples: int = DEFAULT_MAX_SAMPLES, limit=None) -> np.ndarray:
    """A spatially even sample of the valid elevations of ``band`` (a ``gdal.Band``): 1-D float64.

    At most ``max_samples`` pixels are read, whatever the raster's size: the finest overview that fits when the
    band has overviews (already computed, cheap to read), else a nearest-neighbour decimated read in strips.
    Nodata (the band's nodata value, NaN, or a mask/alpha band) is dropped, and so are values beyond ±``limit``
    (non-physical fill values, which would otherwise set the percentile).
    """
    from osgeo import gdal

    source = band
    for i in range(band.GetOverviewCount()):  # overviews usually run finest first, but do not rely on it
        overview = band.GetOverview(i)
        if overview is None or overview.XSize * overview.YSize > max_samples:
            continue
        if source is band or overview.XSize * overview.YSize > source.XSize * source.YSize:
            source = overview
    buf_w, buf_h = _decimated_buffer(source.XSize, source.YSize, max_samples)
    z = _read_sampled(source, buf_w, buf_h)

    valid = np.isfinite(z)
    nodata = band.GetNoDataValue()
    if nodata is not None and math.isfinite(nodata):
        valid &= z != nodata
    flags = band.GetMaskFlags()
    if not flags & (gdal.GMF_ALL_VALID | gdal.GMF_NODATA):  # a real mask or alpha band: read it the same way
        mask_band = band.GetMaskBand()
        if source is not band:
            mask_band = _matching_overview(mask_band, source) or mask_band
        if (mask_band.XSize, mask_band.YSize) == (source.XSize, source.YSize):
            valid &= _read_sampled(mask_band, buf_w, buf_h) > 0
        else:  # no mask overview of the right size: sample the full-resolution mask at the same buffer size
            valid &= _read_sampled(band.GetMaskBand(), buf_w, buf_h) > 0
    if limit is not None:
        valid &= np.abs(z) <= limit
    return z[valid]


def _matching_overview(band, like):
    for i in range(band.GetOverviewCount()):
        overview = band.GetOverview(i)
        if overview is not None and (overview.XSize, overview.YSize) == (like.XSize, like.YSize):
            return overview
    return None


def land_relief_percentile(elevations: np.ndarray, sea_level: float, percentile: float = 99.0) -> float:
    """The ``percentile`` of z - sea_level over the samples strictly above sea level."""
    if not (_finite_number(percentile) and 0 < percentile <= 100):
        raise InputError(f"percentile must lie in (0, 100], got {percentile!r}")
    land = elevations[elevations > sea_level] - sea_level
    if land.size == 0:
        top = f"its highest sampled elevation is {elevations.max():g}" if elevations.size else "it has no valid data"
        raise InputError(
            f"no land above sea level {sea_level:g}: {top}; lower SEA_LEVEL to fit the relief to Earth's range"
        )
    return float(np.percentile(land, percentile))


def fit_vertical_scale(band, sea_level: float, target_m: float, percentile: float = 99.0, limit=None) -> float:
    """Scale so the ``percentile`` of land relief (z - sea_level over z > sea_level) lands at ``target_m``.

    ``band`` is a ``gdal.Band``; read in a sampled pass (overviews or a decimated read) with memory bounded
    regardless of raster size (``sample_elevations``: at most a few million pixels). Raises InputError when
    there is no land above sea level.

    What to pass as ``target_m``: ``fit_target_m(model.ramp)``, i.e. about 0.9 × the ramp's top (8100 m for
    Earth's 0-9000 m training ramp). The 99th percentile then sits among the highest relief the model saw in
    training (Andes, Himalaya), so the layer uses the whole Earth range, while the 10 % headroom keeps the top
    1 % of peaks (Olympus Mons on Mars) in distinct colours before the ramp saturates at its last stop. Aiming
    at the top itself would flatten everything above the percentile into one colour; aiming lower wastes the
    mountain colours the model knows best.
    """
    if not (_finite_number(target_m) and target_m > 0):
        raise InputError(f"the fit target must be a positive number of metres, got {target_m!r}")
    if not _finite_number(sea_level):
        raise InputError(f"sea level must be a finite number of metres, got {sea_level!r}")
    relief = land_relief_percentile(sample_elevations(band, limit=limit), sea_level, percentile)
    return target_m / relief
