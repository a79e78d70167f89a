"""Terraforming in planetary and odd CRSs, end to end through core.pipeline.run with an identity model.

With an identity generator the output is the colourised relief itself, so every pixel can be checked: the
output carries exactly the input CRS, sits on the processing grid, and is ocean (the ramp's ``below`` colour)
exactly where the DEM resampled onto that grid is below the sea level.

The synthetic DEMs are linear in x (the CRS's easting or longitude) and constant in y: bilinear resampling
reproduces a linear surface exactly, so the elevation at every grid pixel centre is known in closed form,
independently of the engine.
"""

import math
import os

import numpy as np
import pytest
from osgeo import gdal, osr

from v1models import write_model
from terraform_plugin.core import pipeline
from terraform_plugin.core.grid import pixel_size_in_crs_units, processing_grid
from terraform_plugin.core.ramp import training_ramp
from terraform_plugin.core.relief import Relief, fit_target_m, fit_vertical_scale

gdal.UseExceptions()

MARS_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "dem", "mars")
CUSTOM_MARS_WKT = (
    'GEOGCS["Mars 2000 custom",DATUM["D_Mars_2000",SPHEROID["Mars_2000_IAU_IAG",3396190,169.8944472]],'
    'PRIMEM["Reference_Meridian",0],UNIT["degree",0.0174532925199433]]'
)
Z_WEST, Z_EAST = -4000.0, 5000.0  # elevation at the west and east edges of every synthetic DEM
SEA_LEVEL = -1000.0  # a third of the way across: ocean in the west, land in the east
SCALE = 0.75

# name -> (CRS as SetFromUserInput takes it, geotransform of the input, width, height, resolution_m).
# Inputs are coarser than the grid (upsampling: bilinear is exact on a linear surface) and the grids stay
# a few hundred pixels wide so the runs are quick.
CASES = {
    "mars_geographic_0_360": ("IAU_2015:49900", (200.0, 0.1, 0.0, 20.0, 0.0, -0.1), 150, 100, 4000.0),
    "mars_equirectangular": ("IAU_2015:49910", (-3.0e6, 5000.0, 0.0, 1.5e6, 0.0, -5000.0), 200, 100, 3000.0),
    "mars_custom_wkt": (CUSTOM_MARS_WKT, (300.0, 0.1, 0.0, -30.0, 0.0, -0.1), 150, 100, 4000.0),
    "earth_wgs84": ("EPSG:4326", (-71.0, 0.01, 0.0, -32.0, 0.0, -0.01), 100, 100, 600.0),
    "earth_utm_19s": ("EPSG:32719", (300000.0, 400.0, 0.0, 6400000.0, 0.0, -400.0), 150, 100, 250.0),
}


@pytest.fixture(scope="module")
def identity_model(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("model") / "identity.onnx")


def write_linear_dem(path, crs, gt, width, height):
    """Float32 DEM, z = Z_WEST..Z_EAST linearly in x at the pixel centres, in ``crs`` (WKT or code)."""
    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    ds = gdal.GetDriverByName("GTiff").Create(str(path), width, height, 1, gdal.GDT_Float32)
    ds.SetGeoTransform(gt)
    ds.SetSpatialRef(srs)
    row = linear_z(gt[0] + gt[1] * (np.arange(width) + 0.5), gt, width)
    ds.GetRasterBand(1).WriteArray(np.tile(row, (height, 1)).astype(np.float32))
    ds = None
    return str(path)


def linear_z(x, gt, width):
    """The synthetic surface at CRS x coordinates (the same closed form the DEM was written from)."""
    x_first = gt[0] + gt[1] * 0.5
    x_last = gt[0] + gt[1] * (width - 0.5)
    return Z_WEST + (np.asarray(x, dtype=np.float64) - x_first) / (x_last - x_first) * (Z_EAST - Z_WEST)


def read_rgba(path):
    ds = gdal.Open(path)
    return ds, np.dstack([ds.GetRasterBand(i + 1).ReadAsArray() for i in range(ds.RasterCount)])


