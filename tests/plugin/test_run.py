"""End to end in-process: the algorithm on small rasters with the contract's identity model."""

import os

import numpy as np
import pytest
from osgeo import gdal, osr



def read_rgba(path):
    ds = gdal.Open(str(path))
    return ds, ds.ReadAsArray()  # (4, H, W)


def test_identity_model_gives_the_colourised_dem_as_rgb_alpha(run_alg, models, dem, tmp_path):
    from terraform_plugin.core.ramp import training_ramp

    out = tmp_path / "out.tif"
    preview = tmp_path / "before_after.png"
    results, feedback = run_alg(
        {"INPUT": dem, "MODEL": models["identity"], "OUTPUT": str(out), "PREVIEW": str(preview)}
    )
    assert results["OUTPUT"] == str(out)
    ds, rgba = read_rgba(out)
    assert ds.RasterCount == 4 and rgba.dtype == np.uint8
    assert ds.GetRasterBand(4).GetColorInterpretation() == gdal.GCI_AlphaBand
    src = gdal.Open(dem)
    assert osr.SpatialReference(ds.GetProjection()).IsSame(osr.SpatialReference(src.GetProjection()))
    # The DEM is already on the model's 200 m grid: the identity model must give back its ramp colours.
    assert (ds.RasterXSize, ds.RasterYSize) == (src.RasterXSize, src.RasterYSize)
    expected = training_ramp().colourise(src.ReadAsArray()).transpose(2, 0, 1)
    assert np.abs(rgba[:3].astype(int) - expected).max() <= 1
    assert (rgba[3] == 255).all()
    assert preview.is_file() and preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert results["PREVIEW"] == str(preview)


def test_loaded_layer_is_unstretched_rgb_named_and_above_its_dem(qgis_app, models, dem, tmp_path):
    import processing
    from qgis.core import (QgsContrastEnhancement, QgsMultiBandColorRenderer, QgsProcessingContext,
                           QgsProcessingFeedback, QgsProject, QgsRasterLayer)

    project = QgsProject.instance()
    project.clear()
    group = project.layerTreeRoot().addGroup("relief")
    dem_layer = QgsRasterLayer(dem, "Alps DEM")
    project.addMapLayer(dem_layer, False)
    group.addLayer(dem_layer)
    project.addMapLayer(QgsRasterLayer(dem, "on top"))  # root level, above the group
    context = QgsProcessingContext()
    context.setProject(project)
    out = str(tmp_path / "loaded.tif")
    processing.runAndLoadResults(
        "terraform:terraformdem",
        {"INPUT": dem_layer, "MODEL": models["identity"], "SEA_LEVEL": -250, "OUTPUT": out},
        feedback=QgsProcessingFeedback(), context=context,
    )
    layers = [l for l in project.mapLayers().values() if l.source() == out]
    assert len(layers) == 1
    layer = layers[0]
    assert layer.name() == "Alps DEM terraformed (sea -250 m)"
    renderer = layer.renderer()
    assert isinstance(renderer, QgsMultiBandColorRenderer)
    assert (renderer.redBand(), renderer.greenBand(), renderer.blueBand(), renderer.alphaBand()) == (1, 2, 3, 4)
    for enhancement in (renderer.redContrastEnhancement(), renderer.greenContrastEnhancement(),
                        renderer.blueContrastEnhancement()):
        assert enhancement is None or enhancement.contrastEnhancementAlgorithm() == QgsContrastEnhancement.NoEnhancement
    names = [n.name() for n in group.children()]
    assert names == ["Alps DEM terraformed (sea -250 m)", "Alps DEM"]
    project.clear()


def test_raster_smaller_than_one_chip_works(run_alg, models, tmp_path, kit):
    dem = kit.write_dem(tmp_path / "tiny.tif", kit.terrain(30, 40))
    out = tmp_path / "tiny_out.tif"
    run_alg({"INPUT": dem, "MODEL": models["identity"], "OUTPUT": str(out)})
    ds = gdal.Open(str(out))
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (40, 30, 4)


def test_second_band_and_ocean_no_data(run_alg, models, tmp_path, kit):
    """BAND picks the elevation band; NODATA_MODE=ocean paints no-data with the ramp's sea colour, opaque."""
    z = kit.terrain(100, 120, low=500, high=2000)
    z[40:60, 50:70] = -9999
    dem = kit.write_dem(tmp_path / "two_bands.tif", None, bands=[np.zeros_like(z), z], nodata=-9999)
    out = tmp_path / "ocean.tif"
    run_alg({"INPUT": dem, "BAND": 2, "MODEL": models["identity"], "NODATA_MODE": 1, "OUTPUT": str(out)})
    _, rgba = read_rgba(out)
    hole = rgba[:, 45:55, 55:65]
    assert (hole[:3] == 255).all() and (hole[3] == 255).all()  # white: the training ramp's sea
    assert (rgba[:3, :30, :30] != 255).any()  # land (band 2, not band 1's zeros) keeps its colours


