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
from terraform_plugin.core.schema import build_metadata, build_metadata_v2, stamp

from . import checkpoint as ckpt
from .conditioning import conditioning_of
from .levers import LEVERS
from .nets import NUM_DOWNS, REFERENCE
from .prepare import SEED_RESOLUTION_M
from .receptive import receptive_radius

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


class ConditionedGenerator(torch.nn.Module):
    """A contract-2 generator with its conditioning planes as separate named inputs (what the plugin feeds)."""

    def __init__(self, generator):
        super().__init__()
        self.generator = generator

    def forward(self, dem_rgb, latitude, guide_rgb, guide_mask, look):
        return self.generator(dem_rgb, torch.cat([latitude, guide_rgb, guide_mask, look], 1))


def to_onnx_v2(generator, spec, path):
    """A contract-2 generator into a single-file ONNX: dynamic batch, height and width (multiples of its
    alignment), the conditioning planes at 1/stride of those."""
    side, stride = 2 * generator.alignment, spec.stride
    names = [e["name"] for e in spec.onnx_inputs()]
    channels = [3, 1, 3, 1, len(spec.looks)]
    inputs = tuple(torch.zeros(1, c, side // (1 if i == 0 else stride), side // (1 if i == 0 else stride))
                   for i, c in enumerate(channels))
    axes = {name: {0: "batch", 2: "height" if i == 0 else "plane_height", 3: "width" if i == 0 else "plane_width"}
            for i, name in enumerate(names)}
    axes[OUTPUT] = {0: "batch", 2: "height", 3: "width"}
    # The TorchScript exporter: its dynamic axes need no symbolic relation between the image's and the planes'
    # sides (height = stride * plane_height), which torch.export would have to prove through the pooling. No
    # constant folding: it would fold each BatchNorm into its convolution under an anonymous name, and warm starts
    # match weights by name (onnxruntime fuses the pairs itself when it loads the model: the same arithmetic).
    torch.onnx.export(ConditionedGenerator(generator).eval(), inputs, path, dynamo=False, opset_version=OPSET,
                      input_names=names, output_names=[OUTPUT], dynamic_axes=axes, do_constant_folding=False)
    return onnx.load(path)


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
    downs = full.get("num_downs", NUM_DOWNS)
    kind = ("U-Net 256 (8 down / 8 up, skips)" if downs == NUM_DOWNS else
            f"U-Net, {downs} down / {downs} up with skips, fully convolutional; conditioning planes at 1/"
            f"{full.get('cond_stride', 8)} resolution into every encoder level that coarse")
    return {"generator": kind, "ngf": full["ngf"], "max_channels": full["max_channels"],
            "upsample": {"transposed": "4x4 stride-2 transposed conv", "bilinear": "bilinear x2 + 3x3 conv",
                         "nearest": "nearest x2 + 3x3 conv"}[full["upsample"]],
            "norm": {"instance": "InstanceNorm (per-chip statistics)",
                     "batch": "BatchNorm (running statistics, fixed at inference)"}[full["norm"]],
            "padding": full["padding"], "dropout_in_training": full["dropout"],
            **({"downsampling": "3x3 binomial blur, then 4x4 stride-2 conv (anti-aliased)"} if full.get("antialias") else {}),
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
    training.update({k: run_args[k] for k in LEVERS if k in run_args})  # how the texture was trained
    contract = {}
    conditioning = conditioning_of(state)
    if conditioning is not None:
        spec, _ = conditioning
        generator = ckpt.generator_from_checkpoint(state)
        contract = {"alignment": generator.alignment, "receptive_radius": receptive_radius(generator),
                    "inputs": spec.onnx_inputs(INPUT), "looks": state["conditioning"]["looks"],
                    "plane_stride": spec.stride}
    build = build_metadata_v2 if contract else build_metadata
    return build(
        training_ramp(),
        # What training.prepare used (recorded in the checkpoint); checkpoints from before it was: the seed's.
        resolution_m=state.get("resolution_m", SEED_RESOLUTION_M),
        **contract,
        images_seen=state.get("images_seen"),
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
    conditioning = conditioning_of(state)
    out_dir = os.path.dirname(os.path.abspath(args.output))
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        raw = os.path.join(tmp, "raw.onnx")
        model = to_onnx(generator, raw, args.exporter) if conditioning is None else to_onnx_v2(generator, conditioning[0], raw)
    if args.fp16:
        model = weights_to_fp16(model)
    model.producer_name = "terraform-dem training.export"
    stamp(model, metadata_for(state, args))
    onnx.checker.check_model(model, full_check=True)
    tmp_path = args.output + ".tmp"
    onnx.save(model, tmp_path)  # < 2 GB, so protobuf holds it all: one self-contained file
    try:
        tolerance = args.tolerance if args.tolerance is not None else (3e-2 if args.fp16 else 1e-3)
        report = (verify(generator, tmp_path, tolerance) if conditioning is None
                  else verify_v2(generator, conditioning[0], tmp_path, tolerance))
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


def verify_v2(generator, spec, path, tolerance):
    """onnxruntime vs torch on a batch of 2 non-square tiles, then the contract's own promise: the same
    pixels from a tile cut at another multiple of the alignment, farther than the declared radius from its
    edges (with the trained weights, not only by construction), then the plugin's own metadata check."""
    import onnxruntime as ort

    from terraform_plugin.core.schema import parse_metadata

    meta = parse_metadata({p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props})
    a, r, s = meta.alignment, meta.receptive_radius, meta.plane_stride
    rng = np.random.default_rng(0)
    h, w = 4 * a + 2 * r + 2 * a, 6 * a + 2 * r
    h, w = -(-h // a) * a, -(-w // a) * a
    x = rng.uniform(-1, 1, size=(2, 3, h, w)).astype(np.float32)
    cond = rng.uniform(0, 1, size=(2, spec.channels, h // s, w // s)).astype(np.float32)
    with torch.no_grad():
        expected = generator(torch.from_numpy(x), torch.from_numpy(cond)).numpy()
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def run(xx, cc):
        parts = [xx] + [np.ascontiguousarray(p) for p in spec.split(cc)]
        return session.run(None, dict(zip(names, parts)))[0]

    got = run(x, cond)
    diff = float(np.max(np.abs(got - expected)))
    if not diff <= tolerance:
        raise SystemExit(f"export check failed: max |onnxruntime - torch| = {diff:.3e} > {tolerance:g}")
    shifted = run(x[:, :, a:, 2 * a:], cond[:, :, a // s :, 2 * a // s :])
    common = got[:, :, a + r : h - r, 2 * a + r : w - r]
    crop = shifted[:, :, r : h - a - r, r : w - 2 * a - r]
    shift_diff = float(np.max(np.abs(common - crop)))
    if not shift_diff <= 1e-4:
        raise SystemExit(f"export check failed: a tile cut {a} px lower and {2 * a} px further right differs by "
                         f"{shift_diff:.3e} more than {r} px from its edges (declared alignment {a}, radius {r})")
    return {"max_abs_diff": diff, "tolerance": tolerance, "shift_diff": shift_diff,
            "plugin": f"contract 2, alignment {a}, radius {r}, planes at 1/{s}, looks "
                      f"{', '.join(lk.id for lk in meta.looks)}"}


def main(argv=None):
    return export(parse_args(argv))


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
