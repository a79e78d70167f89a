"""Int8 versions of an exported generator that keep the model contract.

    python -m training.quantize --input model.onnx --output model_int8.onnx \
        [--method weights|static] [--calibration ../shared/data/seed-pairs]

Two methods, chosen by measurement (docs/release_model.md, docs/size_study.json):

- ``weights`` (default): weight-only int8. Every Conv / ConvTranspose weight is stored as int8 with one
  symmetric scale per output channel; onnxruntime turns them back into float32 weights at load, so
  arithmetic stays float32. A quarter of the fp32 file, the fp32 model's speed, the smallest drift.
- ``static``: full QDQ int8 (uint8 activations calibrated on ramp chips, per-channel int8 weights),
  onnxruntime's static quantisation. Same file size, but it took up to 26% MORE CPU per tile than
  float32 (teacher +26%, ngf 32 +11%, ngf 16 +15%, ngf 32 cap 128 -3%; docs/size_study.json):
  ConvTranspose has no int8 CPU kernel, so its Q/DQ pairs only add work, and every InstanceNorm needs
  a DQ/Q round trip. Its drift was 4-5x larger.

Dynamic quantisation (ConvInteger) is not offered: it was the slowest variant measured (about 2x fp32)
and leaves the ConvTranspose half of the weights in float32 (12.4 MB instead of 4.4 for ngf 32 cap 128).

Either way the result has the same float32 input/output and the same ``metadata_props`` (``weights``
updated, ``quantization`` added), and is only written once the plugin's own loader accepts it and its
drift from the float32 model is within bounds.
"""

import argparse
import json
import os
import sys
import tempfile

import numpy as np
import onnx
from onnx import helper, numpy_helper

from terraform_plugin.core.model import TerraformModel
from terraform_plugin.core.ramp import training_ramp

METHODS = ("weights", "static")
WEIGHT_AXIS = {"Conv": 0, "ConvTranspose": 1}  # output-channel axis of each op's weight (group 1)


# --- calibration / test chips ---------------------------------------------------------------------
def ramp_chips(dirs=None, n=16, seed=0) -> np.ndarray:
    """``n`` colourised-elevation chips as float32 NCHW in [-1, 1].

    Real ramp chips (``*c.jpg`` of seed-layout pairs) spread over every region when ``dirs`` are given;
    otherwise synthetic relief coloured with the training ramp, so the tools run on a fresh clone.
    """
    rng = np.random.default_rng(seed)
    if dirs:
        from .data import find_pairs, load_rgb

        pairs = find_pairs(dirs)
        idx = np.sort(rng.choice(len(pairs), size=min(n, len(pairs)), replace=False))
        rgb = np.stack([np.asarray(load_rgb(pairs[i].elevation), dtype=np.uint8) for i in idx])
    else:
        rgb = np.stack([training_ramp().colourise(_synthetic_relief(rng)) for _ in range(n)])
    return (rgb.transpose(0, 3, 1, 2).astype(np.float32) / 127.5 - 1.0).copy()


def _synthetic_relief(rng, size=256):
    """Smooth random relief over 0-6000 m with a sea patch: every ramp colour band gets exercised."""
    y, x = np.mgrid[0:size, 0:size] / size
    z = np.zeros((size, size))
    for k in range(1, 5):
        a, b, p, q = rng.uniform(0.5, 2.0, 4)
        z += np.sin(2 * np.pi * a * k * y + p * 6) * np.cos(2 * np.pi * b * k * x + q * 6) / k
    z = (z - z.min()) / np.ptp(z) * 6000.0 - 300.0  # a little below sea level too
    return z


