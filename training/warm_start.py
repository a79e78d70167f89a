"""Warm start: generator weights from a checkpoint or from a released ONNX model.

So that training adds up across sessions, and so that a user can fine-tune the bundled model on their own
region. Tensors are matched by name and shape: an ONNX file exported by ``training.export`` keeps the
PyTorch parameter and buffer names as its initializer names. What does not match (another architecture's
decoder, say) keeps its fresh initialisation, and the report says how much was taken.
"""

import os

import torch


def _onnx_tensors(path) -> dict:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(path)
    tensors = {}
    for init in model.graph.initializer:
        name = init.name[: -len("_fp16")] if init.name.endswith("_fp16") else init.name  # export --fp16
        tensors[name] = torch.from_numpy(numpy_helper.to_array(init).astype("float32", copy=False).copy())
    return tensors


def _checkpoint_tensors(path) -> dict:
    from . import checkpoint as ckpt

    state = ckpt.load(path)
    if "generator" not in state:
        raise SystemExit(f"--init-from {path}: not a training checkpoint (no generator weights)")
    return state["generator"]


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
    own = generator.state_dict()
    taken = {k: v for k, v in source.items() if k in own and own[k].shape == v.shape}
    if not taken:
        raise SystemExit(f"--init-from {path}: no tensor matches this generator by name and shape "
                         "(was it exported by training.export from a U-Net generator?)")
    generator.load_state_dict({**own, **{k: v.to(own[k].dtype) for k, v in taken.items()}})
    params = sum(own[k].numel() for k in taken if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    total = sum(p.numel() for p in generator.parameters())
    return {"source": os.path.basename(path), "tensors": len(taken), "of_tensors": len(own),
            "parameters": params, "of_parameters": total}
