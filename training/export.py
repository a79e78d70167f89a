"""Export a checkpoint's generator as the ONNX the plugin runs, and prove the plugin accepts it.

    python -m training.export --checkpoint runs/demo/checkpoints/last.pt --output models/terraform_generator.onnx

The generator is exported in eval mode (dropout off; BatchNorm uses its running statistics, InstanceNorm each
chip's own), opset 18, dynamic batch, one self-contained file, with the model contract's metadata.
"""

import argparse
import datetime
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from terraform_plugin.core.model import TerraformModel
from terraform_plugin.core.ramp import training_ramp
from terraform_plugin.core.schema import build_metadata, stamp

from . import checkpoint as ckpt
from .nets import REFERENCE
from .prepare import SEED_RESOLUTION_M

OPSET = 18
INPUT, OUTPUT = "dem_rgb", "satellite_rgb"
SEED_LICENCE = (
    "Imagery: Sentinel-2 cloudless - https://s2maps.eu by EOX IT Services GmbH (Contains modified Copernicus "
    "Sentinel data 2020), CC BY-NC-SA 4.0: the model is a derived work under the same terms (non-commercial, "
    "share-alike, attribution). Elevation: SRTM (NASA/NGA/USGS), public domain."
)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m training.export", description=__doc__.split("\n\n")[0])
    p.add_argument("--checkpoint", required=True, help="a training checkpoint (RUN/checkpoints/last.pt)")
    p.add_argument("--output", required=True, help="the .onnx file to write")
    p.add_argument("--name", default=None, help="model name in the metadata (default terraform-pix2pix-ngfN)")
    p.add_argument("--version", default="0.1.0", help="model version in the metadata (default 0.1.0)")
    p.add_argument("--fp16", action="store_true",
                   help="store weights as float16 (half the file); inputs, outputs and arithmetic stay float32")
    p.add_argument("--licence", default=SEED_LICENCE, help="data licence note (default: the seed data's)")
    p.add_argument("--data-note", default=None, help="training-data description (default: from the checkpoint)")
    p.add_argument("--tolerance", type=float, default=None,
                   help="largest accepted |onnxruntime - torch| on [-1, 1] (default 1e-3, 3e-2 with --fp16)")
    p.add_argument("--exporter", choices=["dynamo", "torchscript"], default="dynamo",
                   help="torch.onnx exporter (default dynamo: the clean graph; torchscript as a fallback)")
    return p.parse_args(argv)


def git_commit():
    try:
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "training"], cwd=root, capture_output=True,
                               text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def to_onnx(generator, path, exporter="dynamo"):
    """Trace ``generator`` (eval mode) into a single-file ONNX with a dynamic batch dimension."""
    x = torch.zeros(1, 3, 256, 256)
    if exporter == "dynamo":
        torch.onnx.export(generator, (x,), path, dynamo=True, opset_version=OPSET, input_names=[INPUT],
                          output_names=[OUTPUT], dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                          external_data=False, verbose=False)
    else:
        torch.onnx.export(generator, (x,), path, dynamo=False, opset_version=OPSET, input_names=[INPUT],
                          output_names=[OUTPUT], dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}})
    return onnx.load(path)


def weights_to_fp16(model: onnx.ModelProto, min_size=1024) -> onnx.ModelProto:
    """Store large float32 initializers as float16, each followed by a Cast back to float32.

    Weight-only: onnxruntime folds the Casts at load, so it computes in float32 (its CPU kernels for
    float16 convolutions are sparse) while the file is half the size.
    """
    graph = model.graph
    casts, keep = [], []
    for init in graph.initializer:
        if init.data_type == TensorProto.FLOAT and np.prod(init.dims) >= min_size:
            half = numpy_helper.from_array(numpy_helper.to_array(init).astype(np.float16), init.name + "_fp16")
            keep.append(half)
            casts.append(helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT,
                                          name=init.name + "_to_fp32"))
        else:
            keep.append(init)
    del graph.initializer[:]
    graph.initializer.extend(keep)
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def architecture(cfg) -> dict:
    """The generator's build, as recorded in the metadata and the model card."""
    full = {**REFERENCE, **cfg}
    return {"generator": "U-Net 256 (8 down / 8 up, skips)", "ngf": full["ngf"], "max_channels": full["max_channels"],
            "upsample": {"transposed": "4x4 stride-2 transposed conv", "bilinear": "bilinear x2 + 3x3 conv",
                         "nearest": "nearest x2 + 3x3 conv"}[full["upsample"]],
            "norm": {"instance": "InstanceNorm (per-chip statistics)",
                     "batch": "BatchNorm (running statistics, fixed at inference)"}[full["norm"]],
            "padding": full["padding"], "dropout_in_training": full["dropout"],
            "discriminator": "70x70 PatchGAN, InstanceNorm"}


