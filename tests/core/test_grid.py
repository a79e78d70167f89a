"""The processing grid: pixel sizes from each CRS's own ellipsoid, extent coverage, clear errors."""

import math
import os

import numpy as np
import pytest
from osgeo import gdal, osr
from pyproj import Geod  # independent geodesic reference (tests only; the core stays numpy + osgeo)

from terraform_plugin.core.errors import InputError
from terraform_plugin.core.grid import MAX_SIDE, Grid, pixel_size_in_crs_units, processing_grid

gdal.UseExceptions()

MARS_R = 3396190.0
MARS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "dem", "mars")

# A Mars geographic CRS as a user might paste it: no AUTHORITY anywhere.
CUSTOM_MARS_WKT = (
    'GEOGCS["Mars 2000 custom",DATUM["D_Mars_2000",SPHEROID["Mars_2000_IAU_IAG",3396190,169.8944472]],'
    'PRIMEM["Reference_Meridian",0],UNIT["degree",0.0174532925199433]]'
)


def srs_of(text):
    srs = osr.SpatialReference()
    srs.SetFromUserInput(text)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs


def mem_raster(crs, gt, width=100, height=80, wkt=None):
    ds = gdal.GetDriverByName("MEM").Create("", width, height, 1, gdal.GDT_Float32)
    ds.SetGeoTransform(gt)
    if wkt is not None:
        ds.SetProjection(wkt)
    elif crs is not None:
        ds.SetSpatialRef(srs_of(crs))
    return ds


def geod_degrees(geod, lat, metres):
    """(degrees of longitude, degrees of latitude) spanned by `metres` at `lat`, from pyproj's geodesics.

    Due east for 200 m follows the parallel to ~1e-9 relative; due north is the meridian arc, centred on lat.
    """
    lon2, _, _ = geod.fwd(0.0, lat, 90.0, metres)
    start = lat - math.degrees(metres / 2 / 6.4e6)
    _, lat2, _ = geod.fwd(0.0, start, 0.0, metres)
    return lon2, lat2 - start


@pytest.mark.parametrize("lat", [0.0, 30.0, -45.0, 60.0, 80.0])
def test_wgs84_pixel_sizes_match_geodesics(lat):
    # East-west: 1 m along the parallel ~ geodesic heading east for small distances.
    # North-south: along the meridian geodesic. Both from pyproj, not from the formula under test.
    xres, yres = pixel_size_in_crs_units(srs_of("EPSG:4326"), lat, 200.0)
    geod = Geod(ellps="WGS84")
    lon_deg, lat_deg = geod_degrees(geod, lat, 200.0)
    assert xres == pytest.approx(lon_deg, rel=1e-6)
    assert yres == pytest.approx(lat_deg, rel=1e-6)


def test_wgs84_differs_from_an_earth_equator_constant():
    # The classic bug: 200 m / 111320 m per degree everywhere. At 60°N x must be ~2x that.
    xres, yres = pixel_size_in_crs_units(srs_of("EPSG:4326"), 60.0, 200.0)
    assert xres == pytest.approx(200.0 / 111320.0 / math.cos(math.radians(60.0)), rel=5e-3)
    assert yres < 200.0 / 110000.0  # M(60°) > M(0°): fewer degrees per metre than at the equator


def test_mars_sphere_pixel_size():
    xres, yres = pixel_size_in_crs_units(srs_of("IAU_2015:49900"), 0.0, 200.0)
    expected = math.degrees(200.0 / MARS_R)
    assert expected == pytest.approx(0.003374, abs=1e-6)
    assert xres == pytest.approx(expected, rel=1e-12)
    assert yres == pytest.approx(expected, rel=1e-12)
    # On a sphere M = N = R, so only cos(lat) changes x.
    x45, y45 = pixel_size_in_crs_units(srs_of("IAU_2015:49900"), 45.0, 200.0)
    assert y45 == pytest.approx(expected, rel=1e-12)
    assert x45 == pytest.approx(expected / math.cos(math.radians(45.0)), rel=1e-12)


