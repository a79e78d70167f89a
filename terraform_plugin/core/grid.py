"""The processing grid: the DEM's own CRS, pixels of the model's ground resolution.

The model was trained on chips of a fixed ground size (``resolution_m`` metres per pixel), so the DEM is
resampled to that ground size *without reprojecting it*: the output keeps the layer's CRS exactly (Mars,
custom WKT, anything) and only the pixel size changes.

- Projected CRS: metres divided by the CRS's linear unit (US survey feet, metres...), times the projection's
  point scale factor at the raster's centre where that is far from 1 (Web Mercator at 85°N maps one ground
  metre onto 11.5 CRS metres): pixels are then true ground metres at the centre. The grid stays regular in the
  CRS, as every GIS expects; the factor is measured on the CRS's own ellipsoid and kept on the Grid to be logged.
- Geographic CRS: metres -> degrees on the CRS's own ellipsoid (Earth WGS84, the Mars sphere, any body) at the
  raster's centre latitude: the meridional radius of curvature M(phi) for north-south, the parallel's radius
  N(phi)·cos(phi) for east-west.
"""

import math
from dataclasses import dataclass, field

import numpy as np

from .errors import InputError

# GDAL stores raster sizes as C ints: a side beyond this cannot be created, let alone processed.
MAX_SIDE = 2**31 - 1

# Near a pole N·cos(phi) -> 0 and a metre spans an unbounded number of degrees of longitude, so a raster
# centred there would get a grid a few pixels (or zero) wide. Clamping cos(phi) at its value 1 degree from the
# pole keeps the x pixel finite; it can only make x pixels *smaller* (oversampling), never lose detail.
POLE_CLAMP_DEG = 89.0
_MIN_COS = math.cos(math.radians(POLE_CLAMP_DEG))

# A projected CRS gets pixels sized in true ground metres where its point scale factor at the raster's centre is
# off 1 by more than this, on either axis. UTM (0.9996 on its meridian, 1.001 at a zone's edge, up to 1.005 a
# whole zone beyond) and the national conformal and equal-area grids made for their area (within about 1.5 %) keep
# pixels of round CRS units, exactly as before; Web Mercator beyond ~9° of latitude, an equirectangular map far
# from its standard parallel, a polar stereographic grid far from its true-scale latitude are corrected. A 2 %
# change in texture scale cannot be seen in the output; Web Mercator's tenfold at 85°N can.
SCALE_TOLERANCE = 0.02

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
    # A projected CRS's point scale factor (kx, ky) at the input's centre: CRS metres per ground metre along x
    # and y (UTM: 0.9996 on its meridian; Web Mercator at 85°N: 11.5). (1, 1) for a geographic CRS, whose
    # pixels are sized from its ellipsoid. The pixel size includes it only when ``scale_corrected``.
    scale_factor: tuple = field(default=(1.0, 1.0), compare=False)

    @property
    def pixel_size(self) -> tuple:
        """(xres, yres) in CRS units, both positive."""
        return (self.geotransform[1], -self.geotransform[5])

    @property
    def scale_corrected(self) -> bool:
        """Whether the pixels were sized in ground metres through ``scale_factor`` (see SCALE_TOLERANCE)."""
        return scale_is_corrected(self.scale_factor)


def scale_is_corrected(scale_factor) -> bool:
    return any(abs(k - 1.0) > SCALE_TOLERANCE for k in scale_factor)


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


def geographic_base(srs):
    """(transformation from ``srs`` to its own geographic CRS, radians per angular unit of that CRS).

    The CRS's own base (osr CloneGeogCS): on Mars that is areographic latitude and longitude, on Earth the
    datum's own, never an Earth constant. Both ends take traditional GIS order (x = easting or longitude), as
    GDAL geotransforms do; raises InputError when PROJ has no transformation.
    """
    from osgeo import osr

    source = srs.Clone()
    source.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    base = srs.CloneGeogCS()
    if base is None:
        raise InputError("the layer's CRS has no geographic base (latitude and longitude); pick a map CRS for it")
    base.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    try:
        transform = osr.CoordinateTransformation(source, base)
    except (RuntimeError, TypeError, ValueError) as exc:
        transform, reason = None, str(exc)
    else:
        reason = "PROJ found no transformation"
    if transform is None:
        raise InputError(f"the layer's CRS cannot be turned into latitude and longitude ({reason}); {ASSIGN_CRS_HINT}")
    return transform, base.GetAngularUnits() or math.pi / 180.0


