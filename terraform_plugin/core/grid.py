"""The processing grid: the DEM's own CRS, pixels of the model's ground resolution.

The model was trained on chips of a fixed ground size (``resolution_m`` metres per pixel), so the DEM is
resampled to that ground size *without reprojecting it*: the output keeps the layer's CRS exactly (Mars,
custom WKT, anything) and only the pixel size changes.

- Projected CRS: metres divided by the CRS's linear unit (US survey feet, metres...). The projection's own
  scale distortion is not corrected: the grid is regular in the CRS, as every GIS expects.
- Geographic CRS: metres -> degrees on the CRS's own ellipsoid (Earth WGS84, the Mars sphere, any body) at the
  raster's centre latitude: the meridional radius of curvature M(phi) for north-south, the parallel's radius
  N(phi)·cos(phi) for east-west.
"""

import math
from dataclasses import dataclass

from .errors import InputError

# GDAL stores raster sizes as C ints: a side beyond this cannot be created, let alone processed.
MAX_SIDE = 2**31 - 1

# Near a pole N·cos(phi) -> 0 and a metre spans an unbounded number of degrees of longitude, so a raster
# centred there would get a grid a few pixels (or zero) wide. Clamping cos(phi) at its value 1 degree from the
# pole keeps the x pixel finite; it can only make x pixels *smaller* (oversampling), never lose detail.
POLE_CLAMP_DEG = 89.0
_MIN_COS = math.cos(math.radians(POLE_CLAMP_DEG))

ASSIGN_CRS_HINT = (
    "assign the layer's CRS in QGIS (Layer Properties → Source → Assigned Coordinate Reference System), "
    "or save it with one (e.g. gdal_edit.py -a_srs)"
)


@dataclass(frozen=True)
class Grid:
    width: int
    height: int
    geotransform: tuple  # GDAL order: (x0, xres, 0, y0, 0, -yres), north-up
    wkt: str  # the input's CRS, exactly as the input declares it

    @property
    def pixel_size(self) -> tuple:
        """(xres, yres) in CRS units, both positive."""
        return (self.geotransform[1], -self.geotransform[5])


def check_resolution(resolution_m) -> float:
    """The output resolution in ground metres per pixel, or InputError: a finite number > 0."""
    if isinstance(resolution_m, bool) or not (
        isinstance(resolution_m, (int, float)) and math.isfinite(resolution_m) and resolution_m > 0
    ):
        raise InputError(f"resolution must be a positive number of ground metres per pixel, got {resolution_m!r}")
    return float(resolution_m)


def _ellipsoid(srs):
    """(a, e²) of the CRS's own ellipsoid; a sphere (inverse flattening 0, e.g. Mars 2015) has e² = 0."""
    a = srs.GetSemiMajor()
    b = srs.GetSemiMinor()
    if not (a and a > 0 and b and b > 0 and math.isfinite(a) and math.isfinite(b)):
        raise InputError(f"the layer's CRS has no usable ellipsoid (semi-major {a!r}, semi-minor {b!r})")
    return a, max(0.0, 1.0 - (b * b) / (a * a))


def pixel_size_in_crs_units(srs, latitude_deg: float, resolution_m: float) -> tuple:
    """Ground metres -> (xres, yres) in the units of ``srs`` (an ``osr.SpatialReference``).

    Projected: divide by the linear unit. Geographic: degrees from the CRS's own ellipsoid (semi-major axis,
    flattening) at ``latitude_deg`` — Earth, Mars, anything; never an Earth constant.
    """
    check_resolution(resolution_m)
    if srs.IsProjected() or (srs.IsLocal() and not srs.IsGeographic()):
        unit = srs.GetLinearUnits()  # metres per CRS unit: 0.3048006 for US survey feet
        if not (unit and unit > 0 and math.isfinite(unit)):
            raise InputError(f"the layer's CRS has no usable linear unit ({unit!r} m per unit)")
        size = resolution_m / unit
        return (size, size)
    if not srs.IsGeographic():
        raise InputError("the layer's CRS is neither projected nor geographic; pick a map CRS for it in QGIS")
    if not (math.isfinite(latitude_deg) and -90.0 <= latitude_deg <= 90.0):
        raise InputError(
            f"latitude {latitude_deg!r}° is outside -90..90: the layer's coordinates are not degrees, "
            f"so its geographic CRS is probably wrong; {ASSIGN_CRS_HINT}"
        )
    a, e2 = _ellipsoid(srs)
    phi = math.radians(latitude_deg)
    w = math.sqrt(1.0 - e2 * math.sin(phi) ** 2)
    meridional = a * (1.0 - e2) / w**3  # M(phi): metres per radian of latitude
    prime_vertical = a / w  # N(phi); N·cos(phi) is the radius of the parallel
    parallel = prime_vertical * max(math.cos(phi), _MIN_COS)
    radians_per_unit = srs.GetAngularUnits() or math.pi / 180.0  # degrees usually; grads exist
    return (resolution_m / parallel / radians_per_unit, resolution_m / meridional / radians_per_unit)