def test_custom_mars_wkt_uses_its_own_flattened_ellipsoid():
    lat = 40.0
    xres, yres = pixel_size_in_crs_units(srs_of(CUSTOM_MARS_WKT), lat, 200.0)
    geod = Geod(a=3396190.0, rf=169.8944472)
    lon_deg, lat_deg = geod_degrees(geod, lat, 200.0)
    assert xres == pytest.approx(lon_deg, rel=1e-6)
    assert yres == pytest.approx(lat_deg, rel=1e-6)


def test_projected_units():
    assert pixel_size_in_crs_units(srs_of("EPSG:32719"), 0.0, 200.0) == (200.0, 200.0)
    assert pixel_size_in_crs_units(srs_of("IAU_2015:49910"), 10.0, 200.0) == (200.0, 200.0)
    xres, yres = pixel_size_in_crs_units(srs_of("EPSG:2229"), 34.0, 200.0)  # US survey feet
    assert xres == yres == pytest.approx(656.1667, abs=1e-3)


def test_near_the_pole_x_is_clamped_finite():
    xres, yres = pixel_size_in_crs_units(srs_of("EPSG:4326"), 90.0, 200.0)
    x89, _ = pixel_size_in_crs_units(srs_of("EPSG:4326"), 89.0, 200.0)
    assert math.isfinite(xres) and xres == pytest.approx(x89, rel=1e-3)


@pytest.mark.parametrize("bad", [0.0, -200.0, float("nan"), float("inf")])
def test_non_positive_resolution_is_refused(bad):
    with pytest.raises(InputError, match="resolution"):
        pixel_size_in_crs_units(srs_of("EPSG:4326"), 0.0, bad)
    with pytest.raises(InputError, match="resolution"):
        processing_grid(mem_raster("EPSG:4326", (0, 0.01, 0, 1, 0, -0.01)), bad)


def assert_covers(grid: Grid, ds):
    gt = ds.GetGeoTransform()
    right = gt[0] + gt[1] * ds.RasterXSize
    bottom = gt[3] + gt[5] * ds.RasterYSize
    xres, yres = grid.pixel_size
    assert grid.geotransform[0] == gt[0] and grid.geotransform[3] == gt[3]  # origin: input's top-left
    assert grid.geotransform[2] == 0 and grid.geotransform[4] == 0
    g_right = grid.geotransform[0] + grid.width * xres
    g_bottom = grid.geotransform[3] - grid.height * yres
    assert g_right >= right - 1e-9 * abs(right) and g_right - right < xres  # covers, by less than 1 pixel extra
    assert g_bottom <= bottom + 1e-9 * abs(bottom) and bottom - g_bottom < yres


def test_grid_covers_a_wgs84_tile_at_its_centre_latitude():
    # A 1°x1° SRTM-like tile at 32-33°S.
    ds = mem_raster("EPSG:4326", (-71.0, 1 / 1200, 0, -32.0, 0, -1 / 1200), 1200, 1200)
    grid = processing_grid(ds, 200.0)
    assert_covers(grid, ds)
    x, y = pixel_size_in_crs_units(srs_of("EPSG:4326"), -32.5, 200.0)
    assert grid.pixel_size == pytest.approx((x, y), rel=1e-12)
    assert (grid.width, grid.height) == (math.ceil(1 / x), math.ceil(1 / y))
    assert grid.wkt == ds.GetProjection()


def test_grid_on_mars_0_360_longitudes():
    # Longitudes beyond 180 are ordinary numbers for the grid; nothing may wrap them.
    ds = mem_raster("IAU_2015:49900", (200.0, 0.25, 0, 10.0, 0, -0.25), 160, 80)
    grid = processing_grid(ds, 200.0)
    assert grid.geotransform[0] == 200.0
    assert_covers(grid, ds)
    assert grid.pixel_size[1] == pytest.approx(math.degrees(200.0 / MARS_R), rel=1e-12)
    assert grid.pixel_size[0] == pytest.approx(grid.pixel_size[1], rel=1e-12)  # centred on the equator


