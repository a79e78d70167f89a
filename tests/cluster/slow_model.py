"""A contract model that is the identity, bit for bit, but takes real time per chip: y = x + 0 * conv(conv(x)).

The fault tests need parts that are still running when they kill a worker or the client; the identity model
finishes a small DEM before a kill can land. x + 0 * c is exactly x for finite c, so the output stays checkable
against the colourised DEM and the single-process run.
"""

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from terraform_plugin.core.schema import stamp
from v1models import contract_metadata


def write_slow_identity(path, channels=16, kernel=9):
    rng = np.random.default_rng(0)
    w1 = numpy_helper.from_array(rng.uniform(-0.05, 0.05, (channels, 3, kernel, kernel)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.uniform(-0.05, 0.05, (3, channels, kernel, kernel)).astype(np.float32), "w2")
    zero = numpy_helper.from_array(np.zeros((1,), np.float32), "zero")
    pads = [kernel // 2] * 4
    nodes = [
        helper.make_node("Conv", ["dem_rgb", "w1"], ["h1"], pads=pads),
        helper.make_node("Relu", ["h1"], ["h1r"]),
        helper.make_node("Conv", ["h1r", "w2"], ["h2"], pads=pads),
        helper.make_node("Mul", ["h2", "zero"], ["nothing"]),
        helper.make_node("Add", ["dem_rgb", "nothing"], ["satellite_rgb"]),
    ]
    x = helper.make_tensor_value_info("dem_rgb", TensorProto.FLOAT, ["N", 3, 256, 256])
    y = helper.make_tensor_value_info("satellite_rgb", TensorProto.FLOAT, ["N", 3, 256, 256])
    graph = helper.make_graph(nodes, "terraform-slow-identity", [x], [y], initializer=[w1, w2, zero])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    stamp(model, contract_metadata(name="test-slow-identity"))
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)