def same_crs(wkt_a, wkt_b):
    a, b = osr.SpatialReference(), osr.SpatialReference()
    a.ImportFromWkt(wkt_a)
    b.ImportFromWkt(wkt_b)
    return bool(a.IsSame(b))


def check_output(out_path, in_path, request, result, grid):
    """Everything an identity run must satisfy, for any CRS."""
    src = gdal.Open(in_path)
    out, rgba = read_rgba(out_path)
    # Exactly the input's CRS: the same WKT string (the writer keeps it in a sidecar when GeoTIFF keys
    # cannot), and the same CRS by definition.
    assert out.GetProjection() == src.GetProjection()
    assert same_crs(out.GetProjection(), src.GetProjection())
    assert out.GetGeoTransform() == pytest.approx(grid.geotransform, rel=1e-12, abs=1e-12)
    assert (out.RasterXSize, out.RasterYSize) == (grid.width, grid.height) == (result.width, result.height)
    assert rgba.shape[2] == 4 and rgba.dtype == np.uint8

    # Elevation on the processing grid in closed form; the columns where bilinear extrapolates at the
    # input's edges (within half an input pixel) are left out of the colour check, never of the sea check.
    gt_in = src.GetGeoTransform()
    x_centres = grid.geotransform[0] + grid.pixel_size[0] * (np.arange(grid.width) + 0.5)
    z_row = linear_z(x_centres, gt_in, src.RasterXSize)
    assert np.min(np.abs(z_row - SEA_LEVEL)) > 1.0  # no pixel centre sits on the coastline (test premise)
    relief = Relief(request.sea_level, result.vertical_scale)
    expected_row = training_ramp().colourise(
        relief.ramp_elevation(z_row[None, :]), sea=relief.sea_mask(z_row[None, :])
    )[0]

    valid = rgba[..., 3] > 0
    # Every pixel whose centre is inside the input is valid (the grid overhangs by < 1 pixel at most).
    y_centres = grid.geotransform[3] - grid.pixel_size[1] * (np.arange(grid.height) + 0.5)
    inside_y = y_centres > gt_in[3] + gt_in[5] * src.RasterYSize
    x_inside = x_centres < gt_in[0] + gt_in[1] * src.RasterXSize
    assert valid[np.ix_(inside_y, x_inside)].all()

    ocean = np.all(rgba[..., :3] == training_ramp().below, axis=-1)
    expected_ocean = np.broadcast_to(z_row < SEA_LEVEL, ocean.shape)
    np.testing.assert_array_equal(ocean[valid], expected_ocean[valid])
    assert ocean[valid].any() and (~ocean[valid]).any()  # both sides of the coast are present

    interior = (x_centres > gt_in[0] + gt_in[1] * 0.5) & (x_centres < gt_in[0] + gt_in[1] * (src.RasterXSize - 0.5))
    got = rgba[..., :3][np.ix_(inside_y, interior)].astype(int)
    want = np.broadcast_to(expected_row[interior], got.shape).astype(int)
    assert np.abs(got - want).max() <= 1  # float32 vs float64 relief may round a channel differently

    meta = out.GetMetadata()
    text = " ".join(f"{k}={v}" for k, v in meta.items()).lower()
    assert "sea" in text and "scale" in text and "model" in text
    assert any(_close(v, request.sea_level) for k, v in meta.items() if "sea" in k.lower())
    assert any(_close(v, result.vertical_scale) for k, v in meta.items() if "scale" in k.lower())
    assert any(result.model_name in v for k, v in meta.items() if "model" in k.lower())


def _close(text, value):
    try:
        return math.isclose(float(text), value, rel_tol=1e-9, abs_tol=1e-9)
    except ValueError:
        return False


@pytest.mark.parametrize("name", sorted(CASES))
def test_crs_end_to_end(name, tmp_path, identity_model):
    crs, gt, width, height, resolution = CASES[name]
    dem = write_linear_dem(tmp_path / f"{name}.tif", crs, gt, width, height)
    grid = processing_grid(gdal.Open(dem), resolution)
    assert 100 < grid.width < 600 and 20 < grid.height < 600  # the case is sized as intended
    request = pipeline.TerraformRequest(
        input_path=dem,
        output_path=str(tmp_path / "out.tif"),
        model_path=identity_model,
        resolution_m=resolution,
        sea_level=SEA_LEVEL,
        vertical_scale=SCALE,
        batch_size=4,
    )
    result = pipeline.run(request)
    assert result.vertical_scale == SCALE
    check_output(request.output_path, dem, request, result, grid)


