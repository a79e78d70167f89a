"""A tiling-independent, conditioned model on Dask: parts of whole tile columns on a LocalCluster give the
pixels of a local run with other tiles and stripes; the command line takes the look, latitude and tile size."""

import os

import numpy as np
import pytest
from osgeo import gdal

import v2models
from terraform_plugin.cluster import cli, runner
from terraform_plugin.core import pipeline
from terraform_plugin.core.errors import InputError


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    # The look only: no latitude plane, which the workers would compute from core.latitude.
    return v2models.write_unet(tmp_path_factory.mktemp("models") / "unet.onnx", kinds=("look",))


def dem(path):
    from rasters import terrain, write_dem

    z = terrain(333, 1100, seed=8)
    z[100:140, 240:300] = -9999.0  # a hole across the join of 256 px centres
    return write_dem(path, z, nodata=-9999.0)


def test_parts_on_a_local_cluster_give_the_local_runs_pixels(tmp_path, unet):
    source = dem(tmp_path / "dem.tif")
    pipeline.run(pipeline.TerraformRequest(source, str(tmp_path / "local.tif"), unet, look="ALPS", threads=1))
    request = pipeline.TerraformRequest(source, str(tmp_path / "dask.tif"), unet, look="ALPS", tile_size=560)
    result = runner.run_on_dask(request, workers=2, part_width=512)
    assert result.parts == 3 and result.chip_runs == result.chips  # one tile column a part, none computed twice
    local, dask = gdal.Open(str(tmp_path / "local.tif")), gdal.Open(str(tmp_path / "dask.tif"))
    assert np.abs(local.ReadAsArray().astype(int) - dask.ReadAsArray().astype(int)).max() <= 1
    meta = dask.GetMetadata()
    assert meta["TERRAFORM_LOOK"] == "ALPS" and meta["TERRAFORM_TILE"] == "560x384"
    assert sorted(os.listdir(tmp_path)) == ["dask.tif", "dem.tif", "local.tif"]


def test_cli_takes_look_latitude_and_tile_size(tmp_path, unet, capsys):
    source = dem(tmp_path / "dem.tif")
    out = str(tmp_path / "out.tif")
    args = cli.build_parser().parse_args([source, out, "--look", "ANDES", "--latitude", "-20.5", "--tile-size",
                                          "560"])
    request = cli.request_of(args, unet)
    assert (request.look, request.latitude, request.tile_size) == ("ANDES", -20.5, 560)
    defaults = cli.request_of(cli.build_parser().parse_args([source, out]), unet)
    assert (defaults.look, defaults.latitude, defaults.tile_size) == ("auto", None, 0)
    # Refused before any cluster (this scheduler address does not exist), with the model's looks.
    assert cli.main([source, out, "--model", unet, "--scheduler", "tcp://127.0.0.1:9", "--look", "SAHARA"]) == 1
    assert "'SAHARA' is not one of test-unet-v2's looks: auto, ANDES" in capsys.readouterr().err
    with pytest.raises(InputError, match="takes no latitude"):
        runner.run_on_dask(request, scheduler="tcp://127.0.0.1:9")
    assert sorted(os.listdir(tmp_path)) == ["dem.tif"]