def test_exact_multiple_does_not_gain_a_column():
    ds = mem_raster("EPSG:32719", (300000.0, 30.0, 0, 6400000.0, 0, -30.0), 200, 100)  # 6000 m x 3000 m
    grid = processing_grid(ds, 200.0)
    assert (grid.width, grid.height) == (30, 15)
    assert grid.geotransform == (300000.0, 200.0, 0.0, 6400000.0, 0.0, -200.0)


def test_feet_crs_grid():
    ds = mem_raster("EPSG:2229", (6400000.0, 100.0, 0, 1900000.0, 0, -100.0), 100, 100)  # 10000 ft square
    grid = processing_grid(ds, 200.0)
    assert grid.pixel_size == pytest.approx((200 / 0.3048006096, 200 / 0.3048006096))
    assert grid.width == math.ceil(10000 / (200 / 0.3048006096)) == 16


def test_custom_wkt_is_kept_verbatim():
    ds = mem_raster(None, (0.0, 0.25, 0, 10.0, 0, -0.25), wkt=CUSTOM_MARS_WKT)
    grid = processing_grid(ds, 200.0)
    assert grid.wkt == ds.GetProjection()
    assert "AUTHORITY" not in grid.wkt
    assert_covers(grid, ds)


def test_south_up_input_gets_a_north_up_grid_over_the_same_extent():
    ds = mem_raster("EPSG:32719", (300000.0, 30.0, 0, 6397000.0, 0, 30.0), 200, 100)
    grid = processing_grid(ds, 200.0)
    assert grid.geotransform == (300000.0, 200.0, 0.0, 6400000.0, 0.0, -200.0)


def test_no_crs_says_how_to_assign_one():
    ds = mem_raster(None, (0.0, 1.0, 0, 0.0, 0, -1.0))
    with pytest.raises(InputError, match="no CRS") as info:
        processing_grid(ds, 200.0)
    assert "Layer Properties" in str(info.value) and "Assigned" in str(info.value)


def test_rotated_geotransform_is_refused():
    ds = mem_raster("EPSG:32719", (300000.0, 30.0, 5.0, 6400000.0, 5.0, -30.0))
    with pytest.raises(InputError, match="rotated"):
        processing_grid(ds, 200.0)


def test_projected_coordinates_tagged_as_degrees_are_refused():
    # A UTM raster wrongly labelled EPSG:4326: "latitude" 6.4 million degrees.
    ds = mem_raster("EPSG:4326", (300000.0, 30.0, 0, 6400000.0, 0, -30.0))
    with pytest.raises(InputError, match="not degrees"):
        processing_grid(ds, 200.0)


def test_absurd_grid_names_the_resolution_needed():
    # A whole-Earth extent in metres at 1 micrometre per pixel: 4e13 pixels per side.
    ds = mem_raster("EPSG:3857", (-2e7, 4e5, 0, 2e7, 0, -4e5), 100, 100)
    with pytest.raises(InputError, match="at least") as info:
        processing_grid(ds, 1e-6)
    needed = float(str(info.value).split("at least ")[1].split(" m")[0])
    assert math.ceil(4e7 / needed) <= MAX_SIDE  # the advice is itself a grid GDAL can hold
    processing_grid(ds, needed)