def metadata_for(state, args) -> dict:
    cfg = state["generator_config"]
    name = args.name or f"terraform-pix2pix-ngf{cfg['ngf']}" + (f"-cap{cfg['max_channels']}" if cfg["max_channels"] else "")
    run_args = state.get("args", {})
    data = args.data_note or {
        "folders": [os.path.basename(os.path.normpath(d)) for d in run_args.get("data", [])],
        "train_regions": state.get("train_regions"),
        "val_regions": state.get("val_regions"),
        "train_chips": state.get("train_chips"),
        "val_chips": state.get("val_chips"),
    }
    training = {k: run_args.get(k) for k in ("batch_size", "lr", "lambda_l1", "ndf", "amp", "precision", "seed")}
    return build_metadata(
        training_ramp(),
        # What training.prepare used (recorded in the checkpoint); checkpoints from before it was: the seed's.
        resolution_m=state.get("resolution_m", SEED_RESOLUTION_M),
        name=name,
        version=args.version,
        ngf=cfg["ngf"],
        max_channels=cfg["max_channels"],
        architecture=architecture(cfg),
        warm_start=state.get("warm_start"),
        batchnorm_statistics=state.get("batchnorm_statistics"),
        steps=state["step"],
        training=training,
        data=data,
        licence=args.licence,
        git_commit=git_commit(),
        weights="float16" if args.fp16 else "float32",
        exported=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )


def export(args):
    state = ckpt.load(args.checkpoint)
    generator = ckpt.generator_from_checkpoint(state)  # eval mode
    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        model = to_onnx(generator, os.path.join(tmp, "raw.onnx"), args.exporter)
    if args.fp16:
        model = weights_to_fp16(model)
    model.producer_name = "terraform-dem training.export"
    stamp(model, metadata_for(state, args))
    onnx.checker.check_model(model, full_check=True)
    tmp_path = args.output + ".tmp"
    onnx.save(model, tmp_path)  # < 2 GB, so protobuf holds it all: one self-contained file
    try:
        report = verify(generator, tmp_path, args.tolerance if args.tolerance is not None else (3e-2 if args.fp16 else 1e-3))
    except Exception:
        os.remove(tmp_path)
        raise
    os.replace(tmp_path, args.output)  # only a verified model takes the final name
    report["bytes"] = os.path.getsize(args.output)
    print(f"wrote {args.output}: {report['bytes'] / 1e6:.2f} MB, step {state['step']}, "
          f"max |onnxruntime - torch| = {report['max_abs_diff']:.2e} (bound {report['tolerance']:g}); "
          f"plugin loader: {report['plugin']}")
    return report


def verify(generator, path, tolerance):
    """onnxruntime vs torch on a batch of 2 (exercises the dynamic batch), then the plugin's own loader."""
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(2, 3, 256, 256)).astype(np.float32)
    with torch.no_grad():
        expected = generator(torch.from_numpy(x)).numpy()
    model = TerraformModel(path, use_gpu=False)  # raises ModelError if the plugin would refuse it
    got = model.run(x)
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= tolerance:
        raise SystemExit(f"export check failed: max |onnxruntime - torch| = {diff:.3e} > {tolerance:g}")
    # The check runs on the not-yet-renamed file: describe the model without that temporary name.
    return {"max_abs_diff": diff, "tolerance": tolerance,
            "plugin": model.describe().replace(f" ({os.path.basename(path)})", "")}


def main(argv=None):
    return export(parse_args(argv))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
