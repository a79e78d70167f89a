"""Batch runs in-process: several layers, one output each, the way QGIS's batch dialog drives the algorithm."""

from osgeo import gdal



def test_processing_run_over_a_list_of_layers(run_alg, models, tmp_path, kit):
    from qgis.core import QgsRasterLayer

    layers = [QgsRasterLayer(kit.write_dem(tmp_path / f"mola_{i}.tif", kit.terrain(80 + 20 * i, 90, seed=i)), f"mola_{i}")
              for i in range(3)]
    assert all(layer.isValid() for layer in layers)
    outputs = []
    for layer in layers:
        out = str(tmp_path / f"{layer.name()}_terraformed.tif")
        results, _ = run_alg({"INPUT": layer, "MODEL": models["negate"], "SEA_LEVEL": 200, "OUTPUT": out})
        outputs.append(results["OUTPUT"])
    assert len(set(outputs)) == 3
    for layer, out in zip(layers, outputs):
        ds = gdal.Open(out)
        assert (ds.RasterYSize, ds.RasterCount) == (layer.height(), 4)