@pytest.mark.skipif(not os.path.isdir(MARS_DIR), reason="shared MOLA rasters absent (../shared/data/dem/mars)")
@pytest.mark.parametrize(
    "name", ["megt90n000cb.vrt", "mars_mola_megdr4ppd_global_eqc.tif", "mars_mola_megdr4ppd_tharsis_256.tif"]
)
def test_shared_mola_rasters(name):
    ds = gdal.Open(os.path.join(MARS_DIR, name))
    grid = processing_grid(ds, 200.0)
    assert grid.wkt == ds.GetProjection()
    assert_covers(grid, ds)
    if name.endswith(".vrt"):  # geographic, 0-360°, global: centred on the equator
        assert grid.pixel_size == pytest.approx((math.degrees(200 / MARS_R),) * 2, rel=1e-12)
        assert (grid.width, grid.height) == (math.ceil(360 / grid.pixel_size[0]), math.ceil(180 / grid.pixel_size[1]))
    else:  # equirectangular metres: 14818.67 m pixels -> 200 m is a 74.09x finer grid
        assert grid.pixel_size == (200.0, 200.0)
        assert grid.width == math.ceil(ds.RasterXSize * 14818.674380826555 / 200.0 - 1e-6)
    assert np.isfinite(grid.geotransform).all()


# --- projected CRSs whose metres are not ground metres where the DEM lies -------------------------------------


def ground_pixel(grid, crs, ellps):
    """(east-west, north-south) ground metres of one grid pixel at the grid's centre, by pyproj alone: the
    pixel's edges through its centre are inverse-projected with pyproj's Transformer and measured with Geod."""
    from pyproj import CRS, Transformer

    to_lonlat = Transformer.from_crs(CRS.from_user_input(crs), CRS.from_user_input(crs).geodetic_crs, always_xy=True)
    geod = Geod(**ellps)
    xres, yres = grid.pixel_size
    cx = grid.geotransform[0] + grid.width * xres / 2
    cy = grid.geotransform[3] - grid.height * yres / 2
    ends = {
        "x": ((cx - xres / 2, cy), (cx + xres / 2, cy)),
        "y": ((cx, cy - yres / 2), (cx, cy + yres / 2)),
    }
    sizes = []
    for (x1, y1), (x2, y2) in ends.values():
        lon1, lat1 = to_lonlat.transform(x1, y1)
        lon2, lat2 = to_lonlat.transform(x2, y2)
        sizes.append(geod.inv(lon1, lat1, lon2, lat2)[2])
    return tuple(sizes)


def mercator_dem(lat, size_m=400_000.0):
    """A DEM in EPSG:3857 centred on (10°E, lat), 100 x 100 pixels over size_m CRS metres."""
    x, y = osr.CoordinateTransformation(srs_of("EPSG:4326"), srs_of("EPSG:3857")).TransformPoint(10.0, lat)[:2]
    pixel = size_m / 100
    return mem_raster("EPSG:3857", (x - size_m / 2, pixel, 0, y + size_m / 2, 0, -pixel), 100, 100)


@pytest.mark.parametrize("lat, factor", [(85.0, 11.44), (60.0, 2.0), (-60.0, 2.0)])
def test_web_mercator_far_from_the_equator_gets_ground_metre_pixels(lat, factor):
    grid = processing_grid(mercator_dem(lat), 200.0)
    assert grid.scale_corrected
    assert grid.scale_factor == pytest.approx((factor, factor), rel=3e-3)  # ~1/cos(lat) on the WGS84 ellipsoid
    assert ground_pixel(grid, "EPSG:3857", {"ellps": "WGS84"}) == pytest.approx((200.0, 200.0), rel=1e-4)
    # Uncorrected, a "200 m" pixel at 85°N would be 17.5 m on the ground (the textures a tenth of their size).
    assert grid.pixel_size[0] == pytest.approx(200.0 * grid.scale_factor[0], rel=1e-12)


def test_web_mercator_near_the_equator_keeps_round_pixels():
    grid = processing_grid(mercator_dem(5.0), 200.0)  # k = 1.004 x, 1.011 y: within the tolerance
    assert not grid.scale_corrected
    assert grid.pixel_size == (200.0, 200.0)
    assert 1.0 < grid.scale_factor[0] < 1.02 and 1.0 < grid.scale_factor[1] < 1.02  # measured and reported


