"""Random-weight contract-2 (tiling-independent, conditioned) ONNX models for the tests, built with onnx.helper
and numpy (no torch: the QGIS 3.40/3.44 matrix runs the tests without it).

``write_unet``: a small U-Net - a reflect-padded 3x3 convolution at full resolution, three 2x2 stride-2
convolutions down to 1/8 (alignment A = 8), the conditioning planes (given at 1/8) concatenated in there, a
reflect-padded 3x3 convolution at 1/8, a bilinear x8 Resize up, joined with the full-resolution features by a
last reflect-padded 3x3 convolution and a tanh. Its receptive radius is 21 px (derived in ``UNET_RADIUS``'s
comment and measured by tests/core/test_v2_tiling.py), so R = 21 is true for the graph.

``write_latitude_echo``: its output is its latitude plane, nearest-upsampled x8 to the three colour channels,
so a test can read back the latitude the engine fed it.

``write_guide_echo``: its output is its guide planes, nearest-upsampled x8: the guide's colours where the mask
is 1 and -1 (0 DN) where it is 0, so a test reads back both the colours and the mask the engine fed it.
"""

import json
import math

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from terraform_plugin.core.ramp import training_ramp
from terraform_plugin.core.schema import build_metadata_v2, stamp

ALIGNMENT = 8  # three stride-2 convolutions
STRIDE = 8  # the conditioning planes come at 1/8
# Output pixel i: the last 3x3 convolution reaches i +- 1. Full-resolution path: a 3x3 convolution, i +- 2.
# Coarse path: the bilinear x8 upsampling of pixels i-1..i+1 reads coarse pixels j from floor((i-0.5)/8-0.5)
# to floor((i+1.5)/8-0.5)+1; the coarse 3x3 convolution widens that by one; coarse pixel k sums the first
# convolution's output over [8k, 8k+8), which reads the input over [8k-1, 8k+9): i-21 .. i+21 in all.
UNET_RADIUS = 21
LOOKS = [
    {"id": "ANDES", "label": "Bolivian Altiplano - arid high plateau", "latitude_deg": -19.0},
    {"id": "ALPS", "label": "Central Alps - forest and glaciers", "latitude_deg": 46.5},
    {"id": "HIMALAYA", "label": "Himalaya - deep valleys under snow", "latitude_deg": 28.0},
]
LATITUDE_RANGE = [-60.0, 60.0]


def _conv(name, x, out_ch, in_ch, k, stride, rng, pad_reflect=0):
    nodes, inits = [], []
    src = x
    if pad_reflect:
        pads = numpy_helper.from_array(np.array([0, 0, pad_reflect, pad_reflect, 0, 0, pad_reflect, pad_reflect],
                                                np.int64), f"{name}_pads")
        inits.append(pads)
        nodes.append(helper.make_node("Pad", [x, f"{name}_pads"], [f"{name}_padded"], mode="reflect"))
        src = f"{name}_padded"
    w = rng.normal(0, 1.0 / math.sqrt(in_ch * k * k), (out_ch, in_ch, k, k)).astype(np.float32)
    b = rng.normal(0, 0.1, out_ch).astype(np.float32)
    inits += [numpy_helper.from_array(w, f"{name}_w"), numpy_helper.from_array(b, f"{name}_b")]
    nodes.append(helper.make_node("Conv", [src, f"{name}_w", f"{name}_b"], [name], kernel_shape=[k, k],
                                  strides=[stride, stride]))
    return nodes, inits


def input_specs(kinds, looks=LOOKS, latitude=None):
    """The metadata ``inputs`` for the plane ``kinds`` (ramp_rgb first, always)."""
    latitude = latitude or {"absolute": False, "scale": 1.0 / 60.0, "range_deg": LATITUDE_RANGE}
    names = {"ramp_rgb": "dem_rgb", "latitude": "latitude", "look": "look", "guide_rgb": "guide_rgb",
             "guide_mask": "guide_mask"}
    specs = []
    for kind in ["ramp_rgb"] + [k for k in kinds if k != "ramp_rgb"]:
        channels = {"ramp_rgb": 3, "latitude": 1, "look": len(looks), "guide_rgb": 3, "guide_mask": 1}[kind]
        spec = {"name": names[kind], "kind": kind, "channels": channels}
        if kind == "latitude":
            spec.update(latitude)
        if kind == "guide_rgb":
            spec["coarse_px"] = 64
        specs.append(spec)
    return specs