def test_geographic_grid_uses_the_bodys_ellipsoid(tmp_path):
    # The same 0.1° DEM on Mars and on Earth: a metre is ~1.87x more degrees on Mars (R 3396 km vs ~6340 km).
    crs, gt, width, height, resolution = CASES["mars_geographic_0_360"]
    mars = processing_grid(gdal.Open(write_linear_dem(tmp_path / "m.tif", crs, gt, width, height)), resolution)
    srs = osr.SpatialReference()
    srs.SetFromUserInput("IAU_2015:49900")
    assert mars.pixel_size == pytest.approx(pixel_size_in_crs_units(srs, 15.0, resolution), rel=1e-12)
    earth = osr.SpatialReference()
    earth.SetFromUserInput("EPSG:4326")
    ratio = mars.pixel_size[1] / pixel_size_in_crs_units(earth, 15.0, resolution)[1]
    assert 1.85 < ratio < 1.89


def test_fit_to_earth_scale_is_reported_and_used(tmp_path, identity_model):
    crs, gt, width, height, resolution = CASES["mars_geographic_0_360"]
    dem = write_linear_dem(tmp_path / "fit.tif", crs, gt, width, height)
    request = pipeline.TerraformRequest(
        input_path=dem,
        output_path=str(tmp_path / "fit_out.tif"),
        model_path=identity_model,
        resolution_m=resolution,
        sea_level=SEA_LEVEL,
        vertical_scale=123.0,  # ignored: fit_to_earth chooses
        fit_to_earth=True,
    )
    log = []
    result = pipeline.run(request, log=log.append)
    # The 99th percentile of land relief lands near 90 % of the ramp. The engine may sample the input or the
    # resampled grid: on this linear surface both give the same percentile to well under 2 %.
    ds = gdal.Open(dem)  # held: a band outlived by its dataset crashes GDAL's Python bindings
    expected = fit_vertical_scale(ds.GetRasterBand(1), SEA_LEVEL, fit_target_m(training_ramp()))
    assert result.vertical_scale == pytest.approx(expected, rel=0.02)
    assert any("scale" in line.lower() for line in log)  # the chosen value is reported
    check_output(request.output_path, dem, request, result, processing_grid(gdal.Open(dem), resolution))


@pytest.mark.skipif(not os.path.isdir(MARS_DIR), reason="shared MOLA rasters absent (../shared/data/dem/mars)")
@pytest.mark.parametrize(
    "name, window",
    [
        ("mars_mola_megdr4ppd_tharsis_256.tif", None),  # equirectangular metres
        ("megt90n000cb.vrt", (265.0, 5.0, 290.0, -10.0)),  # geographic, 0-360°E, cropped to Valles Marineris
    ],
)
def test_shared_mola(name, window, tmp_path, identity_model):
    src = os.path.join(MARS_DIR, name)
    if window is not None:
        crop = gdal.Translate(str(tmp_path / "crop.vrt"), src, format="VRT", projWin=list(window))
        crop = None  # closing writes the VRT
        src = str(tmp_path / "crop.vrt")
    resolution = 20000.0  # ~the data's own 14.8 km: a quick run that still resamples
    request = pipeline.TerraformRequest(
        input_path=src,
        output_path=str(tmp_path / "mola.tif"),
        model_path=identity_model,
        resolution_m=resolution,
        sea_level=-3000.0,
        fit_to_earth=True,
    )
    result = pipeline.run(request)
    grid = processing_grid(gdal.Open(src), resolution)
    out, rgba = read_rgba(request.output_path)
    assert out.GetProjection() == gdal.Open(src).GetProjection()
    assert out.GetGeoTransform() == pytest.approx(grid.geotransform, rel=1e-12)
    assert 0 < result.vertical_scale < 1  # Mars above -3 km is taller than Earth: the fit flattens it
    # Ocean exactly where the DEM, resampled onto the grid by GDAL itself, is below sea level.
    left, xres, _, top, _, yres = grid.geotransform
    warped = gdal.Warp(
        "", src, format="MEM", outputBounds=(left, top + yres * grid.height, left + xres * grid.width, top),
        width=grid.width, height=grid.height, resampleAlg="bilinear", outputType=gdal.GDT_Float32,
        dstNodata=float("nan"),  # the grid overhangs the input by < 1 pixel: no data there
    )
    z = warped.GetRasterBand(1).ReadAsArray()
    np.testing.assert_array_equal(rgba[..., 3] > 0, np.isfinite(z))  # transparent exactly off the input
    ocean = np.all(rgba[..., :3] == training_ramp().below, axis=-1)
    # Away from the coastline (where float rounding cannot matter) and on the input.
    clear = np.isfinite(z) & (np.abs(z - request.sea_level) > 1.0)
    np.testing.assert_array_equal(ocean[clear], (z <= request.sea_level)[clear])
    assert ocean.any() and (~ocean).any()


