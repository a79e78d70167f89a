"""Latitude planes from any CRS: values against independent references, poles, Mars, window independence."""

import math
import pickle

import numpy as np
import pytest
from osgeo import osr
from pyproj import CRS, Transformer  # independent reference (tests only; the core stays numpy + osgeo)

from terraform_plugin.core.errors import InputError
from terraform_plugin.core.grid import Grid
from terraform_plugin.core.latitude import LatitudeField

MARS_R = 3396190.0
STRIDE = 8


def wkt(crs):
    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    return srs.ExportToWkt()


def grid(crs, gt, width=1024, height=1024):
    return Grid(width, height, gt, wkt(crs))


def block_centres(g, x0, y0, width, height, stride=STRIDE):
    """CRS coordinates of the block centres of a window, meshed (rows, cols)."""
    u = x0 + stride * (np.arange(width // stride) + 0.5)
    v = y0 + stride * (np.arange(height // stride) + 0.5)
    gt = g.geotransform
    return np.meshgrid(gt[0] + u * gt[1], gt[3] + v * gt[5])


def pyproj_latitude(crs, xs, ys):
    to_lonlat = Transformer.from_crs(CRS.from_user_input(crs), CRS.from_user_input(crs).geodetic_crs, always_xy=True)
    return to_lonlat.transform(xs, ys)[1]


def test_wgs84_latitude_is_the_block_centres_y():
    g = grid("EPSG:4326", (10.0, 0.002, 0.0, 50.0, 0.0, -0.002))
    plane = LatitudeField.from_grid(g).plane(16, 64, 64, 32, STRIDE)
    assert plane.shape == (4, 8) and plane.dtype == np.float64
    # Row r of blocks: pixels 64 + 8r .. 64 + 8r + 7, centre at 64 + 8r + 4.
    expected = 50.0 - 0.002 * (64 + 8 * np.arange(4) + 4)
    np.testing.assert_allclose(plane, np.repeat(expected[:, None], 8, axis=1), rtol=0, atol=1e-12)


def test_geographic_window_beyond_a_pole_is_clamped():
    # A grid reaching 89.9°N; a tile's margin above it extrapolates past the pole.
    g = grid("EPSG:4326", (0.0, 0.01, 0.0, 89.9, 0.0, -0.01), 512, 512)
    plane = LatitudeField.from_grid(g).plane(0, -64, 64, 64, STRIDE)
    assert plane.max() == 90.0 and plane[-1, 0] == pytest.approx(89.9 + 0.04)
    assert np.all(np.diff(plane[:, 0]) <= 0)  # still monotone, no wrap to the other side


@pytest.mark.parametrize(
    "crs, gt",
    [
        ("EPSG:32633", (400000.0, 200.0, 0.0, 5100000.0, 0.0, -200.0)),  # UTM 33N around 45°N
        ("EPSG:32719", (300000.0, 200.0, 0.0, 6400000.0, 0.0, -200.0)),  # UTM 19S around 33°S (Aconcagua)
        ("EPSG:3857", (1.0e6, 2000.0, 0.0, 1.6e7, 0.0, -2000.0)),  # Web Mercator, 78-81°N
    ],
)
def test_projected_latitude_matches_pyproj(crs, gt):
    g = grid(crs, gt)
    window = (-64, 128, 1536, 768)  # reaching west of the grid
    plane = LatitudeField.from_grid(g).plane(*window, STRIDE)
    xs, ys = block_centres(g, *window)
    # Interpolated between lattice nodes 32 px apart: within a few 1e-4° even where Mercator's latitude curves
    # fastest (80°N); a tenth of a degree would still be far below what a model can tell apart.
    np.testing.assert_allclose(plane, pyproj_latitude(crs, xs, ys), rtol=0, atol=5e-4)


def test_utm_known_points():
    # 45°N on zone 33N's central meridian (15°E) has northing 4982950.40 m; the equator in a southern zone has
    # northing 10,000,000 m. Grids placed so a block centre falls exactly there.
    north = grid("EPSG:32633", (500000.0 - 4 * 200.0, 200.0, 0.0, 4982950.40 + 4 * 200.0, 0.0, -200.0))
    assert LatitudeField.from_grid(north).plane(0, 0, 8, 8, STRIDE)[0, 0] == pytest.approx(45.0, abs=1e-5)
    south = grid("EPSG:32719", (500000.0 - 4 * 200.0, 200.0, 0.0, 1.0e7 + 4 * 200.0 + 64 * 200.0, 0.0, -200.0))
    column = LatitudeField.from_grid(south).plane(0, 0, 8, 256, STRIDE)[:, 0]
    assert column[8] == pytest.approx(0.0, abs=1e-5)  # the block centred at northing 10,000,000 m
    assert np.all(column[:8] > 0) and np.all(column[9:] < 0)  # a zone's southern grid extends past the equator


@pytest.mark.parametrize("crs, pole", [("EPSG:3413", 90.0), ("EPSG:3031", -90.0)])
def test_polar_stereographic_window_over_the_pole(crs, pole):
    # A 204.8 km grid centred on the pole (polar stereographic's origin).
    g = grid(crs, (-102400.0, 200.0, 0.0, 102400.0, 0.0, -200.0))
    field = LatitudeField.from_grid(g)
    plane = field.plane(0, 0, 1024, 1024, STRIDE)
    xs, ys = block_centres(g, 0, 0, 1024, 1024)
    reference = pyproj_latitude(crs, xs, ys)
    # Latitude is a cone at the pole: the lattice interpolation is off there by a few hundredths of a degree,
    # by a few thousandths 20 km away (its error falls as 1 / distance).
    np.testing.assert_allclose(plane, reference, rtol=0, atol=0.05)
    far = np.hypot(xs, ys) > 20000.0
    np.testing.assert_allclose(plane[far], reference[far], rtol=0, atol=0.003)
    nearest = abs(plane).max()
    assert nearest == pytest.approx(90.0, abs=0.05) and np.sign(plane).min() == np.sign(plane).max() == np.sign(pole)
    low, high = field.span()
    assert (high if pole > 0 else low) == pole  # the pole lies inside the grid
    corner = pyproj_latitude(crs, -102400.0, 102400.0)
    assert (low if pole > 0 else high) == pytest.approx(corner, abs=1e-9)  # the farthest point: a corner


def test_mars_equirectangular_is_areographic():
    # Mars 2015 sphere, equidistant cylindrical: latitude is y / R (radians) exactly.
    g = grid("IAU_2015:49910", (-1.0e6, 2000.0, 0.0, 2.0e6, 0.0, -2000.0))
    plane = LatitudeField.from_grid(g).plane(0, 0, 1024, 1024, STRIDE)
    _, ys = block_centres(g, 0, 0, 1024, 1024)
    np.testing.assert_allclose(plane, np.degrees(ys / MARS_R), rtol=0, atol=1e-6)
    assert plane[0, 0] == pytest.approx(33.606, abs=1e-3)  # y = 1992 km: 17.9° on an Earth-sized sphere


def test_mars_geographic_0_360():
    g = grid("IAU_2015:49900", (270.0, 0.01, 0.0, -20.0, 0.0, -0.01))  # east longitudes past 180
    field = LatitudeField.from_grid(g)
    assert field.plane(0, 0, 8, 8, STRIDE)[0, 0] == pytest.approx(-20.04, abs=1e-12)
    assert field.span() == pytest.approx((-30.24, -20.0), abs=1e-9)


def test_mars_polar_stereographic_south():
    # A Mars polar CRS written out as WKT (a user's own): a sphere of Mars' radius, south pole.
    mars_polar = (
        'PROJCS["Mars south polar",GEOGCS["Mars 2000",DATUM["D_Mars_2000",SPHEROID["Mars",3396190,0]],'
        'PRIMEM["Reference_Meridian",0],UNIT["degree",0.0174532925199433]],PROJECTION["Polar_Stereographic"],'
        'PARAMETER["latitude_of_origin",-90],PARAMETER["central_meridian",0],PARAMETER["scale_factor",1],'
        'PARAMETER["false_easting",0],PARAMETER["false_northing",0],UNIT["metre",1]]'
    )
    g = Grid(1024, 1024, (300000.0, 200.0, 0.0, 100000.0, 0.0, -200.0), mars_polar)
    plane = LatitudeField.from_grid(g).plane(0, 0, 1024, 1024, STRIDE)
    xs, ys = block_centres(g, 0, 0, 1024, 1024)
    # Spherical polar stereographic, k0 = 1: rho = 2 R tan(pi/4 - |phi|/2).
    expected = -(90.0 - 2.0 * np.degrees(np.arctan(np.hypot(xs, ys) / (2.0 * MARS_R))))
    np.testing.assert_allclose(plane, expected, rtol=0, atol=5e-4)


def test_no_crs_says_to_set_latitude():
    with pytest.raises(InputError, match="no CRS") as info:
        LatitudeField.from_grid(Grid(10, 10, (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), ""))
    assert "LATITUDE" in str(info.value)


def test_a_crs_without_latitude_is_refused():
    local = 'LOCAL_CS["site grid",LOCAL_DATUM["site",0],UNIT["metre",1],AXIS["X",EAST],AXIS["Y",NORTH]]'
    with pytest.raises(InputError, match="LATITUDE"):
        LatitudeField.from_grid(Grid(10, 10, (0.0, 1.0, 0.0, 0.0, 0.0, -1.0), local))


@pytest.mark.parametrize(
    "crs, gt",
    [
        ("EPSG:4326", (-71.0, 0.002, 0.0, -32.0, 0.0, -0.002)),
        ("EPSG:32633", (400000.0, 200.0, 0.0, 5100000.0, 0.0, -200.0)),
        ("EPSG:3413", (-102400.0, 200.0, 0.0, 102400.0, 0.0, -200.0)),
        ("IAU_2015:49910", (-1.0e6, 2000.0, 0.0, 2.0e6, 0.0, -2000.0)),
    ],
)
def test_a_block_has_the_same_latitude_in_every_window(crs, gt):
    field = LatitudeField.from_grid(grid(crs, gt))
    whole = field.plane(-256, -256, 1536, 1536, STRIDE)  # reaching beyond the grid on both sides
    for x0, y0, w, h in [(0, 0, 256, 256), (-256, 512, 768, 264), (8, 24, 1016, 8), (600, 328, 672, 952)]:
        part = field.plane(x0, y0, w, h, STRIDE)
        r, c = (y0 + 256) // STRIDE, (x0 + 256) // STRIDE
        np.testing.assert_array_equal(part, whole[r:r + h // STRIDE, c:c + w // STRIDE])


def test_a_field_pickles_to_the_same_planes():
    field = LatitudeField.from_grid(grid("EPSG:32633", (400000.0, 200.0, 0.0, 5100000.0, 0.0, -200.0)))
    copy = pickle.loads(pickle.dumps(field))
    np.testing.assert_array_equal(copy.plane(64, 64, 512, 512, STRIDE), field.plane(64, 64, 512, 512, STRIDE))
    assert copy.span() == field.span() and copy.source == "crs"


def set_osr_exceptions(on):
    if on:
        osr.UseExceptions()  # as QGIS 3.40 leaves it for every plugin
    else:
        osr.DontUseExceptions()


@pytest.mark.parametrize("exceptions", [False, True])
def test_points_a_projection_cannot_invert_get_a_nearby_valid_latitude(exceptions):
    # A tile 40,000 km east of a UTM grid: outside transverse Mercator's domain, whatever osr's exception mode.
    g = grid("EPSG:32633", (400000.0, 200.0, 0.0, 5100000.0, 0.0, -200.0))
    was = osr.GetUseExceptions()
    set_osr_exceptions(exceptions)
    try:
        field = LatitudeField.from_grid(g)
        far = field.plane(200_000, 0, 512, 512, STRIDE)
        edge = field.plane(-512, 0, 1024, 512, STRIDE)
    finally:
        set_osr_exceptions(was)
    assert np.isfinite(far).all() and np.all((-90 <= far) & (far <= 90))
    np.testing.assert_array_equal(far, LatitudeField.from_grid(g).plane(200_000, 0, 512, 512, STRIDE))
    assert np.all(np.abs(np.diff(edge, axis=1)) < 0.01)  # an ordinary margin stays smooth


def test_span_of_a_utm_grid_is_its_extreme_edges():
    g = grid("EPSG:32633", (400000.0, 200.0, 0.0, 5100000.0, 0.0, -200.0), 2000, 1000)
    low, high = LatitudeField.from_grid(g).span()
    # In the northern hemisphere a UTM parallel bows south away from the central meridian (500 km here): the
    # highest latitude lies on the top edge at the meridian, the lowest at the bottom corner farthest from it.
    assert high == pytest.approx(pyproj_latitude("EPSG:32633", 500000.0, 5100000.0), abs=1e-9)
    assert low == pytest.approx(pyproj_latitude("EPSG:32633", 800000.0, 4900000.0), abs=1e-9)


def test_constant_latitude():
    field = LatitudeField.constant(-45)
    plane = field.plane(-64, 0, 128, 64, STRIDE)
    assert plane.shape == (8, 16) and np.all(plane == -45.0) and plane.dtype == np.float64
    assert field.span() == (-45.0, -45.0) and field.source == "LATITUDE"


@pytest.mark.parametrize("bad", [91.0, -90.5, float("nan"), float("inf"), "45N", True, None])
def test_constant_out_of_range_is_refused(bad):
    with pytest.raises(InputError, match="LATITUDE must be"):
        LatitudeField.constant(bad)


def test_window_not_on_the_stride_is_a_programming_error():
    field = LatitudeField.constant(10.0)
    with pytest.raises(ValueError, match="multiple of the plane stride"):
        field.plane(4, 0, 64, 64, STRIDE)
