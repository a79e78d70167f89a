"""A run in parts (core.parts, no Dask): every stripe into its own part, the manifest, the assembly.

Parts computed one by one in any order and assembled must give the single-process output file's pixels,
overviews and metadata exactly; the manifest keeps only parts that still verify.
"""

import dataclasses
import json
import os

import numpy as np
import pytest
from osgeo import gdal
from v1models import write_model

from rasters import gdal_average_overviews, overview_levels_of

from terraform_plugin.core import parts, pipeline
from terraform_plugin.core.model import TerraformModel
from terraform_plugin.core.plan import make_plan


@pytest.fixture(scope="module")
def identity(tmp_path_factory):
    return write_model(tmp_path_factory.mktemp("models") / "identity.onnx")


def holey_dem(kit, path, shape=(457, 1613)):
    """Odd, non-square, with a no-data hole that straddles a stripe join, and non-physical elevations (issue 11:
    no-data too, in the parts as in the local run) across two others: 1e30 and a -3e38 fill value that is not
    the declared no-data."""
    z = kit.terrain(*shape)
    z[100:150, 400:700] = -9999.0
    z[shape[0] // 2 : shape[0] // 2 + 8, 1020:1030] = 1e30
    z[200:230, 1000:1050] = -3.0e38
    return kit.write_dem(path, z, nodata=-9999.0)


def plan_for(request):
    output = pipeline.check_request(request)
    dataset, band = pipeline.open_input(request)
    model = pipeline.load_model(request)
    return make_plan(request, output, dataset, band, model, lambda _: None), model


def all_bands(path):
    """Every band and overview level's pixels, and the metadata: what must match the local output."""
    ds = gdal.Open(str(path))
    levels = [ds.ReadAsArray()] + overview_levels_of(path)
    return levels, ds.GetMetadata(), ds.GetGeoTransform(), ds.GetProjection()


@pytest.mark.parametrize("nodata_mode", ["transparent", "ocean"])
def test_parts_in_any_order_assemble_into_the_local_output(tmp_path, kit, identity, nodata_mode):
    dem = holey_dem(kit, tmp_path / "dem.tif")
    local = pipeline.TerraformRequest(str(dem), str(tmp_path / "local.tif"), identity, stripe_width=512,
                                      nodata_mode=nodata_mode, threads=1, batch_size=3)
    pipeline.run(local)
    request = dataclasses.replace(local, output_path=str(tmp_path / "parts.tif"))
    plan, model = plan_for(request)
    assert len(plan.stripes) == 4
    folder = parts.parts_dir(plan.output_path)
    manifest = parts.Manifest.open(folder, parts.fingerprint(plan, pipeline.output_metadata(plan, model)))
    for index in (2, 0, 3, 1):  # the order does not matter
        record = parts.compute_part(plan, index, folder, model)
        assert record["chips"] == len(plan.layout.ys) * len(plan.stripes[index].columns)
        manifest.record(record)
    parts.assemble(plan, model, folder, pipeline.output_metadata(plan, model))

    got, want = all_bands(tmp_path / "parts.tif"), all_bands(tmp_path / "local.tif")
    assert len(got[0]) == len(want[0]) > 1  # full resolution and at least one overview level
    for a, b in zip(got[0], want[0]):
        np.testing.assert_array_equal(a, b)
    assert got[1:] == want[1:]
    if nodata_mode == "transparent":
        assert (got[0][0][3, 100:150, 400:700] == 0).all()  # the hole is transparent across the join
        assert (got[0][0][3, 228:236, 1020:1030] == 0).all()  # so are the non-physical elevations
    assert sorted(os.listdir(tmp_path)) == ["dem.tif", "local.tif", "parts.tif"]  # parts folder gone


@pytest.mark.parametrize("width", [1612, 1613])
def test_an_assembly_in_stripes_streams_the_overviews_of_gdals_pass(tmp_path, kit, identity, monkeypatch, width):
    """Windows of 512 columns: the assembly copies four stripes, level 1 streamed stripe by stripe, level 2
    after them; the same overviews as the local run's and as GDAL's own pass over the assembled pixels."""
    from terraform_plugin.core.profile import StageClock

    monkeypatch.setattr(parts, "ASSEMBLY_COLUMNS", 512)
    dem = holey_dem(kit, tmp_path / "dem.tif", shape=(700, width))
    local = pipeline.TerraformRequest(str(dem), str(tmp_path / "local.tif"), identity, stripe_width=512, threads=1)
    pipeline.run(local)
    plan, model = plan_for(dataclasses.replace(local, output_path=str(tmp_path / "parts.tif")))
    folder = parts.parts_dir(plan.output_path)
    parts.Manifest.open(folder, "x")
    for index in range(len(plan.stripes)):
        parts.compute_part(plan, index, folder, model)
    clock = StageClock()
    parts.assemble(plan, model, folder, pipeline.output_metadata(plan, model), clock=clock)
    assert clock.visits["overviews"] > len(plan.stripes)  # streamed window by window

    got, want = all_bands(tmp_path / "parts.tif"), all_bands(tmp_path / "local.tif")
    image = got[0][0]
    gdals = [image] + gdal_average_overviews(tmp_path / "gdal.tif", image)
    assert image.shape[2] == width and len(got[0]) == len(gdals) == 3  # full resolution and two levels
    assert (image[3] == 0).any()
    for level, (a, b, c) in enumerate(zip(got[0], want[0], gdals)):
        np.testing.assert_array_equal(a, b, err_msg=f"level {level}")
        np.testing.assert_array_equal(a, c, err_msg=f"level {level}")


def test_assembly_does_not_keep_the_raster_in_memory(tmp_path, kit, identity, monkeypatch):
    """Measured through GDAL's block cache, where the parts' blocks would pile up as the VRT reads them (the
    whole raster when it fits in 5 % of RAM: +280 MB peak RSS on an 8192² assembly, +108 MB with the cap):
    with the cap at 1 MiB, the assembly of a 2.9 MB raster never holds more than that."""
    from terraform_plugin.core import writer

    dem = holey_dem(kit, tmp_path / "dem.tif")
    request = pipeline.TerraformRequest(str(dem), str(tmp_path / "out.tif"), identity, stripe_width=512, threads=1)
    plan, model = plan_for(request)
    folder = parts.parts_dir(plan.output_path)
    parts.Manifest.open(folder, "x")
    for index in range(len(plan.stripes)):
        parts.compute_part(plan, index, folder, model)
    cap = 2**20
    monkeypatch.setattr(writer, "BLOCK_CACHE_CAP_BYTES", cap)
    used = []
    parts.assemble(plan, model, folder, pipeline.output_metadata(plan, model),
                   progress=lambda fraction: used.append(gdal.GetCacheUsed()))
    raster = plan.grid.width * plan.grid.height * 4
    assert raster > 2.5 * cap and len(used) > 2
    assert max(used) <= cap + 4 * 256 * 256  # GDAL drops blocks once past the cap: one pixel-interleaved tile over


def test_manifest_keeps_only_parts_that_verify(tmp_path, kit, identity):
    dem = holey_dem(kit, tmp_path / "dem.tif", shape=(300, 800))
    request = pipeline.TerraformRequest(str(dem), str(tmp_path / "out.tif"), identity, stripe_width=256, threads=1)
    plan, model = plan_for(request)
    fp = parts.fingerprint(plan, pipeline.output_metadata(plan, model))
    folder = parts.parts_dir(plan.output_path)
    manifest = parts.Manifest.open(folder, fp)
    for index in range(3):
        manifest.record(parts.compute_part(plan, index, folder, model))
    # Part 1 damaged after it was recorded, part 2 gone, part 3 written but never recorded (client killed).
    with open(os.path.join(folder, parts.part_name(1)), "r+b") as f:
        f.seek(-10, os.SEEK_END)
        f.write(b"0123456789")
    os.remove(os.path.join(folder, parts.part_name(2)))
    parts.compute_part(plan, 3, folder, model)
    assert sorted(parts.Manifest.open(folder, fp).parts) == [0]

    # Another setting (sea level) is another fingerprint: the old parts are discarded, not mixed in.
    other, _ = plan_for(dataclasses.replace(request, sea_level=100.0))
    fp_other = parts.fingerprint(other, pipeline.output_metadata(other, model))
    assert fp_other != fp
    limited, _ = plan_for(dataclasses.replace(request, max_abs_elevation=5000.0))  # decides which pixels are no-data
    assert parts.fingerprint(limited, pipeline.output_metadata(limited, model)) != fp
    messages = []
    assert parts.Manifest.open(folder, fp_other, messages.append).parts == {}
    assert os.listdir(folder) == [parts.MANIFEST] and "other settings" in messages[0]
    with open(os.path.join(folder, parts.MANIFEST)) as f:
        assert json.load(f)["fingerprint"] == fp_other


def test_assembly_refuses_missing_parts_and_leaves_no_output(tmp_path, kit, identity):
    dem = holey_dem(kit, tmp_path / "dem.tif", shape=(300, 800))
    request = pipeline.TerraformRequest(str(dem), str(tmp_path / "out.tif"), identity, stripe_width=256, threads=1)
    plan, model = plan_for(request)
    folder = parts.parts_dir(plan.output_path)
    parts.Manifest.open(folder, "x")
    parts.compute_part(plan, 0, folder, TerraformModel(identity, threads=1))
    with pytest.raises(pipeline.OutputError, match="3 part\\(s\\) missing"):
        parts.assemble(plan, model, folder, pipeline.output_metadata(plan, model))
    assert sorted(os.listdir(tmp_path)) == [".out.tif.parts", "dem.tif"]