# -- the same CRSs through the real algorithm under qgis_process.bin (QGIS's own Python) ---------------------

# How GDAL 3.6 writes a Mars geographic CRS into a VRT or a PAM .aux.xml (the shared MOLA VRT has exactly this):
# an "IAU" authority that QGIS 3.22's PROJ database does not know (it has "IAU_2015"), so QGIS shows the
# layer with an invalid CRS although GDAL, and so the engine, reads it perfectly.
IAU_AUTHORITY_MARS_WKT = (
    'GEOGCS["Mars (2015) - Sphere / Ocentric",DATUM["Mars (2015) - Sphere",SPHEROID["Mars (2015) - Sphere",'
    '3396190,0,AUTHORITY["IAU","49900"]],AUTHORITY["IAU","49900"]],PRIMEM["Reference Meridian",0,'
    'AUTHORITY["IAU","49900"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
    'AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["IAU","49900"]]'
)


def write_iau_vrt(tmp_path):
    """A 0-360° Mars VRT whose SRS carries the IAU authority, over a synthetic GeoTIFF."""
    crs, gt, width, height, resolution = CASES["mars_geographic_0_360"]
    tif = write_linear_dem(tmp_path / "iau_source.tif", crs, gt, width, height)
    path = str(tmp_path / "mars_iau.vrt")
    vrt = gdal.Translate(path, tif, format="VRT", outputSRS=IAU_AUTHORITY_MARS_WKT)
    vrt = None  # closing writes it
    assert 'AUTHORITY["IAU","49900"]' in gdal.Open(path).GetProjection()
    return path, resolution


# The IAU-authority VRT: QGIS shows its CRS as invalid, yet the algorithm must run on the file's own CRS.
@pytest.mark.parametrize("name", sorted(CASES) + ["mars_iau_authority_vrt"])
def test_crs_through_qgis_process(name, tmp_path, qgis_process, models):
    if name == "mars_iau_authority_vrt":
        dem, resolution = write_iau_vrt(tmp_path)
    else:
        crs, gt, width, height, resolution = CASES[name]
        dem = write_linear_dem(tmp_path / f"{name}.tif", crs, gt, width, height)
    out = tmp_path / "out.tif"
    done = qgis_process(
        "run", "terraform:terraformdem", "--", f"INPUT={dem}", f"MODEL={models['identity']}",
        f"RESOLUTION={resolution}", f"SEA_LEVEL={SEA_LEVEL}", f"VERTICAL_SCALE={SCALE}", f"OUTPUT={out}",
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    src, result = gdal.Open(dem), gdal.Open(str(out))
    assert result.GetProjection() == src.GetProjection()  # exactly the input's CRS, also in QGIS's Python
    assert result.GetGeoTransform() == pytest.approx(processing_grid(src, resolution).geotransform, rel=1e-12)
    assert float(result.GetMetadataItem("TERRAFORM_SEA_LEVEL")) == SEA_LEVEL
    assert float(result.GetMetadataItem("TERRAFORM_VERTICAL_SCALE")) == SCALE
