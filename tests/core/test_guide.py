"""The colour guide's planes: a guide in another CRS and resolution, partial cover, no-data, alpha and masks,
window independence, and the guides that must be refused."""

import numpy as np
import pytest
from osgeo import gdal, osr
from pyproj import CRS, Transformer  # independent reference (tests only)

from terraform_plugin.core.errors import InputError
from terraform_plugin.core.grid import Grid
from terraform_plugin.core.guide import GuidePlanes

gdal.UseExceptions()

COARSE = 32
STRIDE = 8
# The DEM's processing grid: UTM 33N, 512 x 512 px of 200 m (102.4 km; about 15.0-16.2°E, 40.6-41.5°N).
DEM_GT = (500000.0, 200.0, 0.0, 4600000.0, 0.0, -200.0)
# The guide: EPSG:4326, 0.01° pixels over 14.5-16.7°E, 40.2-42.2°N. Red rises 1 DN per pixel eastwards, green
# 1 DN per pixel southwards, so each is linear in longitude / latitude with integer values at pixel centres.
GUIDE_GT = (14.5, 0.01, 0.0, 42.2, 0.0, -0.01)
GUIDE_SIZE = (220, 200)  # columns, rows


def wkt(crs):
    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    return srs.ExportToWkt()


def dem_grid(crs="EPSG:32633", gt=DEM_GT, size=512):
    return Grid(size, size, gt, wkt(crs))


def red_at(lon):
    return 20.0 + (lon - GUIDE_GT[0]) / 0.01 - 0.5


def green_at(lat):
    return 20.0 + (GUIDE_GT[3] - lat) / 0.01 - 0.5


def guide_rgb():
    cols, rows = GUIDE_SIZE
    red = np.broadcast_to(20 + np.arange(cols), (rows, cols))
    green = np.broadcast_to((20 + np.arange(rows))[:, None], (rows, cols))
    blue = np.full((rows, cols), 100)
    return np.stack([red, green, blue]).astype(np.uint8)


def write_guide(path, bands, crs="EPSG:4326", gt=GUIDE_GT, nodata=None, interps=None, driver="GTiff"):
    bands = np.asarray(bands)
    kind = {np.dtype(np.uint8): gdal.GDT_Byte, np.dtype(np.uint16): gdal.GDT_UInt16}[bands.dtype]
    ds = gdal.GetDriverByName(driver).Create(str(path), bands.shape[2], bands.shape[1], len(bands), kind)
    ds.SetGeoTransform(gt)
    if crs is not None:
        ds.SetProjection(wkt(crs))
    for i, band in enumerate(bands, start=1):
        if nodata is not None:
            ds.GetRasterBand(i).SetNoDataValue(nodata)
        if interps is not None:
            ds.GetRasterBand(i).SetColorInterpretation(interps[i - 1])
        ds.GetRasterBand(i).WriteArray(band)
    ds = None
    return str(path)


def pixel_box(lon0, lon1, lat0, lat1):
    """(row slice, column slice) of the guide's pixels whose centres lie in the lon/lat box."""
    c0, c1 = (np.array([lon0, lon1]) - GUIDE_GT[0]) / 0.01
    r0, r1 = (GUIDE_GT[3] - np.array([lat1, lat0])) / 0.01
    return slice(int(round(r0)), int(round(r1))), slice(int(round(c0)), int(round(c1)))


