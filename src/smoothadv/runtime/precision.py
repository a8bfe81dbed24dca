"""Arithmetic precision of the base classifier: fp32 (the authors' code, the default), TF32
matrix products on CUDA, bf16 and fp16 autocast (departures, ``--precision``).

**What a certificate means under a lower precision.** Randomized smoothing certifies the base
classifier f that is evaluated: Cohen et al.'s theorem needs nothing of f but that it is a fixed
function of its input. :class:`Autocast` evaluates f under ``torch.autocast`` (matrix products
and convolutions in bf16/fp16, reductions and the logits in fp32), which is another fixed
function f_bf16 as long as a row's logits do not depend on the other rows of its batch, on the
batch size or on padding (packing inputs into shared batches and compile's padded batches rely
on it). That property is tested on the architectures shipped (the rows of a batch, alone, split
into other batch sizes and beside other rows give bit-identical logits); under it a bf16
certificate is exactly as valid as an fp32 one — **for f_bf16**, which can differ from f_fp32 on
inputs near its decision boundary. The record's config names the precision, and ``compare``
refuses to mix precisions unless told to.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn as nn

from ..errors import UserError

PRECISIONS = ("fp32", "tf32", "bf16", "fp16")
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def check_precision(precision: str, device: torch.device) -> str | None:
    """Refuse what cannot run (fp16 autocast on a CPU); return a one-line notice where the
    precision runs but not fast (bf16 on a CPU without bf16 instructions), else None."""
    if precision not in PRECISIONS:
        raise UserError(f"unknown precision {precision!r}; choose {', '.join(PRECISIONS)}")
    if precision == "tf32" and device.type != "cuda":
        raise UserError("--precision tf32 runs on CUDA only (TF32 is an NVIDIA tensor-core "
                        "format): use fp32 or bf16 on the CPU")
    if precision == "fp16" and device.type != "cuda":
        raise UserError("--precision fp16 runs on CUDA only (CPU autocast is bf16): use "
                        "--precision bf16 on the CPU")
    if precision == "bf16" and device.type == "cpu" and not native_bf16_cpu():
        return ("this CPU has no bf16 instructions (AVX-512 BF16 / AMX): --precision bf16 runs, "
                "emulated, and is likely slower than fp32")
    return None


def native_bf16_cpu() -> bool:
    """Whether this CPU has bf16 dot-product instructions (AVX-512 BF16 or AMX): read from
    /proc/cpuinfo's flags where it exists (oneDNN also calls plain AVX-512 "bf16 supported",
    emulating the products, which measured 2.8× slower than fp32), else oneDNN's own answer."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):  # pragma: no cover - older or exotic builds
        return False


def autocast(precision: str, device_type: str) -> contextlib.AbstractContextManager:
    """The autocast context of ``precision`` on ``device_type`` (a no-op for fp32 and tf32,
    whose matrix products :func:`smoothadv.runtime.backends.configure` switches to TF32)."""
    if precision not in DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device_type, dtype=DTYPES[precision])


class Autocast(nn.Module):
    """``module`` evaluated under autocast at ``precision``; logits come back in fp32
    ([B, K] in, as ``module`` takes; [B, K] fp32 out). Gradients flow through (attacks)."""

    def __init__(self, module: nn.Module, precision: str) -> None:
        super().__init__()
        if precision not in DTYPES:
            raise ValueError(f"Autocast takes bf16 or fp16, not {precision!r}")
        self.module = module
        self.precision = precision

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=DTYPES[self.precision]):
            out = self.module(x)
        return out.float()


def at_precision(module: nn.Module, precision: str) -> nn.Module:
    """``module`` itself at fp32 and tf32, else wrapped in :class:`Autocast`."""
    return Autocast(module, precision) if precision in DTYPES else module
