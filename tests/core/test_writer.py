"""The output writer: tiled compressed RGBA with overviews, the exact input CRS, atomic replace, clean abort."""

import os

import numpy as np
import pytest
from osgeo import gdal

from terraform_plugin.core.errors import OutputError
from terraform_plugin.core.grid import Grid
from terraform_plugin.core.writer import OutputWriter, check_output_path, overview_levels

CUSTOM_WKT2 = (
    'GEOGCRS["Mars custom",DATUM["Mars sphere",ELLIPSOID["Mars",3396190,0,LENGTHUNIT["metre",1]]],'
    'PRIMEM["Reference meridian",0,ANGLEUNIT["degree",0.0174532925199433]],CS[ellipsoidal,2],'
    'AXIS["longitude",east,ORDER[1],ANGLEUNIT["degree",0.0174532925199433]],'
    'AXIS["latitude",north,ORDER[2],ANGLEUNIT["degree",0.0174532925199433]]]'
)
CUSTOM_WKT1_LON_FIRST = (
    'GEOGCS["Mars custom",DATUM["Mars sphere",SPHEROID["Mars",3396190,0]],PRIMEM["Reference meridian",0],'
    'UNIT["degree",0.0174532925199433],AXIS["Longitude",EAST],AXIS["Latitude",NORTH]]'
)


def grid_for(kit, crs, width=600, height=300):
    wkt = crs if crs.startswith(("GEOG", "PROJ")) else kit.crs_wkt(crs)
    return Grid(width, height, (10.0, 0.01, 0.0, 20.0, 0.0, -0.01), wkt)


def write_all(writer, width, height, seed=0):
    rgba = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    for y0 in range(0, height, 256):
        writer.write(0, y0, rgba[y0 : y0 + 256])
    return rgba


def leftovers(folder, keep):
    return sorted(set(os.listdir(folder)) - set(keep))


@pytest.mark.parametrize("crs", ["EPSG:32633", "EPSG:4326", "IAU_2015:49900", "IAU_2015:49910", "custom", "custom2"])
def test_output_is_exact_and_carries_the_exact_crs(tmp_path, kit, crs):
    crs = {"custom": CUSTOM_WKT1_LON_FIRST, "custom2": CUSTOM_WKT2}.get(crs, crs)
    grid = grid_for(kit, crs)
    path = tmp_path / "out.tif"
    with OutputWriter(path, grid, {"TERRAFORM_SEA_LEVEL": "-3000.0"}) as writer:
        rgba = write_all(writer, grid.width, grid.height)
        writer.build_overviews()
        writer.commit()
    assert leftovers(tmp_path, ["out.tif", "out.tif.aux.xml"]) == []
    ds = gdal.Open(str(path))
    assert ds.GetGeoTransform() == grid.geotransform
    if crs.startswith("GEOGCRS"):  # GDAL hands back WKT1 for any input: same CRS, axis order included
        from osgeo import osr

        assert ds.GetSpatialRef().IsSame(osr.SpatialReference(wkt=crs))
        assert '"Mars custom"' in ds.GetProjection()
    else:
        assert ds.GetProjection() == grid.wkt
    np.testing.assert_array_equal(ds.ReadAsArray().transpose(1, 2, 0), rgba)
    assert [ds.GetRasterBand(i).GetColorInterpretation() for i in range(1, 5)] == [
        gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand, gdal.GCI_AlphaBand]
    assert ds.GetRasterBand(1).GetBlockSize() == [256, 256]
    assert ds.GetMetadata("IMAGE_STRUCTURE")["COMPRESSION"] == "ZSTD"  # this GDAL has it (writer._compression)
    assert ds.GetMetadata("IMAGE_STRUCTURE").get("PREDICTOR") == "2"
    assert ds.GetRasterBand(1).GetOverviewCount() == 1  # 300 px high -> one 2x level
    assert ds.GetMetadataItem("TERRAFORM_SEA_LEVEL") == "-3000.0"
    # The sidecar exists only where GeoTIFF keys could not hold the CRS.
    needs_sidecar = crs.startswith("IAU") or crs.startswith("GEOGCRS") or crs == CUSTOM_WKT1_LON_FIRST
    assert os.path.exists(str(path) + ".aux.xml") == needs_sidecar


def test_stale_sidecar_of_an_earlier_result_is_removed(tmp_path, kit):
    path = tmp_path / "out.tif"
    (tmp_path / "out.tif.aux.xml").write_text("<PAMDataset><SRS>GEOGCS[\"stale\"]</SRS></PAMDataset>")
    grid = grid_for(kit, "EPSG:32633")
    with OutputWriter(path, grid, {}) as writer:
        write_all(writer, grid.width, grid.height)
        writer.commit()
    assert not os.path.exists(str(path) + ".aux.xml")
    assert gdal.Open(str(path)).GetProjection() == grid.wkt


def test_nothing_appears_at_the_target_until_commit_and_abort_cleans_up(tmp_path, kit):
    path = tmp_path / "out.tif"
    path.write_bytes(b"an earlier result")
    grid = grid_for(kit, "IAU_2015:49900")
    with pytest.raises(RuntimeError, match="boom"):
        with OutputWriter(path, grid, {}) as writer:
            write_all(writer, grid.width, grid.height)
            writer.close()  # the temporary file and its CRS sidecar now exist
            assert len(leftovers(tmp_path, ["out.tif"])) == 2
            assert path.read_bytes() == b"an earlier result"
            raise RuntimeError("boom")
    assert leftovers(tmp_path, ["out.tif"]) == []
    assert path.read_bytes() == b"an earlier result"