def _spatial_ref(dataset):
    from osgeo import osr

    wkt = dataset.GetProjection()
    if not wkt:
        raise InputError(
            "the layer has no coordinate reference system (no CRS) in its file, so its pixel size in metres is "
            f"unknown; {ASSIGN_CRS_HINT}"
        )
    srs = dataset.GetSpatialRef()
    if srs is None:
        srs = osr.SpatialReference()
        if srs.ImportFromWkt(wkt) != 0:
            raise InputError(f"the layer's CRS cannot be read ({wkt[:80]}...); {ASSIGN_CRS_HINT}")
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)  # what GDAL uses for raster geotransforms
    return wkt, srs


def _x_is_latitude(srs) -> bool:
    """Whether the geotransform's x axis is latitude (GDAL gives rasters longitude-first; trust, but check)."""
    from osgeo import osr

    mapping = srs.GetDataAxisToSRSAxisMapping()
    if not mapping:
        return False
    orientation = srs.GetAxisOrientation(None, abs(mapping[0]) - 1)
    return orientation in (osr.OAO_North, osr.OAO_South)


def _round_up(value):
    """Up to 3 significant digits, so advice like "at least 0.0187 m" is both readable and sufficient."""
    step = 10.0 ** (math.floor(math.log10(value)) - 2)
    return math.ceil(value / step) * step


def _cells(extent, size):
    # Tolerate float noise (relative, a few ulps) so an extent that is an exact multiple of the pixel does
    # not gain a column; at 2^31 pixels this gives away at most 0.002 of a pixel.
    ratio = extent / size
    return max(1, math.ceil(ratio * (1.0 - 1e-12)))


def processing_grid(dataset, resolution_m: float) -> Grid:
    """Grid covering the extent of the GDAL ``dataset`` at ``resolution_m`` ground metres per pixel.

    The origin is the input's top-left corner, width and height are rounded up so the whole input is
    covered, and ``wkt`` is the input's WKT string unchanged (custom CRSs without an authority code stay
    exactly as they are). Raises InputError when the dataset has no CRS or a rotated geotransform.
    """
    check_resolution(resolution_m)
    wkt, srs = _spatial_ref(dataset)
    gt = dataset.GetGeoTransform(can_return_null=True)
    if gt is None:
        raise InputError("the layer has no georeferencing (geotransform); georeference it first")
    if gt[2] != 0 or gt[4] != 0:
        raise InputError(
            f"the layer's geotransform is rotated or sheared ({gt}); warp it to a north-up raster first "
            "(Raster → Projections → Warp, or gdalwarp)"
        )
    if gt[1] == 0 or gt[5] == 0:
        raise InputError(f"the layer's geotransform has a zero pixel size ({gt})")
    xs = (gt[0], gt[0] + gt[1] * dataset.RasterXSize)
    ys = (gt[3], gt[3] + gt[5] * dataset.RasterYSize)
    left, right, bottom, top = min(xs), max(xs), min(ys), max(ys)  # also for south-up / east-to-west inputs

    centre_x, centre_y = (left + right) / 2.0, (top + bottom) / 2.0
    x_is_latitude = srs.IsGeographic() and _x_is_latitude(srs)
    xres, yres = pixel_size_in_crs_units(srs, centre_x if x_is_latitude else centre_y, resolution_m)
    if x_is_latitude:
        xres, yres = yres, xres

    width, height = _cells(right - left, xres), _cells(top - bottom, yres)
    if width > MAX_SIDE or height > MAX_SIDE:
        needed = _round_up(resolution_m * max(width, height) / MAX_SIDE)
        raise InputError(
            f"at {resolution_m:g} m per pixel the layer would need a {width} × {height} pixel grid, beyond "
            f"GDAL's {MAX_SIDE} pixels per side; use a resolution of at least {needed:g} m, "
            "or check the layer's CRS (are its coordinates really in the CRS's units?)"
        )
    return Grid(width=width, height=height, geotransform=(left, xres, 0.0, top, 0.0, -yres), wkt=wkt)
