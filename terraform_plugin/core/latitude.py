"""The latitude of every processing pixel: a conditioning plane for models that paint by climate.

Latitude comes from the layer's own CRS through its own geographic base (osr CloneGeogCS): geodetic latitude
on Earth, areographic on Mars, whatever the body; never an Earth constant. A geographic CRS gives it straight
from the pixel's y; a projected one (UTM, polar stereographic, Web Mercator, Mars equirectangular...) through
PROJ's inverse projection. Or a constant, the LATITUDE parameter ("terraform as if at 45°N"), which is also
the only way for a layer without a CRS.

Each plane value depends only on the block's absolute position on the processing grid (its centre's CRS
coordinates are computed from absolute pixel indices, each point transformed on its own), so a block gets the
same latitude whichever tile asks for it: the planes tile seamlessly. Tiles may reach beyond the grid (their
margins): positions there are extrapolated through the geotransform. Where that runs past a pole (a geographic
grid, an equirectangular map) the latitude is clamped to ±90°; where the projection cannot invert a point at
all (far outside a transverse Mercator's domain) the point takes the latitude of the last invertible point on
the straight line from it to the grid's centre, so the plane stays continuous and still depends only on the
point. A projected CRS is inverse-projected on a lattice anchored to the grid's origin (LATTICE_PX) and
interpolated: each block's value depends on its four surrounding nodes alone, so still on nothing but its
position.
"""

import math
import numbers
import threading

import numpy as np

from .errors import InputError
from .grid import geographic_base, transform_points, x_axis_is_latitude

SET_LATITUDE_HINT = (
    "set LATITUDE (an advanced parameter: the latitude in degrees to terraform the layer as if it lay there, "
    "e.g. 45 for 45°N), or assign the layer's CRS in QGIS (Layer Properties → Source)"
)
# Halvings of the line from an uninvertible point to the grid's centre: the last invertible point along it to
# 2^-40 of the distance (micrometres on Earth).
_RESCUE_STEPS = 40
# A projected CRS's latitude is inverse-projected on a lattice of nodes this many processing pixels apart,
# anchored to the grid's origin, and interpolated bilinearly between them: 2,500 points for a 1536² tile
# instead of 36,864 block centres (about ten times faster: 3-5 ms instead of 26-80 ms). Latitude is smooth on a
# map: at 200 m the interpolation is off by under 5e-4° (Web Mercator at 80°N, where it curves fastest), except
# near a pole, where latitude is a cone: 0.003° 20 km away, up to 0.05° at the pole. Models cannot tell 0.1° apart.
LATTICE_PX = 32
# Points per grid edge when looking for the grid's latitude span (latitude has no extremum inside a map other
# than a pole, and the poles are checked on their own).
_SPAN_EDGE_POINTS = 4097


def _check_latitude(deg):
    if isinstance(deg, bool) or not isinstance(deg, numbers.Real) or not (math.isfinite(deg) and -90 <= deg <= 90):
        raise InputError(f"LATITUDE must be a number of degrees from -90 (south pole) to 90 (north pole), got {deg!r}")
    return float(deg)