@pytest.mark.parametrize("easting, k", [(500000.0, 0.9996), (833000.0, 1.0010), (300000.0, 1.0001)])
def test_utm_keeps_its_exact_pixels(easting, k):
    # On the central meridian, at the zone's edge (~3° east at 45°N) and between: the grid of a 200 m UTM DEM
    # is exactly the input's, whatever the scale factor there.
    ds = mem_raster("EPSG:32633", (easting - 10000.0, 200.0, 0, 5000000.0, 0, -200.0), 100, 100)
    grid = processing_grid(ds, 200.0)
    assert grid.geotransform == (easting - 10000.0, 200.0, 0.0, 5000000.0, 0.0, -200.0)
    assert (grid.width, grid.height) == (100, 100)
    assert not grid.scale_corrected
    assert grid.scale_factor == pytest.approx((k, k), abs=2e-4)


def test_utm_south_scale_factor_on_the_meridian():
    ds = mem_raster("EPSG:32719", (490000.0, 200.0, 0, 6400000.0, 0, -200.0), 100, 100)
    grid = processing_grid(ds, 200.0)
    assert grid.pixel_size == (200.0, 200.0)
    assert grid.scale_factor == pytest.approx((0.9996, 0.9996), abs=1e-6)


def test_geographic_grid_reports_no_scale_factor():
    ds = mem_raster("EPSG:4326", (10.0, 0.01, 0, 61.0, 0, -0.01))
    grid = processing_grid(ds, 200.0)
    assert grid.scale_factor == (1.0, 1.0) and not grid.scale_corrected
    assert grid.pixel_size == pytest.approx(pixel_size_in_crs_units(srs_of("EPSG:4326"), 60.6, 200.0), rel=1e-12)


def test_polar_stereographic_at_the_pole_uses_its_own_scale():
    # EPSG:3031 (true scale at 71°S): k = 0.9728 at the pole itself, a DEM centred there gets 194.6 m pixels.
    ds = mem_raster("EPSG:3031", (-100000.0, 1000.0, 0, 100000.0, 0, -1000.0), 200, 200)
    grid = processing_grid(ds, 200.0)
    assert grid.scale_corrected
    assert grid.scale_factor == pytest.approx((0.97277, 0.97277), abs=1e-4)
    assert ground_pixel(grid, "EPSG:3031", {"ellps": "WGS84"}) == pytest.approx((200.0, 200.0), rel=1e-4)


def test_mars_equirectangular_at_60_degrees_gets_square_ground_pixels():
    # Equidistant cylindrical: north-south is true, east-west stretched by 1/cos(lat): the grid is 400 x 200
    # CRS metres, square on the ground (the model was trained on square ground pixels).
    y = MARS_R * math.radians(60.0)
    ds = mem_raster("IAU_2015:49910", (0.0, 1000.0, 0, y + 50000.0, 0, -1000.0), 100, 100)
    grid = processing_grid(ds, 200.0)
    assert grid.scale_factor == pytest.approx((2.0, 1.0), rel=1e-6)
    assert grid.pixel_size == pytest.approx((400.0, 200.0), rel=1e-6)
    assert ground_pixel(grid, "IAU_2015:49910", {"a": MARS_R, "b": MARS_R}) == pytest.approx((200.0, 200.0), rel=1e-6)


def test_projected_centre_outside_the_projection_is_refused():
    # 90,000 km east of the meridian: coordinates no transverse Mercator can map back to the ellipsoid.
    ds = mem_raster("EPSG:32633", (9.0e7, 200.0, 0, 1.0e6, 0, -200.0))
    with pytest.raises(InputError, match="outside the area its CRS can map") as info:
        processing_grid(ds, 200.0)
    assert "Assigned" in str(info.value)