def transform_points(transform, xs, ys):
    """(x, y) float64 arrays: the points (xs, ys) through the osr ``transform`` (to a geographic base: lon, lat
    in its angular units); NaN where PROJ cannot transform a point (outside a projection's domain). Works with
    osr exceptions on or off."""
    from osgeo import gdal

    points = np.column_stack([np.ravel(xs), np.ravel(ys)]).astype(np.float64)
    out = np.full((len(points), 2), np.nan)
    gdal.PushErrorHandler("CPLQuietErrorHandler")  # a failed point is an answer here, not a message
    try:
        _transform_into(transform, points, out, 0, len(points))
    finally:
        gdal.PopErrorHandler()
    out[~np.isfinite(out).all(axis=1)] = np.nan  # exceptions off: PROJ marks a failed point with inf
    return out[:, 0].reshape(np.shape(xs)), out[:, 1].reshape(np.shape(xs))


def _transform_into(transform, points, out, start, stop):
    # With osr exceptions on (QGIS 3.40 turns them on for everyone), one point outside the projection's
    # domain fails the whole call: halve until the failures are single points, left NaN.
    if start >= stop:
        return
    try:
        done = transform.TransformPoints(points[start:stop])
    except RuntimeError:
        done = None
    if done is not None:
        out[start:stop] = np.asarray(done, dtype=np.float64).reshape(stop - start, -1)[:, :2]
    elif stop - start > 1:
        middle = (start + stop) // 2
        _transform_into(transform, points, out, start, middle)
        _transform_into(transform, points, out, middle, stop)


def point_scale_factor(srs, x: float, y: float, step: float) -> tuple:
    """(kx, ky): CRS metres per ground metre along the CRS's x and y axes at the point (x, y) of ``srs``.

    A central difference of ``step`` CRS units along each axis, its ground length measured on the CRS's own
    ellipsoid (as a chord between Earth-centred points: exact to 1e-9 at pixel scale, and unbothered by a pole
    or the antimeridian between the two ends), so it holds for any projection, conformal or not (an
    equirectangular map at 60°: kx = 2, ky = 1). Clamped like geographic grids 1° from a pole.
    """
    unit = srs.GetLinearUnits() or 1.0
    transform, radians_per_unit = geographic_base(srs)
    half = step / 2.0
    xs = np.array([x - half, x + half, x, x])
    ys = np.array([y, y, y - half, y + half])
    lon, lat = transform_points(transform, xs, ys)
    if not (np.isfinite(lon).all() and np.isfinite(lat).all()):
        raise InputError(
            f"the centre of the layer ({x:.6g}, {y:.6g}) lies outside the area its CRS can map, so its "
            f"coordinates cannot be in that CRS; {ASSIGN_CRS_HINT}"
        )
    a, e2 = _ellipsoid(srs)
    phi, lam = lat * radians_per_unit, lon * radians_per_unit
    prime_vertical = a / np.sqrt(1.0 - e2 * np.sin(phi) ** 2)
    centred = np.stack([
        prime_vertical * np.cos(phi) * np.cos(lam),
        prime_vertical * np.cos(phi) * np.sin(lam),
        prime_vertical * (1.0 - e2) * np.sin(phi),
    ])
    factors = []
    for i in (0, 2):
        ground = float(np.linalg.norm(centred[:, i + 1] - centred[:, i]))
        factor = step * unit / ground if ground > 0 else math.inf
        factors.append(min(max(factor, _MIN_COS), 1.0 / _MIN_COS))
    return tuple(factors)


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


def x_axis_is_latitude(srs) -> bool:
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
    x_is_latitude = srs.IsGeographic() and x_axis_is_latitude(srs)
    xres, yres = pixel_size_in_crs_units(srs, centre_x if x_is_latitude else centre_y, resolution_m)
    if x_is_latitude:
        xres, yres = yres, xres
    scale = (1.0, 1.0)
    if srs.IsProjected():
        scale = point_scale_factor(srs, centre_x, centre_y, xres)
        if scale_is_corrected(scale):
            xres, yres = xres * scale[0], yres * scale[1]

    width, height = _cells(right - left, xres), _cells(top - bottom, yres)
    if width > MAX_SIDE or height > MAX_SIDE:
        needed = _round_up(resolution_m * max(width, height) / MAX_SIDE)
        raise InputError(
            f"at {resolution_m:g} m per pixel the layer would need a {width} × {height} pixel grid, beyond "
            f"GDAL's {MAX_SIDE} pixels per side; use a resolution of at least {needed:g} m, "
            "or check the layer's CRS (are its coordinates really in the CRS's units?)"
        )
    return Grid(width=width, height=height, geotransform=(left, xres, 0.0, top, 0.0, -yres), wkt=wkt,
                scale_factor=scale)
