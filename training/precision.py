"""CPU arithmetic for training: bf16 autocast where it pays, float32 elsewhere.

Measured on the machines this project runs on (docs/training.md): an Intel with AVX-512 BF16 trains 1.9x
faster under ``torch.autocast("cpu", torch.bfloat16)``; an AMD EPYC without it ~30x *slower* (oneDNN falls
back to emulation). So never choose blindly: ask oneDNN first, then time one step of each.
"""

import sys

import torch


def native_bf16() -> bool:
    """True when oneDNN has native bf16 kernels on this CPU (AVX-512 BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def choose_cpu_precision(requested: str, seconds_per_step) -> str:
    """"fp32" or "bf16". ``seconds_per_step(dtype)`` times one training step (dtype None = float32)."""
    if requested != "auto":
        if requested == "bf16" and not native_bf16():
            print("warning: --precision bf16 on a CPU without native bf16: expect steps ~30x slower", file=sys.stderr)
        return requested
    if not native_bf16():
        print("precision fp32: this CPU has no native bf16 (oneDNN)")
        return "fp32"
    fp32, bf16 = seconds_per_step(None), seconds_per_step(torch.bfloat16)
    choice = "bf16" if bf16 < fp32 else "fp32"
    print(f"precision {choice}: one step {fp32:.2f} s in fp32, {bf16:.2f} s in bf16 autocast")
    return choice