def test_transparent_no_data_and_model_designer(qgis_app, models, tmp_path, kit):
    """A one-step model (what the Model Designer saves) runs the algorithm; no-data ends up transparent."""
    import processing
    from qgis.core import (QgsProcessingModelAlgorithm, QgsProcessingModelChildAlgorithm,
                           QgsProcessingModelChildParameterSource as Source, QgsProcessingModelOutput,
                           QgsProcessingModelParameter, QgsProcessingParameterRasterLayer)

    model = QgsProcessingModelAlgorithm("Terraform in a model", "tests")
    model.addModelParameter(QgsProcessingParameterRasterLayer("dem", "DEM"), QgsProcessingModelParameter("dem"))
    child = QgsProcessingModelChildAlgorithm("terraform:terraformdem")
    child.setChildId("tf")
    child.addParameterSources("INPUT", [Source.fromModelParameter("dem")])
    child.addParameterSources("MODEL", [Source.fromStaticValue(models["identity"])])
    child.addParameterSources("NODATA_MODE", [Source.fromStaticValue(0)])
    output = QgsProcessingModelOutput("terraformed")
    output.setChildId("tf")
    output.setChildOutputName("OUTPUT")
    child.setModelOutputs({"terraformed": output})
    model.addChildAlgorithm(child)
    model.updateDestinationParameters()
    saved = tmp_path / "terraform.model3"
    assert model.toFile(str(saved))
    reloaded = QgsProcessingModelAlgorithm()
    assert reloaded.fromFile(str(saved))

    z = kit.terrain(90, 90)
    z[:20, :20] = -32768
    dem = kit.write_dem(tmp_path / "holes.tif", z, nodata=-32768)
    out = tmp_path / "model_out.tif"
    processing.run(reloaded, {"dem": dem, "tf:terraformed": str(out)})
    _, rgba = read_rgba(out)
    assert (rgba[3, :15, :15] == 0).all() and (rgba[3, 40:, 40:] == 255).all()


def test_bundled_model_runs_when_present(run_alg, tmp_path, kit):
    from terraform_plugin.core.model import bundled_model_path

    if bundled_model_path() is None:
        pytest.skip("models/terraform_generator.onnx not trained/exported yet")
    dem = kit.write_dem(tmp_path / "dem.tif", kit.terrain(64, 64))
    out = tmp_path / "bundled.tif"
    run_alg({"INPUT": dem, "OUTPUT": str(out)})
    assert gdal.Open(str(out)).RasterCount == 4


MARS_IAU_WKT = (  # Mars with the IAU authority: qgis_process 3.22 cannot resolve it (layer.crs() invalid there)
    'GEOGCS["Mars (2015) - Sphere / Ocentric",DATUM["Mars (2015) - Sphere",SPHEROID["Mars (2015) - Sphere",'
    '3396190,0,AUTHORITY["IAU","49900"]],AUTHORITY["IAU","49900"]],PRIMEM["Reference Meridian",0,'
    'AUTHORITY["IAU","49900"]],UNIT["degree",0.0174532925199433,AUTHORITY["EPSG","9122"]],'
    'AXIS["Latitude",NORTH],AXIS["Longitude",EAST],AUTHORITY["IAU","49900"]]'
)


def test_crs_qgis_cannot_resolve_still_runs(run_alg, models, tmp_path, kit):
    """The file's CRS is what counts (the engine reads it): a Mars IAU CRS must not be taken for "no CRS".

    In-process QGIS resolves this CRS; under qgis_process it does not (tests/test_mars_crs.py runs that path)."""
    z = kit.terrain(40, 60, low=-4000, high=8000)
    dem = kit.write_dem(tmp_path / "mars.tif", z, crs=MARS_IAU_WKT, pixel=0.01, origin=(140.0, 10.0))
    out = tmp_path / "mars_out.tif"
    run_alg({"INPUT": dem, "MODEL": models["identity"], "SEA_LEVEL": -2000, "OUTPUT": str(out)})
    result = gdal.Open(str(out))
    assert result.GetProjection() == gdal.Open(dem).GetProjection()
