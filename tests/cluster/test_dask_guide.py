"""A colour guide on Dask: the plan (and the guide's coarse cells in it) reaches each worker once, through a file in
the run's parts folder, not in every part's task; the workers' pixels are the local run's; the command line
takes --guide."""

import os
import pickle

import numpy as np
import pytest
from osgeo import gdal

import guides
import v2models
from rasters import terrain, write_dem
from terraform_plugin.cluster import cli, runner
from terraform_plugin.core import pipeline
from terraform_plugin.core.errors import InputError

GUIDE = "/vsimem/terraform-test-guide.tif"  # in this process's memory alone: no worker could open it


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    # Cells of 8 px: a guide grid of about 70 kB for this DEM, many times a part's own arguments.
    return v2models.write_guide_echo(tmp_path_factory.mktemp("models") / "echo.onnx", coarse_px=8)


@pytest.fixture
def memory_guide():
    guides.write(GUIDE)
    yield GUIDE
    gdal.Unlink(GUIDE)


def test_the_plan_and_its_guide_reach_the_workers_once_not_in_every_task(tmp_path, cluster, echo, memory_guide, monkeypatch):
    dem = write_dem(tmp_path / "dem.tif", terrain(333, 600, seed=8), origin=(500000.0, 4600000.0))
    request = pipeline.TerraformRequest(dem, str(tmp_path / "local.tif"), echo, guide_path=memory_guide, threads=1)
    pipeline.run(request)
    plan, _, _, _ = pipeline.start(request, lambda _: None)
    guide_bytes = len(pickle.dumps(plan.conditioning.guide))
    sent = []
    sealed_call = runner.sealed_call

    def measured(function, *args, **kwargs):  # what each part's task carries, sealed
        sent.append(len(pickle.dumps(args)))
        return sealed_call(function, *args, **kwargs)

    monkeypatch.setattr(runner, "sealed_call", measured)
    # Held to the guide (the default strength): 8 px cells add 8 px to the margins, so 272 px tiles.
    dask_request = pipeline.TerraformRequest(dem, str(tmp_path / "dask.tif"), echo, guide_path=memory_guide,
                                             tile_size=272)
    result = runner.run_on_dask(dask_request, scheduler=cluster.address, part_width=256)
    assert result.parts == 3 and len(sent) == 3
    assert guide_bytes > 50_000 and max(sent) < 10_000, (guide_bytes, sent)
    local, dask = gdal.Open(str(tmp_path / "local.tif")), gdal.Open(str(tmp_path / "dask.tif"))
    pixels = dask.ReadAsArray()
    assert (pixels[:3] > 0).mean() > 0.9  # the guide's colours, from the plan: the workers cannot read the file
    np.testing.assert_array_equal(pixels, local.ReadAsArray())
    meta, local_meta = dask.GetMetadata(), local.GetMetadata()
    assert meta["TERRAFORM_GUIDE"] == memory_guide and "TERRAFORM_GUIDE_SHA256" not in meta
    # The true scale of the plan's grid (UTM 60 km east of its central meridian), not a stripe's (which has none).
    assert meta["TERRAFORM_SCALE_FACTOR"] == local_meta["TERRAFORM_SCALE_FACTOR"] == "0.999644 0.999644"
    assert sorted(os.listdir(tmp_path)) == ["dask.tif", "dem.tif", "local.tif"]


def test_cli_takes_a_guide_and_refuses_it_for_a_model_without_guide_inputs(tmp_path, models, capsys):
    dem = write_dem(tmp_path / "dem.tif", terrain(64, 64))
    guide = guides.write(tmp_path / "guide.tif")
    out = str(tmp_path / "out.tif")
    args = cli.build_parser().parse_args([dem, out, "--guide", guide])
    assert cli.request_of(args, models["identity"]).guide_path == guide
    assert cli.request_of(args, models["identity"]).guide_strength == 1.0  # held, as in QGIS
    held = cli.request_of(cli.build_parser().parse_args([dem, out, "--guide", guide, "--guide-strength", "0.25"]),
                          models["identity"])
    assert held.guide_strength == 0.25
    assert cli.request_of(cli.build_parser().parse_args([dem, out]), models["identity"]).guide_path is None
    # Refused before any cluster (this scheduler address does not exist).
    assert cli.main([dem, out, "--model", models["identity"], "--scheduler", "tcp://127.0.0.1:9", "--guide",
                     guide]) == 1
    assert "contract-1 model, which takes no colour guide" in capsys.readouterr().err
    look_only = v2models.write_unet(tmp_path / "look.onnx", kinds=("look",))
    with pytest.raises(InputError, match="takes no colour guide - it declares no guide_rgb"):
        runner.run_on_dask(cli.request_of(args, look_only), scheduler="tcp://127.0.0.1:9")
    assert sorted(os.listdir(tmp_path)) == ["dem.tif", "guide.tif", "look.onnx"]