# --- the two methods ------------------------------------------------------------------------------
def quantize_weights_int8(model: onnx.ModelProto, min_size=1024) -> onnx.ModelProto:
    """Weight-only int8: Conv/ConvTranspose weights -> int8 + per-output-channel scale, then Cast and Mul.

    Symmetric (zero point 0, range ±127) so that a zero weight stays exactly zero. Cast + Mul rather than
    DequantizeLinear: onnxruntime folds Cast/Mul of initializers into float32 weights at load, but keeps
    DequantizeLinear for its QDQ fusions and re-runs it on every call (measured: ~40% more CPU per tile).
    """
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    dequant = []
    for node in graph.node:
        axis = WEIGHT_AXIS.get(node.op_type)
        if axis is None or len(node.input) < 2 or node.input[1] not in inits:
            continue
        if any(a.name == "group" and a.i != 1 for a in node.attribute):
            continue  # grouped ConvTranspose puts output channels elsewhere; the U-Net has none
        name = node.input[1]
        w = numpy_helper.to_array(inits[name]).astype(np.float32)
        if w.size < min_size:
            continue
        reduce = tuple(i for i in range(w.ndim) if i != axis)
        scale = np.maximum(np.abs(w).max(axis=reduce, keepdims=True), 1e-12) / 127.0
        q = np.clip(np.round(w / scale), -127, 127).astype(np.int8)
        graph.initializer.remove(inits[name])
        del inits[name]
        graph.initializer.extend([numpy_helper.from_array(q, name + "_int8"),
                                  numpy_helper.from_array(scale.astype(np.float32), name + "_scale")])
        dequant += [
            helper.make_node("Cast", [name + "_int8"], [name + "_int8_f32"], to=onnx.TensorProto.FLOAT,
                             name=name + "_cast"),
            helper.make_node("Mul", [name + "_int8_f32", name + "_scale"], [name], name=name + "_dequant"),
        ]
    nodes = dequant + list(graph.node)  # initializer-fed, so first is a valid topological order
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def quantize_static_qdq(src_path, dst_path, chips: np.ndarray, input_name=None):
    """onnxruntime static QDQ: uint8 activations (MinMax over ``chips``), per-channel int8 weights."""
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    input_name = input_name or onnx.load(src_path, load_external_data=False).graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.feed = iter([{input_name: c[None]} for c in chips])

        def get_next(self):
            return next(self.feed, None)

    with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(dst_path))) as tmp:
        pre = os.path.join(tmp, "pre.onnx")
        # Symbolic shape inference is for transformers; plain ONNX shape inference covers this graph.
        quant_pre_process(src_path, pre, skip_symbolic_shape=True)
        quantize_static(pre, dst_path, Reader(), quant_format=QuantFormat.QDQ,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
                        calibrate_method=CalibrationMethod.MinMax)


def copy_metadata(src: onnx.ModelProto, dst: onnx.ModelProto, method: str):
    """The contract's metadata, unchanged, plus what a reader of the model card needs to know."""
    del dst.metadata_props[:]
    for p in src.metadata_props:
        value = p.value
        if p.key == "weights":
            value = json.dumps("int8 per-channel" + (" (weights only; float32 arithmetic)" if method == "weights"
                                                     else " with uint8 activations (static QDQ)"))
        dst.metadata_props.add(key=p.key, value=value)
    if not any(p.key == "weights" for p in src.metadata_props):
        dst.metadata_props.add(key="weights", value=json.dumps("int8 per-channel"))
    dst.metadata_props.add(key="quantization", value=json.dumps(
        {"method": method, "tool": "training.quantize", "weights": "int8 symmetric per output channel",
         "activations": "float32" if method == "weights" else "uint8, MinMax-calibrated on ramp chips"}))
    dst.producer_name = src.producer_name or "terraform-dem training.quantize"