def v2_metadata(specs, looks=LOOKS, radius=UNET_RADIUS, alignment=ALIGNMENT, **overrides):
    props = build_metadata_v2(training_ramp(), alignment, radius, specs, looks=looks if any(
        s["kind"] == "look" for s in specs) else (), plane_stride=STRIDE, name="test-unet-v2", version="0")
    props.update({k: (v if isinstance(v, str) else json.dumps(v)) for k, v in overrides.items()})
    return props


def _save(graph_nodes, inits, inputs, output, metadata, path):
    graph = helper.make_graph(graph_nodes, "terraform-v2-test", inputs, [output], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    stamp(model, metadata)
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return str(path)


def _value_infos(specs, spatial_fixed=False):
    infos = []
    for s in specs:
        h, w = ("H", "W") if s["kind"] == "ramp_rgb" else ("h", "w")
        if spatial_fixed:  # a model exported for one tile size only
            h = w = 64 if s["kind"] == "ramp_rgb" else 64 // STRIDE
        infos.append(helper.make_tensor_value_info(s["name"], TensorProto.FLOAT, ["N", s["channels"], h, w]))
    return infos


def write_unet(path, kinds=("latitude", "look", "guide_rgb", "guide_mask"), seed=0, metadata=None, specs=None,
               graph_specs=None, spatial_fixed=False):
    """The small U-Net. ``metadata``: props to stamp instead of the true ones; ``graph_specs``: the graph's own
    inputs when they should differ from what the metadata declares (a broken model)."""
    rng = np.random.default_rng(seed)
    specs = specs or input_specs(kinds)
    graph_specs = graph_specs or specs
    nodes, inits = [], []

    def add(result):
        nodes.extend(result[0])
        inits.extend(result[1])

    add(_conv("e1", "dem_rgb", 4, 3, 3, 1, rng, pad_reflect=1))
    nodes.append(helper.make_node("Relu", ["e1"], ["e1r"]))
    add(_conv("d1", "e1r", 4, 4, 2, 2, rng))
    nodes.append(helper.make_node("Relu", ["d1"], ["d1r"]))
    add(_conv("d2", "d1r", 8, 4, 2, 2, rng))
    nodes.append(helper.make_node("Relu", ["d2"], ["d2r"]))
    add(_conv("d3", "d2r", 8, 8, 2, 2, rng))
    nodes.append(helper.make_node("Relu", ["d3"], ["d3r"]))
    cond = [s for s in graph_specs if s["kind"] != "ramp_rgb"]
    channels = 8 + sum(s["channels"] for s in cond)
    if cond:
        nodes.append(helper.make_node("Concat", ["d3r"] + [s["name"] for s in cond], ["joined"], axis=1))
    else:
        nodes.append(helper.make_node("Identity", ["d3r"], ["joined"]))
    add(_conv("mix", "joined", 8, channels, 1, 1, rng))
    nodes.append(helper.make_node("Relu", ["mix"], ["mixr"]))
    add(_conv("c2", "mixr", 8, 8, 3, 1, rng, pad_reflect=1))
    nodes.append(helper.make_node("Relu", ["c2"], ["c2r"]))
    inits.append(numpy_helper.from_array(np.array([1, 1, STRIDE, STRIDE], np.float32), "up_scales"))
    nodes.append(helper.make_node("Resize", ["c2r", "", "up_scales"], ["up"], mode="linear",
                                  coordinate_transformation_mode="half_pixel"))
    nodes.append(helper.make_node("Concat", ["up", "e1r"], ["skip"], axis=1))
    add(_conv("out", "skip", 3, 12, 3, 1, rng, pad_reflect=1))
    nodes.append(helper.make_node("Tanh", ["out"], ["satellite_rgb"]))
    output = helper.make_tensor_value_info("satellite_rgb", TensorProto.FLOAT, ["N", 3, "H", "W"])
    return _save(nodes, inits, _value_infos(graph_specs, spatial_fixed), output,
                 metadata if metadata is not None else v2_metadata(specs), path)


def write_latitude_echo(path, latitude=None):
    """Output = the latitude plane (declared ``latitude`` options), upsampled x8 (nearest) to three channels;
    the DEM's colours are an input it ignores (times 0). Receptive radius 0."""
    specs = input_specs(["latitude"], latitude=latitude)
    nodes = [
        helper.make_node("Concat", ["latitude", "latitude", "latitude"], ["lat3"], axis=1),
        helper.make_node("Resize", ["lat3", "", "up_scales"], ["up"], mode="nearest"),
        helper.make_node("Mul", ["dem_rgb", "zero"], ["ignored"]),
        helper.make_node("Add", ["up", "ignored"], ["satellite_rgb"]),
    ]
    inits = [numpy_helper.from_array(np.array([1, 1, STRIDE, STRIDE], np.float32), "up_scales"),
             numpy_helper.from_array(np.zeros(1, np.float32), "zero")]
    output = helper.make_tensor_value_info("satellite_rgb", TensorProto.FLOAT, ["N", 3, "H", "W"])
    metadata = build_metadata_v2(training_ramp(), ALIGNMENT, 0, specs, plane_stride=STRIDE, name="latitude-echo",
                                 version="0")
    return _save(nodes, inits, _value_infos(specs), output, metadata, path)


def write_guide_echo(path, coarse_px=32, kinds=("guide_rgb", "guide_mask")):
    """Output = guide_rgb + guide_mask - 1, upsampled x8 (nearest): the guide's colours where it has data (the
    engine gives 0 where the mask is 0), -1 elsewhere. The DEM's colours (and any ``kinds`` beyond the guide's)
    are inputs it ignores (times 0). Receptive radius 0."""
    specs = input_specs(kinds)
    for spec in specs:
        if spec["kind"] == "guide_rgb":
            spec["coarse_px"] = coarse_px
    nodes = [
        helper.make_node("Add", ["guide_rgb", "guide_mask"], ["masked"]),  # the mask broadcast over 3 channels
        helper.make_node("Sub", ["masked", "one"], ["echo"]),
        helper.make_node("Resize", ["echo", "", "up_scales"], ["up"], mode="nearest"),
        helper.make_node("Mul", ["dem_rgb", "zero"], ["ignored"]),
        helper.make_node("Add", ["up", "ignored"], ["sum0"]),
    ]
    last = "sum0"
    for k, spec in enumerate(s for s in specs if s["kind"] not in ("ramp_rgb", "guide_rgb", "guide_mask")):
        nodes += [helper.make_node("ReduceSum", [spec["name"]], [f"r{k}"], keepdims=0, noop_with_empty_axes=0),
                  helper.make_node("Mul", [f"r{k}", "zero"], [f"z{k}"]),
                  helper.make_node("Add", [last, f"z{k}"], [f"sum{k + 1}"])]
        last = f"sum{k + 1}"
    nodes.append(helper.make_node("Identity", [last], ["satellite_rgb"]))
    inits = [numpy_helper.from_array(np.array([1, 1, STRIDE, STRIDE], np.float32), "up_scales"),
             numpy_helper.from_array(np.zeros(1, np.float32), "zero"),
             numpy_helper.from_array(np.ones(1, np.float32), "one")]
    output = helper.make_tensor_value_info("satellite_rgb", TensorProto.FLOAT, ["N", 3, "H", "W"])
    looks = LOOKS if "look" in kinds else ()
    metadata = build_metadata_v2(training_ramp(), ALIGNMENT, 0, specs, looks=looks, plane_stride=STRIDE,
                                 name="guide-echo", version="0")
    return _save(nodes, inits, _value_infos(specs), output, metadata, path)
