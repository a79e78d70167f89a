"""The built plugin under qgis_process.bin, as users run it headless (a few seconds of start-up per call)."""

import os
import shutil
import sys

from osgeo import gdal, osr



def test_list_and_help(qgis_process):
    listed = qgis_process("list")
    assert listed.returncode == 0 and "terraform:terraformdem" in listed.stdout
    helped = qgis_process("help", "terraform:terraformdem")
    assert helped.returncode == 0
    for name in ("INPUT", "BAND", "MODEL", "OVERLAP", "NODATA_MODE", "RESOLUTION", "SEA_LEVEL", "VERTICAL_SCALE",
                 "FIT_TO_EARTH", "PREVIEW", "OUTPUT"):
        assert f"{name}:" in helped.stdout


def test_run_with_only_input_output_and_a_model(qgis_process, models, tmp_path, kit):
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(200, 260))
    out = tmp_path / "out.tif"
    done = qgis_process("run", "terraform:terraformdem", "--", f"INPUT={dem}", f"MODEL={models['identity']}",
                        f"OUTPUT={out}")
    assert done.returncode == 0, done.stdout + done.stderr
    ds = gdal.Open(str(out))
    assert ds.RasterCount == 4
    assert [ds.GetRasterBand(i).DataType for i in range(1, 5)] == [gdal.GDT_Byte] * 4
    assert ds.GetRasterBand(4).GetColorInterpretation() == gdal.GCI_AlphaBand
    assert osr.SpatialReference(ds.GetProjection()).IsSame(osr.SpatialReference(gdal.Open(dem).GetProjection()))


def test_batch_loop(qgis_process, models, tmp_path, kit):
    """Issue 5's shell recipe: one qgis_process call per DEM in a folder."""
    outs = []
    for i in range(2):
        dem = kit.write_dem(tmp_path / f"tile_{i}.tif", kit.terrain(150, 150, seed=i))
        out = tmp_path / f"tile_{i}_terraformed.tif"
        done = qgis_process("run", "terraform:terraformdem", "--", f"INPUT={dem}", f"MODEL={models['identity']}",
                            "SEA_LEVEL=-100", f"OUTPUT={out}")
        assert done.returncode == 0, done.stdout + done.stderr
        outs.append(out)
    assert all(o.is_file() for o in outs)


def test_missing_onnxruntime_says_how_to_install(built_plugin, models, tmp_path, kit, qgis_process_factory):
    """A plugin as users install it (no deps/): the provider loads, the run fails with the exact command."""
    plugins = tmp_path / "plugins"
    shutil.copytree(built_plugin / "terraform_plugin", plugins / "terraform_plugin", symlinks=True,
                    ignore=shutil.ignore_patterns("deps"))
    profile = tmp_path / "profile"
    run = qgis_process_factory(plugins, profile)
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 64))
    out = tmp_path / "out.tif"
    done = run("run", "terraform:terraformdem", "--", f"INPUT={dem}", f"MODEL={models['identity']}", f"OUTPUT={out}")
    text = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Algorithm terraform:terraformdem not found" not in text  # the provider itself loaded
    tag = f"py{sys.version_info[0]}.{sys.version_info[1]}"
    target = os.path.join(str(profile), "profiles", "default", "python", "dependencies", "terraform_dem", tag)
    expected = f'"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}" -m pip install --no-deps --target "{target}" onnxruntime==1.31.1'
    assert expected in text, text
    assert not out.exists()


def test_default_model_runs_or_says_it_is_missing(qgis_process, built_plugin, tmp_path, kit):
    """MODEL left empty: the bundled model runs when the build has one, else a clear error and no output."""
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 64))
    out = tmp_path / "out.tif"
    done = qgis_process("run", "terraform:terraformdem", "--", f"INPUT={dem}", f"OUTPUT={out}")
    if (built_plugin / "terraform_plugin" / "models" / "terraform_generator.onnx").is_file():
        assert done.returncode == 0, done.stdout + done.stderr
        assert gdal.Open(str(out)).RasterCount == 4
    else:
        assert done.returncode != 0
        assert "bundled model is missing" in done.stdout + done.stderr
        assert not out.exists()
