"""Contract-2 models in the onnxruntime wrapper: the declared inputs fed by kind; a graph and metadata that
disagree refused with a message that says what is wrong."""

import json

import numpy as np
import pytest

import v2models
from terraform_plugin.core.errors import ModelError
from terraform_plugin.core.model import TerraformModel

KINDS = ("latitude", "look", "guide_rgb", "guide_mask")


def planes(n, height, width, kinds=KINDS, stride=8):
    channels = {"latitude": 1, "look": 3, "guide_rgb": 3, "guide_mask": 1}
    return {k: np.zeros((n, channels[k], height // stride, width // stride), np.float32) for k in kinds}


def test_a_conditioned_model_takes_its_planes_by_kind_at_any_aligned_size(tmp_path):
    model = TerraformModel(v2models.write_unet(tmp_path / "m.onnx"), threads=1)
    assert model.metadata.tiling_independent and model.plane_names == {k: k for k in KINDS}
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 48, 80)).astype(np.float32)
    y = model.run(x, planes(2, 48, 80))
    assert y.shape == x.shape and np.isfinite(y).all()
    look = planes(2, 48, 80)
    look["look"][:, 0] = 1.0  # a look changes the picture
    assert np.abs(model.run(x, look) - y).max() > 1e-3
    assert "receptive radius 21 px" in model.describe()
    with pytest.raises(ValueError, match="takes the planes"):
        model.run(x, {"latitude": look["latitude"]})


def test_a_fixed_batch_conditioned_model_runs_any_number_of_tiles(tmp_path):
    specs = v2models.input_specs(["latitude"])
    path = v2models.write_unet(tmp_path / "m.onnx", specs=specs)
    free = TerraformModel(path, threads=1)
    x = np.random.default_rng(1).uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32)
    lat = {"latitude": np.random.default_rng(2).uniform(-1, 1, (3, 1, 4, 4)).astype(np.float32)}
    want = free.run(x, lat)
    one_by_one = np.concatenate([free.run(x[i : i + 1], {"latitude": lat["latitude"][i : i + 1]}) for i in range(3)])
    np.testing.assert_allclose(want, one_by_one, atol=1e-6)


def broken(tmp_path, **kw):
    return v2models.write_unet(tmp_path / "broken.onnx", **kw)


def test_a_declared_input_the_graph_lacks_is_refused(tmp_path):
    graph = v2models.input_specs(["latitude", "look"])
    declared = v2models.input_specs(["latitude", "look", "guide_rgb", "guide_mask"])
    path = broken(tmp_path, specs=declared, graph_specs=graph)
    with pytest.raises(ModelError, match=r"declares the input\(s\) guide_rgb \(guide_rgb\), guide_mask \(guide_mask\), "
                                         "which its graph lacks"):
        TerraformModel(path)


def test_a_graph_input_not_declared_is_refused(tmp_path):
    graph = v2models.input_specs(["latitude", "look"])
    declared = v2models.input_specs(["look"])
    path = broken(tmp_path, specs=declared, graph_specs=graph)
    with pytest.raises(ModelError, match=r"graph input\(s\) latitude are not declared"):
        TerraformModel(path)


def test_channels_that_disagree_with_the_declaration_are_refused(tmp_path):
    graph = v2models.input_specs(["latitude", "look"])
    declared = [dict(s) for s in graph]
    # Four looks declared, three channels in the graph.
    looks = v2models.LOOKS + [{"id": "SAHARA", "label": "Sahara - sand seas"}]
    declared[2]["channels"] = 4
    path = broken(tmp_path, specs=graph, graph_specs=graph,
                  metadata=v2models.v2_metadata(declared, looks=looks))
    with pytest.raises(ModelError, match=r"model input look \(look\) must be float32 \[N, 4, H, W\]"):
        TerraformModel(path)


def test_fixed_tile_dimensions_are_refused(tmp_path):
    path = broken(tmp_path, spatial_fixed=True)
    with pytest.raises(ModelError, match="dynamic H and W"):
        TerraformModel(path)


def test_planes_at_another_stride_than_declared_are_refused(tmp_path):
    specs = v2models.input_specs(["latitude", "look"])
    path = broken(tmp_path, specs=specs, metadata=v2models.v2_metadata(specs) | {"plane_stride": "4"})
    with pytest.raises(ModelError, match="does not run on a 16 px tile with its planes at 1/4"):
        TerraformModel(path)


@pytest.mark.parametrize("change, message", [
    ({"inputs": json.dumps([{"name": "dem_rgb", "kind": "ramp_rgb", "channels": 3},
                            {"name": "latitude", "kind": "latitude", "channels": 1}])},
     "range_deg must be"),  # a latitude plane without its range
    ({"looks": json.dumps([])}, r"look' \(look\) must have one per declared look \(0\)"),
    ({"receptive_radius": "-1"}, "receptive_radius must be an integer"),
    ({"tile_alignment": "12"}, "power of two"),
])
def test_missing_or_inconsistent_conditioning_metadata_is_refused(tmp_path, change, message):
    specs = v2models.input_specs(["latitude", "look"])
    path = broken(tmp_path, specs=specs, metadata=v2models.v2_metadata(specs) | change)
    with pytest.raises(ModelError, match=message):
        TerraformModel(path)
