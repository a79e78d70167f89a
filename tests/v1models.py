"""Tiny ONNX models that follow (or deliberately break) the model contract, built with onnx.helper (no torch).

The tests and the benchmarks use them. They make the plugin's behaviour exactly checkable: an identity model must reproduce the colourised DEM,
so any seam, shift or darkened edge in the output is the engine's fault.
"""

import json

import onnx
from onnx import TensorProto, helper

from terraform_plugin.core.ramp import training_ramp
from terraform_plugin.core.schema import build_metadata, stamp


def contract_metadata(**overrides) -> dict:
    props = build_metadata(training_ramp(), name="test-identity", version="0")
    props.update({k: (v if isinstance(v, str) else json.dumps(v)) for k, v in overrides.items()})
    return props


def write_model(path, op="identity", metadata="contract", tile=256, channels=3, batch="N"):
    """Write a one-node model. op: identity | negate (y = -x, i.e. the colour inverse).

    metadata: "contract" (valid), None (no metadata at all) or a dict of metadata_props.
    """
    x = helper.make_tensor_value_info("dem_rgb", TensorProto.FLOAT, [batch, channels, tile, tile])
    y = helper.make_tensor_value_info("satellite_rgb", TensorProto.FLOAT, [batch, channels, tile, tile])
    node = helper.make_node({"identity": "Identity", "negate": "Neg"}[op], ["dem_rgb"], ["satellite_rgb"])
    graph = helper.make_graph([node], f"terraform-{op}", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by any onnxruntime from 1.10 on
    if metadata == "contract":
        metadata = contract_metadata()
    stamp(model, metadata or {})
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)