class LatitudeField:
    """Latitude in degrees (north positive) over a processing grid, or everywhere the same.

    Build with ``from_grid(grid)`` or ``constant(deg)``; ``source`` says which ("crs" or "LATITUDE"). Holds
    plain values only (the osr transformation is rebuilt where needed), so it pickles to Dask workers.
    """

    def __init__(self, constant=None, grid=None):
        self._constant = constant
        self._grid = grid
        self._lock = threading.Lock()  # an osr transformation must not run in two threads at once
        self._transform = None  # CRS -> its geographic base, and back (for the poles)
        self._forward = None
        self._geographic = False
        self._radians_per_unit = math.pi / 180.0
        self._x_is_latitude = False
        if grid is not None:
            self._open()

    @property
    def source(self) -> str:
        return "LATITUDE" if self._constant is not None else "crs"

    @classmethod
    def constant(cls, deg) -> "LatitudeField":
        """The same latitude everywhere: the LATITUDE parameter. InputError unless -90 <= deg <= 90."""
        return cls(constant=_check_latitude(deg))

    @classmethod
    def from_grid(cls, grid) -> "LatitudeField":
        """Latitudes from ``grid``'s CRS (a core.grid.Grid: the whole processing grid, not a Dask stripe's, so
        that every stripe shares one lattice; windows in its pixels). InputError when it has no CRS or its CRS
        has no latitude."""
        if not grid.wkt:
            raise InputError(f"the layer has no coordinate reference system (no CRS), so its latitude is unknown; "
                             f"{SET_LATITUDE_HINT}")
        return cls(grid=grid)

    def __getstate__(self):
        return {"constant": self._constant, "grid": self._grid}

    def __setstate__(self, state):
        self.__init__(state["constant"], state["grid"])

    def _open(self):
        from osgeo import osr

        srs = osr.SpatialReference()
        try:
            failed = srs.ImportFromWkt(self._grid.wkt) != 0
        except RuntimeError:
            failed = True
        if failed:
            raise InputError(f"the layer's CRS cannot be read ({self._grid.wkt[:80]}...), so its latitude is "
                             f"unknown; {SET_LATITUDE_HINT}")
        srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)  # as GDAL reads a raster's geotransform
        if srs.IsGeographic():
            self._geographic = True
            self._radians_per_unit = srs.GetAngularUnits() or math.pi / 180.0
            self._x_is_latitude = x_axis_is_latitude(srs)
            return
        if not srs.IsProjected():
            raise InputError(f"the layer's CRS is neither geographic nor projected, so its latitude is unknown; "
                             f"{SET_LATITUDE_HINT}")
        try:
            self._transform, self._radians_per_unit = geographic_base(srs)
        except InputError as exc:
            raise InputError(f"{exc}; or {SET_LATITUDE_HINT}") from None
        base = srs.CloneGeogCS()
        base.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        try:
            self._forward = osr.CoordinateTransformation(base, srs)
        except RuntimeError:
            self._forward = None  # then the span looks at the edges only
        centre = self._centre()
        if not np.isfinite(self._latitudes(np.array([centre[0]]), np.array([centre[1]]), rescue=False)).all():
            raise InputError(
                f"the centre of the layer ({centre[0]:.6g}, {centre[1]:.6g}) lies outside the area its CRS can "
                f"map, so its latitude is unknown; {SET_LATITUDE_HINT}"
            )

    def _centre(self):
        g = self._grid
        gt = g.geotransform
        return gt[0] + gt[1] * g.width / 2.0, gt[3] + gt[5] * g.height / 2.0

    def _latitudes(self, xs, ys, rescue=True):
        """Latitude in degrees of CRS points (arrays of one shape), clamped to ±90."""
        to_degrees = self._radians_per_unit * 180.0 / math.pi
        if self._geographic:
            lat = (xs if self._x_is_latitude else ys) * to_degrees
        else:
            with self._lock:
                _, lat = transform_points(self._transform, xs, ys)
                if rescue and not np.isfinite(lat).all():
                    lat = self._rescued(xs, ys, lat)
            lat = lat * to_degrees
        return np.clip(lat, -90.0, 90.0)

    def _rescued(self, xs, ys, lat):
        """``lat`` with each NaN replaced by the latitude of the last invertible point on the line from that
        point to the grid's centre (found by halving; depends on the point alone)."""
        lat = lat.copy()
        bad = ~np.isfinite(lat)
        cx, cy = self._centre()
        dx, dy = xs[bad] - cx, ys[bad] - cy
        good_t = np.zeros(dx.shape)  # the centre inverts (checked when the field was built)
        bad_t = np.ones(dx.shape)
        found = np.full(dx.shape, np.nan)
        for _ in range(_RESCUE_STEPS):
            t = (good_t + bad_t) / 2.0
            _, trial = transform_points(self._transform, cx + t * dx, cy + t * dy)
            ok = np.isfinite(trial)
            good_t = np.where(ok, t, good_t)
            bad_t = np.where(ok, bad_t, t)
            found = np.where(ok, trial, found)
        if not np.isfinite(found).all():  # only the centre itself inverted: take its latitude
            _, at_centre = transform_points(self._transform, np.array([cx]), np.array([cy]))
            found = np.where(np.isfinite(found), found, at_centre[0])
        lat[bad] = found
        return lat

    def plane(self, x0: int, y0: int, width: int, height: int, stride: int) -> np.ndarray:
        """Latitude in degrees, float64 (height // stride, width // stride): the centre of each stride × stride
        block of processing pixels from (x0, y0), all four multiples of ``stride``; the window may reach
        beyond the grid (negative x0, y0 too)."""
        if not (isinstance(stride, numbers.Integral) and stride >= 1 and width >= 0 and height >= 0):
            raise ValueError(f"bad latitude window: stride {stride!r}, size {width} x {height}")
        for name, value in (("x0", x0), ("y0", y0), ("width", width), ("height", height)):
            if value % stride:
                raise ValueError(f"{name} {value} is not a multiple of the plane stride {stride}")
        rows, cols = height // stride, width // stride
        if self._constant is not None:
            return np.full((rows, cols), self._constant, dtype=np.float64)
        # Block centres in processing pixels from the grid's origin: absolute, whichever window asks.
        u = x0 + stride * (np.arange(cols) + 0.5)
        v = y0 + stride * (np.arange(rows) + 0.5)
        gt = self._grid.geotransform
        if self._geographic:  # latitude is the CRS's y (or x): exact and free
            lat = self._latitudes(*np.meshgrid(gt[0] + u * gt[1], gt[3] + v * gt[5]))
        elif rows and cols:
            lat = self._from_lattice(u, v)
        else:
            lat = np.empty((rows, cols))
        return np.ascontiguousarray(lat, dtype=np.float64)

    def _from_lattice(self, u, v):
        """Latitude at pixel positions (u columns × v rows), bilinear between the latitudes of lattice nodes
        every LATTICE_PX pixels from the grid's origin (each node inverse-projected on its own)."""
        gt = self._grid.geotransform
        cu, cv = u / LATTICE_PX, v / LATTICE_PX
        ci, ri = np.floor(cu).astype(np.int64), np.floor(cv).astype(np.int64)
        fx, fy = cu - ci, (cv - ri)[:, None]
        node_cols = np.arange(ci[0], ci[-1] + 2)
        node_rows = np.arange(ri[0], ri[-1] + 2)
        nodes = self._latitudes(*np.meshgrid(gt[0] + (node_cols * LATTICE_PX) * gt[1],
                                             gt[3] + (node_rows * LATTICE_PX) * gt[5]))
        a, b = ci - node_cols[0], ri - node_rows[0]
        upper = nodes[b][:, a] * (1.0 - fx) + nodes[b][:, a + 1] * fx
        lower = nodes[b + 1][:, a] * (1.0 - fx) + nodes[b + 1][:, a + 1] * fx
        return upper * (1.0 - fy) + lower * fy

    def span(self) -> tuple:
        """(min_deg, max_deg) of latitude over the grid's area (its outer edges, and a pole inside it)."""
        if self._constant is not None:
            return (self._constant, self._constant)
        g = self._grid
        gt = g.geotransform
        left, top = gt[0], gt[3]
        right, bottom = left + gt[1] * g.width, top + gt[5] * g.height
        if self._geographic:
            lat = self._latitudes(np.array([left, right]), np.array([top, bottom]))
            return (float(lat.min()), float(lat.max()))
        t = np.linspace(0.0, 1.0, _SPAN_EDGE_POINTS)
        xs = np.concatenate([left + t * (right - left), np.full_like(t, right), right - t * (right - left),
                             np.full_like(t, left)])
        ys = np.concatenate([np.full_like(t, top), top + t * (bottom - top), np.full_like(t, bottom),
                             bottom - t * (bottom - top)])
        lat = self._latitudes(xs, ys)
        low, high = float(lat.min()), float(lat.max())
        for pole in self._poles_inside(left, right, bottom, top):
            low, high = min(low, pole), max(high, pole)
        return (low, high)

    def _poles_inside(self, left, right, bottom, top):
        """The poles (±90.0) whose projection lies inside the extent (a polar stereographic grid over one)."""
        if self._forward is None:
            return []
        x_lo, x_hi = min(left, right), max(left, right)
        y_lo, y_hi = min(bottom, top), max(bottom, top)
        pole = 90.0 * math.pi / 180.0 / self._radians_per_unit
        with self._lock:
            xs, ys = transform_points(self._forward, np.array([0.0, 0.0]), np.array([pole, -pole]))
        return [sign * 90.0 for sign, x, y in zip((1, -1), xs, ys)
                if np.isfinite(x) and np.isfinite(y) and x_lo <= x <= x_hi and y_lo <= y <= y_hi]
