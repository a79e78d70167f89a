"""Warm start: weights from a checkpoint, the shipped trainable weights, or a released ONNX model.

So that training adds up across sessions, and so that a user can fine-tune the bundled model on their own
region. Tensors are matched by name and shape: an ONNX file exported by ``training.export`` keeps the
PyTorch parameter names as its initializer names (each BatchNorm folded into its convolution, which
``_unfold_batchnorm`` undoes). A convolution whose input gained channels (conditioning planes added to a
level, a new look appended) takes the old weights for the old channels and zeros for the new ones, so the
warm-started network computes exactly what the old one did until training moves it. What does not match
(another architecture's decoder, say) keeps its fresh initialisation, and the report says how much was taken.
"""

import os

import torch


# A contract-2 export wraps the generator (export.ConditionedGenerator) so its tensors carry this prefix.
CONDITIONED_PREFIX = "generator."


def _onnx_tensors(path) -> dict:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    tensors = {}
    for init in model.graph.initializer:
        name = init.name[: -len("_fp16")] if init.name.endswith("_fp16") else init.name  # export --fp16
        name = name[len(CONDITIONED_PREFIX):] if name.startswith(CONDITIONED_PREFIX) else name  # contract 2
        tensors[name] = torch.from_numpy(numpy_helper.to_array(init).astype("float32", copy=False).copy())
    return tensors


def _checkpoint_tensors(path, net="generator") -> dict:
    from . import checkpoint as ckpt

    state = ckpt.load(path)
    if net not in state:
        if net != "generator":
            return {}
        raise SystemExit(f"--init-from {path}: not a training checkpoint (no generator weights)")
    return {k: v.float() if v.is_floating_point() else v for k, v in state[net].items()}  # fp16 shipped weights


def source_looks(path) -> list:
    """The look ids a warm-start source was trained with, in channel order ([] when it has none)."""
    if path.lower().endswith(".onnx"):
        import json

        import onnx

        props = {p.key: p.value for p in onnx.load(path, load_external_data=False).metadata_props}
        return [lk["id"] for lk in json.loads(props.get("looks", "[]"))]
    from . import checkpoint as ckpt

    record = ckpt.load(path).get("conditioning") or {}
    return [lk["id"] for lk in record.get("looks", [])]


def _embed(own, source):
    """``source`` inside a zero tensor shaped like ``own`` when only the input channels (dim 1) grew, else None."""
    if own.dim() != source.dim() or own.dim() < 2 or own.shape[0] != source.shape[0] or own.shape[2:] != source.shape[2:]:
        return None
    if own.shape[1] <= source.shape[1]:
        return None
    out = torch.zeros_like(own)
    out[:, : source.shape[1]] = source
    return out


def _conv_norm_pairs(net):
    """(convolution name, BatchNorm module name, BatchNorm module) for each BatchNorm right after a convolution."""
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.Sequential):
            children = list(module.named_children())
            for (conv_name, conv), (norm_name, norm) in zip(children, children[1:]):
                if isinstance(conv, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)) and isinstance(norm, torch.nn.BatchNorm2d):
                    yield f"{name}.{conv_name}" if name else conv_name, f"{name}.{norm_name}" if name else norm_name, norm


def _unfold_batchnorm(net, source) -> dict:
    """BatchNorm tensors for a graph whose exporter folded each BatchNorm into its convolution.

    The folded graph keeps the convolution's name for the scaled weight W' = W * gamma / sigma and adds
    ``<conv>.weight_bias`` = beta - gamma * mu / sigma. With W' in the convolution and an identity BatchNorm
    (mean 0, variance 1 - eps, scale 1) shifted by that bias, eval mode computes exactly what the ONNX does;
    gamma and beta start from 1 and the folded bias when training resumes (a checkpoint keeps them apart).
    """
    extra = {}
    for conv, norm_name, norm in _conv_norm_pairs(net):
        bias = source.get(f"{conv}.weight_bias")
        if bias is None or f"{norm_name}.weight" in source:
            continue
        extra[f"{norm_name}.weight"] = torch.ones_like(norm.weight)
        extra[f"{norm_name}.bias"] = bias.reshape(norm.bias.shape)
        extra[f"{norm_name}.running_mean"] = torch.zeros_like(norm.running_mean)
        extra[f"{norm_name}.running_var"] = torch.full_like(norm.running_var, 1.0 - norm.eps)
    return extra


def load_generator_weights(generator: torch.nn.Module, path: str) -> dict:
    """Copy every tensor of ``path`` whose name and shape match into ``generator``; return a report."""
    if not os.path.isfile(path):
        raise SystemExit(f"--init-from {path}: no such file")
    try:
        source = _onnx_tensors(path) if path.lower().endswith(".onnx") else _checkpoint_tensors(path)
    except SystemExit:
        raise
    except Exception as exc:  # a truncated or foreign file: say which, not a protobuf/pickle trace
        raise SystemExit(f"--init-from {path}: cannot read weights ({type(exc).__name__}: {exc})") from None
    source = {**source, **_unfold_batchnorm(generator, source)}
    report = _load_matching(generator, source)
    if not report["tensors"]:
        raise SystemExit(f"--init-from {path}: no tensor matches this generator by name and shape "
                         "(was it exported by training.export from a U-Net generator?)")
    return {"source": os.path.basename(path), **report}


def _load_matching(net, source) -> dict:
    own = net.state_dict()
    taken, widened, params = {}, 0, 0
    for k, v in source.items():
        if k not in own:
            continue
        if own[k].shape == v.shape:
            taken[k] = v
        elif (embedded := _embed(own[k], v)) is not None:
            taken[k] = embedded
            widened += 1
        else:
            continue
        if not k.endswith(("running_mean", "running_var", "num_batches_tracked")):
            params += v.numel()  # what came from the source: a widened tensor's new channels did not
    net.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in taken.items()}})
    total = sum(p.numel() for p in net.parameters())
    return {"tensors": len(taken), "of_tensors": len(own), "widened": widened, "parameters": params,
            "of_parameters": total}


def load_discriminator_weights(discriminator: torch.nn.Module, path: str):
    """The discriminator of a checkpoint or of the shipped trainable weights, when it has one of the same
    build; None otherwise (an ONNX model has none: the discriminator then starts fresh)."""
    if path.lower().endswith(".onnx"):
        return None
    source = _checkpoint_tensors(path, "discriminator")
    own = discriminator.state_dict()
    if not source or any(k not in source or source[k].shape != v.shape for k, v in own.items()):
        return None
    return _load_matching(discriminator, source)