def block_lonlat(grid, x0, y0, width, height, crs="EPSG:32633"):
    u = x0 + STRIDE * (np.arange(width // STRIDE) + 0.5)
    v = y0 + STRIDE * (np.arange(height // STRIDE) + 0.5)
    gt = grid.geotransform
    xs, ys = np.meshgrid(gt[0] + u * gt[1], gt[3] + v * gt[5])
    return Transformer.from_crs(CRS(crs), CRS("EPSG:4326"), always_xy=True).transform(xs, ys)


@pytest.fixture(scope="module")
def full_guide(tmp_path_factory):
    return write_guide(tmp_path_factory.mktemp("guide") / "full.tif", guide_rgb())


def test_a_guide_in_another_crs_and_resolution_lands_where_it_belongs(full_guide):
    grid = dem_grid()
    guide = GuidePlanes.open(full_guide, grid, COARSE)
    assert guide.cells == (16 + 8, 16 + 8)
    window = (-64, -64, 640, 640)  # a tile reaching 64 px beyond the grid on every side
    rgb, mask = guide.planes(*window, STRIDE)
    assert rgb.shape == (3, 80, 80) and mask.shape == (80, 80)
    assert rgb.dtype == np.float32 and mask.dtype == np.float32
    assert np.all(mask == 1.0)  # the guide covers the grid and its margins
    lon, lat = block_lonlat(grid, *window)
    # Area averages over 6.4 km cells of a linear colour field, interpolated between cell centres: the field
    # itself. A cell misplaced by half its width would be off by 3-4 DN.
    np.testing.assert_allclose(rgb[0], red_at(lon), atol=0.75)
    np.testing.assert_allclose(rgb[1], green_at(lat), atol=0.75)
    np.testing.assert_allclose(rgb[2], 100.0, atol=1e-4)


@pytest.mark.parametrize("kind", ["vrt", "gpkg"])
def test_vrt_and_geopackage_guides(full_guide, tmp_path, kind):
    if kind == "vrt":
        path = str(tmp_path / "guide.vrt")
        gdal.BuildVRT(path, [full_guide]).FlushCache()
    else:
        path = str(tmp_path / "guide.gpkg")
        gdal.Translate(path, full_guide, format="GPKG").FlushCache()  # RGBA PNG tiles
    grid = dem_grid()
    rgb, mask = GuidePlanes.open(path, grid, COARSE).planes(0, 0, 512, 512, STRIDE)
    reference, _ = GuidePlanes.open(full_guide, grid, COARSE).planes(0, 0, 512, 512, STRIDE)
    assert np.all(mask == 1.0)
    np.testing.assert_allclose(rgb, reference, atol=1e-3)


def test_bands_named_red_green_blue_are_taken_by_name(tmp_path):
    # A BGR file: band 1 is blue, band 3 red, as their colour interpretation says.
    rgb = guide_rgb()
    bgr = write_guide(tmp_path / "bgr.tif", rgb[::-1], interps=[gdal.GCI_BlueBand, gdal.GCI_GreenBand,
                                                                gdal.GCI_RedBand])
    planes, _ = GuidePlanes.open(bgr, dem_grid(), COARSE).planes(0, 0, 256, 256, STRIDE)
    lon, _ = block_lonlat(dem_grid(), 0, 0, 256, 256)
    np.testing.assert_allclose(planes[0], red_at(lon), atol=0.75)
    np.testing.assert_allclose(planes[2], 100.0, atol=1e-4)


def test_a_guide_covering_part_of_the_dem(tmp_path):
    # The guide stops at 15.6°E, a little east of the grid's middle.
    cols = int(round((15.6 - GUIDE_GT[0]) / 0.01))
    path = write_guide(tmp_path / "west.tif", guide_rgb()[:, :, :cols])
    grid = dem_grid()
    rgb, mask = GuidePlanes.open(path, grid, COARSE).planes(0, 0, 512, 512, STRIDE)
    lon, lat = block_lonlat(grid, 0, 0, 512, 512)
    cell_deg = COARSE * 200.0 / 84000.0  # a cell is about 0.076° of longitude here
    assert np.all(mask[lon < 15.6 - cell_deg] == 1.0) and np.all(mask[lon > 15.6 + cell_deg] == 0.0)
    assert 0.3 < mask.mean() < 0.7
    assert np.all(rgb[:, mask == 0] == 0.0)
    # Normalised by coverage, colours next to the guide's edge are those of the guide's edge, not darkened
    # (without it they would be about half as bright there).
    inside = mask == 1.0
    np.testing.assert_allclose(rgb[0][inside], red_at(lon)[inside], atol=6.0)
    np.testing.assert_allclose(rgb[1][inside], green_at(lat)[inside], atol=6.0)
    deep = lon < 15.6 - 2 * cell_deg
    np.testing.assert_allclose(rgb[0][deep], red_at(lon)[deep], atol=0.75)


def test_no_data_pixels_are_masked_and_do_not_darken(tmp_path):
    rgb = guide_rgb()
    hole = pixel_box(15.3, 15.7, 40.85, 41.2)  # about 5 x 5 cells of no data in the grid's middle
    rgb[:, hole[0], hole[1]] = 0
    strip = pixel_box(15.05, 15.15, 40.0, 42.2)
    rgb[0, :, strip[1]] = 0  # no red at all in a strip: still colour, since green and blue are not no-data
    path = write_guide(tmp_path / "holes.tif", rgb, nodata=0)
    grid = dem_grid()
    planes, mask = GuidePlanes.open(path, grid, COARSE).planes(0, 0, 512, 512, STRIDE)
    lon, lat = block_lonlat(grid, 0, 0, 512, 512)
    in_hole = (lon > 15.42) & (lon < 15.58) & (lat > 40.95) & (lat < 41.1)
    assert in_hole.sum() > 20 and np.all(mask[in_hole] == 0.0)
    in_strip = (lon > 15.07) & (lon < 15.13)
    assert np.all(mask[in_strip] == 1.0) and planes[0][in_strip].mean() < 0.7 * red_at(lon)[in_strip].mean()
    near_hole = (mask == 1.0) & (lon > 15.2) & (lon < 15.8) & (lat > 40.75) & (lat < 41.3) & ~in_strip
    assert near_hole.sum() > 20
    np.testing.assert_allclose(planes[1][near_hole], green_at(lat)[near_hole], atol=6.0)  # not darkened


def test_alpha_and_mask_bands_mark_pixels_without_colour(tmp_path):
    rgb = guide_rgb()
    box = pixel_box(15.3, 15.7, 40.85, 41.2)
    alpha = np.full(rgb.shape[1:], 255, np.uint8)
    alpha[box] = 0
    under = rgb.copy()
    under[:, box[0], box[1]] = 255  # whatever lies under transparent pixels must not leak
    rgba = write_guide(tmp_path / "rgba.tif", np.concatenate([under, alpha[None]]),
                       interps=[gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand, gdal.GCI_AlphaBand])
    masked = write_guide(tmp_path / "masked.tif", under)
    ds = gdal.Open(masked, gdal.GA_Update)
    ds.CreateMaskBand(gdal.GMF_PER_DATASET)
    ds.GetRasterBand(1).GetMaskBand().WriteArray(alpha)
    ds = None
    grid = dem_grid()
    lon, lat = block_lonlat(grid, 0, 0, 512, 512)
    in_box = (lon > 15.42) & (lon < 15.58) & (lat > 40.95) & (lat < 41.1)
    for path in (rgba, masked):
        planes, mask = GuidePlanes.open(path, grid, COARSE).planes(0, 0, 512, 512, STRIDE)
        assert np.all(mask[in_box] == 0.0) and mask.mean() > 0.8, path
        valid = mask == 1.0
        np.testing.assert_allclose(planes[1][valid], green_at(lat)[valid], atol=6.0)  # no 255 leaked in


def test_a_block_has_the_same_guide_planes_in_every_window(tmp_path):
    cols = int(round((15.6 - GUIDE_GT[0]) / 0.01))  # partial cover: the mask's edge must tile too
    path = write_guide(tmp_path / "west.tif", guide_rgb()[:, :, :cols])
    guide = GuidePlanes.open(path, dem_grid(), COARSE)
    whole_rgb, whole_mask = guide.planes(-256, -256, 1024, 1024, STRIDE)
    for x0, y0, w, h in [(0, 0, 256, 256), (-256, 200, 520, 64), (8, 24, 504, 8), (264, 328, 480, 440)]:
        rgb, mask = guide.planes(x0, y0, w, h, STRIDE)
        r, c = (y0 + 256) // STRIDE, (x0 + 256) // STRIDE
        np.testing.assert_array_equal(rgb, whole_rgb[:, r:r + h // STRIDE, c:c + w // STRIDE])
        np.testing.assert_array_equal(mask, whole_mask[r:r + h // STRIDE, c:c + w // STRIDE])
    far_rgb, far_mask = guide.planes(4096, 4096, 64, 64, STRIDE)  # far beyond the grid and its padding
    assert not far_mask.any() and not far_rgb.any()


def test_a_guide_that_does_not_overlap_is_refused_with_both_extents(tmp_path):
    gt = (20.0, 0.01, 0.0, 45.0, 0.0, -0.01)  # 20-22.2°E: east of the DEM
    path = write_guide(tmp_path / "east.tif", guide_rgb(), gt=gt)
    with pytest.raises(InputError, match="does not overlap the DEM") as info:
        GuidePlanes.open(path, dem_grid(), COARSE)
    message = str(info.value)
    assert "in the DEM's CRS" in message and "x 500000 to 602400" in message


def test_a_guide_with_no_colour_over_the_dem_is_refused(tmp_path):
    rgb = guide_rgb()
    rgb[:, pixel_box(14.8, 16.4, 40.4, 41.8)[0], pixel_box(14.8, 16.4, 40.4, 41.8)[1]] = 0
    path = write_guide(tmp_path / "empty.tif", rgb, nodata=0)
    with pytest.raises(InputError, match="no colour .* over the DEM"):
        GuidePlanes.open(path, dem_grid(), COARSE)


def test_too_few_bands_are_refused(tmp_path):
    path = write_guide(tmp_path / "grey.tif", guide_rgb()[:1])
    with pytest.raises(InputError, match="has 1 band, not the 3"):
        GuidePlanes.open(path, dem_grid(), COARSE)
    paletted = str(tmp_path / "paletted.tif")
    gdal.Translate(paletted, path)
    ds = gdal.Open(paletted, gdal.GA_Update)
    table = gdal.ColorTable()
    table.SetColorEntry(0, (0, 0, 0, 255))
    ds.GetRasterBand(1).SetRasterColorTable(table)
    ds = None
    with pytest.raises(InputError, match="-expand rgb"):
        GuidePlanes.open(paletted, dem_grid(), COARSE)


def test_a_guide_that_is_not_8_bit_is_refused_with_the_conversion(tmp_path):
    path = write_guide(tmp_path / "uint16.tif", guide_rgb().astype(np.uint16) * 40)
    with pytest.raises(InputError, match="UInt16") as info:
        GuidePlanes.open(path, dem_grid(), COARSE)
    assert "gdal_translate -ot Byte -scale" in str(info.value)


def test_a_guide_without_a_crs_is_refused(tmp_path):
    path = write_guide(tmp_path / "nocrs.tif", guide_rgb(), crs=None)
    with pytest.raises(InputError, match="no CRS"):
        GuidePlanes.open(path, dem_grid(), COARSE)


def test_a_missing_guide_is_refused(tmp_path):
    with pytest.raises(InputError, match="cannot be opened"):
        GuidePlanes.open(str(tmp_path / "absent.tif"), dem_grid(), COARSE)


def test_a_mars_guide_on_a_mars_dem(tmp_path):
    # A user's palette map in Mars geographic degrees over a DEM in Mars equirectangular metres.
    mars_gt = (10.0, 0.05, 0.0, 10.0, 0.0, -0.05)  # 10-21°E, -0.0-10°N
    path = write_guide(tmp_path / "palette.tif", guide_rgb(), crs="IAU_2015:49900", gt=mars_gt)
    grid = dem_grid("IAU_2015:49910", (700000.0, 200.0, 0.0, 500000.0, 0.0, -200.0))  # ~11.8-13.5°E, 6.5-8.4°N
    rgb, mask = GuidePlanes.open(path, grid, COARSE).planes(0, 0, 512, 512, STRIDE)
    assert np.all(mask == 1.0)
    u = STRIDE * (np.arange(64) + 0.5)
    lon = np.degrees((700000.0 + u * 200.0) / 3396190.0)  # equirectangular on the Mars sphere
    expected = 20.0 + (lon - 10.0) / 0.05 - 0.5
    np.testing.assert_allclose(rgb[0], np.broadcast_to(expected, (64, 64)), atol=0.75)
    earth = write_guide(tmp_path / "earth.tif", guide_rgb())  # EPSG:4326 over a Mars DEM
    with pytest.raises(InputError, match="guide"):
        GuidePlanes.open(earth, grid, COARSE)


def test_refusals_hold_whatever_gdals_exception_mode(tmp_path, exception_mode):
    # QGIS 3.40 turns GDAL's exceptions on for every plugin; QGIS 3.22 leaves them off. Either way a failed warp
    # (an Earth guide over a Mars DEM) and a missing file are refused with GDAL's reason.
    earth = write_guide(tmp_path / "earth.tif", guide_rgb())
    mars = dem_grid("IAU_2015:49910", (700000.0, 200.0, 0.0, 500000.0, 0.0, -200.0))
    with pytest.raises(InputError, match="cannot be warped onto the DEM's CRS.*IAU"):
        GuidePlanes.open(earth, mars, COARSE)
    with pytest.raises(InputError, match="No such file"):
        GuidePlanes.open(str(tmp_path / "absent.tif"), mars, COARSE)


def test_a_web_tile_service_described_for_gdal(full_guide, tmp_path):
    # What a QGIS XYZ layer (type=xyz&url=.../{z}/{x}/{y}.png) becomes for GDAL: a WMS driver description with
    # the TMS minidriver, passed as the guide's path (the XML text itself). Tiles served here from file://
    # (there is no network); a networked machine puts the service's https URL in ServerUrl.
    half = 20037508.342789244
    zoom, size = 7, 2 * 20037508.342789244 / 2**7
    to_mercator = osr.CoordinateTransformation(*[_traditional(c) for c in ("EPSG:4326", "EPSG:3857")])
    (x_west, y_north), (x_east, y_south) = (to_mercator.TransformPoint(14.6, 42.1)[:2],
                                            to_mercator.TransformPoint(16.6, 40.3)[:2])
    for tx in range(int((x_west + half) // size), int((x_east + half) // size) + 1):
        for ty in range(int((half - y_north) // size), int((half - y_south) // size) + 1):
            left, top = -half + tx * size, half - ty * size
            tile = gdal.Warp("", full_guide, format="MEM", dstSRS="EPSG:3857", width=256, height=256,
                             outputBounds=(left, top - size, left + size, top), resampleAlg="average", dstAlpha=True)
            (tmp_path / str(zoom) / str(tx)).mkdir(parents=True, exist_ok=True)
            gdal.Translate(str(tmp_path / str(zoom) / str(tx) / f"{ty}.png"), tile, format="PNG")
    service = f"""<GDAL_WMS>
      <Service name="TMS"><ServerUrl>file://{tmp_path}/${{z}}/${{x}}/${{y}}.png</ServerUrl></Service>
      <DataWindow><UpperLeftX>{-half}</UpperLeftX><UpperLeftY>{half}</UpperLeftY>
        <LowerRightX>{half}</LowerRightX><LowerRightY>{-half}</LowerRightY>
        <TileLevel>{zoom}</TileLevel><TileCountX>1</TileCountX><TileCountY>1</TileCountY><YOrigin>top</YOrigin>
      </DataWindow>
      <Projection>EPSG:3857</Projection><BlockSizeX>256</BlockSizeX><BlockSizeY>256</BlockSizeY>
      <BandsCount>4</BandsCount>
    </GDAL_WMS>"""
    grid = dem_grid()
    rgb, mask = GuidePlanes.open(service, grid, COARSE).planes(0, 0, 512, 512, STRIDE)
    reference, _ = GuidePlanes.open(full_guide, grid, COARSE).planes(0, 0, 512, 512, STRIDE)
    assert np.all(mask == 1.0)
    np.testing.assert_allclose(rgb, reference, atol=2.0)  # resampled once more, into 1.2 km tile pixels


def _traditional(crs):
    srs = osr.SpatialReference()
    srs.SetFromUserInput(crs)
    srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
    return srs