def test_unwritable_outputs_are_refused_before_any_work(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(OutputError, match="folder does not exist"):
        check_output_path(tmp_path / "missing" / "out.tif")
    with pytest.raises(OutputError, match="folder does not exist"):
        check_output_path(tmp_path / "a_file" / "out.tif")
    with pytest.raises(OutputError, match="is a folder"):
        check_output_path(tmp_path)
    assert check_output_path(tmp_path / "ok.tif") == str(tmp_path / "ok.tif")


def test_overview_levels_reach_one_tile():
    assert overview_levels(200, 100) == []
    assert overview_levels(600, 300) == [2]
    assert overview_levels(16384, 16384) == [2, 4, 8, 16, 32, 64]


# -- a disk that fills while the output is written -----------------------------------------------------------


def sha(path):
    import hashlib

    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def earlier_result(folder, kit):
    """A valid small output already at folder/out.tif, as a user's earlier run left it."""
    path = os.path.join(folder, "out.tif")
    grid = grid_for(kit, "EPSG:32633", 300, 300)
    with OutputWriter(path, grid, {}) as writer:
        write_all(writer, grid.width, grid.height, seed=1)
        writer.commit()
    return path


def noise_run(writer, grid, before_commit=lambda: None):
    """Incompressible rows (about 5.3 bytes per pixel with overviews), streamed overviews as a run makes them."""
    rgba = np.random.default_rng(0).integers(0, 256, (grid.height, grid.width, 4), dtype=np.uint8)
    for y0 in range(0, grid.height, 256):
        writer.write(0, y0, rgba[y0 : y0 + 256])
        if writer.streams_overviews:
            writer.add_to_overviews(0, y0, np.ascontiguousarray(rgba[y0 : y0 + 256].transpose(2, 0, 1)))
    writer.build_overviews()
    before_commit()
    writer.commit()


def check_kept(folder, old, before, message, capfd):
    assert "the disk is full" in message and f"mounted at {folder}" in message, message
    assert "the file already there is kept" in message, message
    assert sha(old) == before  # the earlier result, byte for byte
    assert gdal.Open(old).GetRasterBand(1).Checksum() >= 0  # and still a readable GeoTIFF
    assert sorted(set(os.listdir(folder)) - {"filler.bin"}) == ["out.tif"]  # no temporary, no sidecar
    # GDAL's complaints went into the error, none onto stderr (QGIS's log) or as "Exception ignored" noise.
    err = capfd.readouterr().err
    assert "ERROR" not in err and "Exception ignored" not in err, err


def test_a_disk_that_fills_while_the_rows_are_written_keeps_the_earlier_result(tmp_path, kit, exception_mode,
                                                                                capfd):
    from disks import small_disk

    with small_disk(tmp_path / "disk", 4 * 2**20) as folder:
        old = earlier_result(folder, kit)
        before = sha(old)
        grid = grid_for(kit, "EPSG:32633", 1024, 1024)  # ~5.6 MB of noise: more than the disk holds
        with pytest.raises(OutputError) as caught:
            with OutputWriter(old, grid, {}, stream_overviews=True) as writer:
                noise_run(writer, grid)
        check_kept(folder, old, before, str(caught.value), capfd)
        assert "cannot write to" in str(caught.value)  # GDAL's own words come last


def test_a_disk_that_fills_before_the_crs_sidecar_keeps_the_earlier_result(tmp_path, kit, exception_mode, capfd):
    """Every row is written; then the disk fills before closing, where the exact CRS of an IAU (Mars) grid goes
    into the sidecar: GDAL only warns that it cannot save it, and the result would carry the wrong CRS."""
    from disks import fill, small_disk

    with small_disk(tmp_path / "disk", 4 * 2**20) as folder:
        old = earlier_result(folder, kit)
        before = sha(old)
        grid = grid_for(kit, "IAU_2015:49900", 520, 520)
        with pytest.raises(OutputError) as caught:
            with OutputWriter(old, grid, {}, stream_overviews=True) as writer:
                noise_run(writer, grid, before_commit=lambda: fill(folder))
        check_kept(folder, old, before, str(caught.value), capfd)
        assert "sidecar" in str(caught.value)


def test_a_disk_filled_after_the_last_flush_still_gets_a_whole_output(tmp_path, kit, exception_mode):
    """GDAL writes the directories as it flushes: once every row is flushed, the file is whole, and a disk that
    fills then does not make the run fail (nor commit anything less than a whole file)."""
    from disks import fill, small_disk

    with small_disk(tmp_path / "disk", 4 * 2**20) as folder:
        old = earlier_result(folder, kit)
        grid = grid_for(kit, "EPSG:32633", 520, 520)
        with OutputWriter(old, grid, {}, stream_overviews=True) as writer:
            noise_run(writer, grid, before_commit=lambda: fill(folder))
        ds = gdal.Open(old)
        assert (ds.RasterXSize, ds.GetRasterBand(1).GetOverviewCount()) == (520, 2)
        expected = np.random.default_rng(0).integers(0, 256, (520, 520, 4), dtype=np.uint8)
        np.testing.assert_array_equal(ds.ReadAsArray().transpose(1, 2, 0), expected)