# --- drift and the plugin's check -----------------------------------------------------------------
def drift(reference_path, path, chips: np.ndarray, threads=None) -> dict:
    """|float32 - quantised| on [-1, 1] over ``chips``, through the plugin's own loader."""
    ref = TerraformModel(reference_path, threads=threads, use_gpu=False)
    got = TerraformModel(path, threads=threads, use_gpu=False)  # raises ModelError if the plugin refuses it
    diffs = [np.abs(got.run(c[None]) - ref.run(c[None])) for c in chips]
    d = np.concatenate([x.ravel() for x in diffs])
    y = got.run(chips[:1])
    return {"max_abs": float(d.max()), "mean_abs": float(d.mean()), "p99_abs": float(np.percentile(d, 99)),
            "mean_abs_0_255": float(d.mean() * 127.5), "chips": int(len(chips)),
            "output_shape": list(y.shape), "output_min": float(y.min()), "output_max": float(y.max()),
            "plugin": got.describe()}


def quantize(input_path, output_path, method="weights", calibration=None, chips=16, max_mean_drift=0.03,
             seed=0) -> dict:
    """Write the int8 model atomically; return size and drift. ``calibration``: seed-layout folders."""
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    src = onnx.load(input_path)
    # Calibration and drift use different chips: a drift measured on calibration data would flatter static.
    all_chips = ramp_chips(calibration, n=2 * chips, seed=seed)
    calib, test = all_chips[0::2], all_chips[1::2]
    out_dir = os.path.dirname(os.path.abspath(output_path)) or "."
    os.makedirs(out_dir, exist_ok=True)
    tmp_path = output_path + ".tmp"
    try:
        if any(i.data_type == onnx.TensorProto.FLOAT16 for i in src.graph.initializer):
            # fp16 weights sit behind Casts, out of the quantiser's sight: int8 must start from float32.
            raise SystemExit(f"{input_path} has float16 weights; quantise the float32 export (without --fp16)")
        if method == "weights":
            model = quantize_weights_int8(onnx.load(input_path))
        else:
            quantize_static_qdq(input_path, tmp_path, calib, src.graph.input[0].name)
            model = onnx.load(tmp_path)
        copy_metadata(src, model, method)
        onnx.checker.check_model(model, full_check=True)
        onnx.save(model, tmp_path)
        report = drift(input_path, tmp_path, test)
        if not report["mean_abs"] <= max_mean_drift:
            raise SystemExit(f"quantisation drift too large: mean |fp32 - int8| = {report['mean_abs']:.4f} "
                             f"> {max_mean_drift} (on [-1, 1])")
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
    os.replace(tmp_path, output_path)
    report.update(method=method, input_bytes=os.path.getsize(input_path), bytes=os.path.getsize(output_path),
                  calibration="seed-layout chips" if calibration else "synthetic ramp chips")
    return report


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.quantize", description=__doc__.split("\n\n")[0])
    p.add_argument("--input", required=True, help="float32 (or fp16-weight) ONNX from training.export")
    p.add_argument("--output", required=True, help="the int8 .onnx to write")
    p.add_argument("--method", choices=METHODS, default="weights",
                   help="weights: int8 weights, float32 arithmetic (default; smallest drift); "
                        "static: int8 QDQ with calibrated uint8 activations")
    p.add_argument("--calibration", nargs="*", default=None,
                   help="seed-layout folders whose ramp chips calibrate (static) and measure drift "
                        "(default: synthetic ramp chips)")
    p.add_argument("--chips", type=int, default=16, help="calibration chips, and as many drift chips (default 16)")
    p.add_argument("--max-mean-drift", type=float, default=0.03,
                   help="refuse a result whose mean |fp32 - int8| on [-1, 1] exceeds this (default 0.03 ~ 4/255)")
    return p.parse_args(argv)


def main(argv=None):
    a = parse_args(argv)
    r = quantize(a.input, a.output, a.method, a.calibration, a.chips, a.max_mean_drift)
    print(f"wrote {a.output}: {r['bytes'] / 1e6:.2f} MB (from {r['input_bytes'] / 1e6:.2f} MB), method {r['method']}; "
          f"drift vs float32 on {r['chips']} {r['calibration']}: max {r['max_abs']:.4f}, mean {r['mean_abs']:.5f} "
          f"(= {r['mean_abs_0_255']:.2f}/255); plugin loader: {r['plugin']}")
    return r


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
