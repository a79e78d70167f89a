"""The true-scale correction of the processing grid (core.grid) is said in the run's log and kept in the output's
metadata: Web Mercator at 60°N stretches ground distances by about 2, so the output's pixels are about 400 CRS
metres for 200 m on the ground; UTM's 0.9996 is within tolerance and left uncorrected."""

import numpy as np
import pytest
from osgeo import gdal, osr
from pyproj import CRS, Geod, Transformer  # an independent reference for ground distances (tests only)

from terraform_plugin.core import pipeline


def run(dem, out, model):
    logs = []
    pipeline.run(pipeline.TerraformRequest(str(dem), str(out), model, threads=1), log=logs.append)
    return gdal.Open(str(out)), logs


def test_web_mercator_at_60_north_is_logged_and_recorded(tmp_path, kit, models):
    to_mercator = osr.CoordinateTransformation(*[_traditional(c) for c in ("EPSG:4326", "EPSG:3857")])
    x, y = to_mercator.TransformPoint(10.0, 60.0)[:2]
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(60, 60), crs="EPSG:3857", pixel=800.0,
                        origin=(x - 24000.0, y + 24000.0))
    out, logs = run(dem, tmp_path / "out.tif", models["identity"])
    meta = out.GetMetadata()
    kx, ky = map(float, meta["TERRAFORM_SCALE_FACTOR"].split())
    assert meta["TERRAFORM_SCALE_CORRECTED"] == "yes"
    assert kx == pytest.approx(2.0, rel=3e-3) and ky == pytest.approx(2.0, rel=3e-3)  # ~1/cos(60°)
    gt = out.GetGeoTransform()
    assert (gt[1], -gt[5]) == pytest.approx((200.0 * kx, 200.0 * ky), rel=1e-5)
    # The recorded factor is the one the pixels were sized by: an output pixel at the centre is 200 m on the
    # WGS84 ellipsoid (pyproj's geodesic), though about 400 CRS metres.
    cx, cy = gt[0] + gt[1] * out.RasterXSize / 2, gt[3] + gt[5] * out.RasterYSize / 2
    lonlat = Transformer.from_crs(CRS("EPSG:3857"), CRS("EPSG:4326"), always_xy=True)
    geod = Geod(ellps="WGS84")
    for dx, dy in ((gt[1], 0.0), (0.0, gt[5])):
        (lon0, lon1), (lat0, lat1) = lonlat.transform(np.array([cx, cx + dx]), np.array([cy, cy + dy]))
        assert geod.inv(lon0, lat0, lon1, lat1)[2] == pytest.approx(200.0, rel=2e-3)
    line = next(line for line in logs if line.startswith("True scale:"))
    assert "stretches ground distances by 1.99" in line and f"pixels are {gt[1]:.6g} x {-gt[5]:.6g} CRS units" in line
    assert "for 200 m on the ground" in line


def test_utm_is_logged_as_within_tolerance_and_a_geographic_crs_not_at_all(tmp_path, kit, models):
    utm = kit.write_dem(tmp_path / "utm.tif", kit.terrain(40, 40), origin=(500000.0, 4600000.0))
    out, logs = run(utm, tmp_path / "utm_out.tif", models["identity"])
    assert out.GetMetadata()["TERRAFORM_SCALE_CORRECTED"] == "no"
    assert out.GetMetadata()["TERRAFORM_SCALE_FACTOR"].startswith("0.9996")
    assert any(line.startswith("True scale: the CRS's scale factor at the DEM's centre is 0.9996")
               and "within 2% of true: pixels are 200 x 200 CRS units, uncorrected" in line for line in logs)
    geo = kit.write_dem(tmp_path / "geo.tif", kit.terrain(40, 40), crs="EPSG:4326", pixel=0.002, origin=(10.0, 45.0))
    out, logs = run(geo, tmp_path / "geo_out.tif", models["identity"])
    assert not any(line.startswith("True scale") for line in logs)
    assert out.GetMetadata()["TERRAFORM_SCALE_FACTOR"] == "1 1"
    assert out.GetMetadata()["TERRAFORM_SCALE_CORRECTED"] == "no"


def _traditional(crs):
    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs
