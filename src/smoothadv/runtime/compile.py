"""Compiled base classifiers (``torch.compile``) for certification, prediction, attacks and
training, with padding to fixed batch shapes and a fallback to eager.

Certification and training are nothing but forward (and backward) passes of the base model,
so a faster forward is the lever left. :func:`compile_for_inference` wraps a model so that:

- every forward batch is padded up to one of a few fixed sizes (``batch_size``,
  ``batch_size/2``, ``batch_size/4``, …, at least :data:`MIN_BUCKET`), so the varying batch
  sizes of certification (the n0 batch, the last batch of an input, packed batches) compile
  a handful of graphs once instead of one per size; the padded rows are zeros and their
  outputs are dropped (in eval mode every row is computed independently, so the kept rows are
  unaffected);
- a failure while compiling or running the compiled graph (no C++ compiler, an unsupported
  platform or operator) prints one line and the model continues eagerly: a run never fails
  because of compilation.

Compiled and eager forwards can differ in the last float bits (fused kernels sum in another
order); predictions and counts agree except where a logit margin is at that level.

``auto`` (the command line's default) compiles when the run is long enough to repay it:
:func:`should_compile` times one eager batch, estimates the eager run and the compile time, and
compiles when the eager run would take at least :data:`REPAY_FACTOR` times the compile time.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable

import torch
import torch.nn as nn

from ..smoothing.smooth import eval_mode

MIN_BUCKET = 64
REPAY_FACTOR = 3.0  # compile when the eager run is ≥ 3× the compile time (saves ≥ 1/3 at 1.5×)
SECONDS_PER_MODULE = 0.3  # measured compile cost per module on the 2-core CPU (see README)
COMPILE_CHOICES = ("auto", "on", "off")


def _say(message: str) -> None:
    print(f"smoothadv: {message}", file=sys.stderr)


def bucket_size(rows: int, batch_size: int) -> int:
    """The padded size for a batch of ``rows``: the smallest of batch_size, batch_size/2, …
    (≥ MIN_BUCKET) that holds it; batches larger than batch_size are not padded."""
    if rows >= batch_size:
        return rows
    size = batch_size
    while size // 2 >= max(rows, MIN_BUCKET):
        size //= 2
    return size


class CompiledClassifier(nn.Module):
    """A base classifier whose forward runs a ``torch.compile``d copy on padded batches, or the
    eager model after a compilation failure. State dict, parameters and devices are the wrapped
    model's; ``.model`` is the eager module.
    """

    def __init__(self, model: nn.Module, batch_size: int, backend: str = "inductor",
                 mode: str | None = None, compiler: Callable | None = None) -> None:
        super().__init__()
        self.model = model
        self.batch_size = int(batch_size)
        self.failed: str | None = None
        compile_fn = compiler or torch.compile
        try:
            self._compiled = compile_fn(model, backend=backend, mode=mode, dynamic=False)
        except Exception as err:  # noqa: BLE001 — any failure means: run eagerly
            self._fail(err)

    def _fail(self, err: BaseException) -> None:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        self.failed = f"{type(err).__name__}: {first}"[:200]
        self._compiled = None
        _say(f"torch.compile unavailable ({self.failed}); running the model eagerly")

    @property
    def compiled(self) -> bool:
        return self._compiled is not None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._compiled is None or self.model.training or torch.is_grad_enabled():
            # training-mode and gradient passes run the eager model (see compile_for_training)
            return self.model(x)
        rows = x.shape[0]
        size = bucket_size(rows, self.batch_size)
        if size > rows:
            pad = x.new_zeros((size - rows, *x.shape[1:]))
            x = torch.cat([x, pad]).contiguous(memory_format=_memory_format(x))
        try:
            out = self._compiled(x)
        except Exception as err:  # noqa: BLE001
            self._fail(err)
            return self.model(x[:rows])
        return out[:rows]


def _memory_format(x: torch.Tensor) -> torch.memory_format:
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    return torch.contiguous_format


def _quiet_cpu_toolchain_notice() -> None:
    """torch's extension builder logs "No CUDA runtime is found" whenever inductor compiles
    on a machine without CUDA: a notice about a toolchain we do not use, not a problem."""
    if not torch.cuda.is_available():
        logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)


def compile_for_inference(model: nn.Module, batch_size: int, **kwargs) -> CompiledClassifier:
    """The model wrapped for certify/predict (see the module docstring)."""
    _quiet_cpu_toolchain_notice()
    return CompiledClassifier(model, batch_size, **kwargs)


def compile_for_training(model: nn.Module, **kwargs) -> tuple[nn.Module, str | None]:
    """(module to call for training steps, failure or None): ``torch.compile(model)`` with
    shapes specialised (the last, smaller batch of an epoch compiles once more); eager on
    failure. The eager ``model`` keeps the parameters, so checkpoints and the optimizer see
    the same tensors."""
    _quiet_cpu_toolchain_notice()
    try:
        return torch.compile(model, dynamic=False, **kwargs), None
    except Exception as err:  # noqa: BLE001
        _say(f"torch.compile unavailable ({type(err).__name__}); training eagerly")
        return model, str(err)


def estimated_compile_seconds(model: nn.Module) -> float:
    """A rough compile-time estimate: :data:`SECONDS_PER_MODULE` per leaf module."""
    leaves = sum(1 for m in model.modules() if not list(m.children()))
    return SECONDS_PER_MODULE * leaves


def should_compile(choice: str, model: nn.Module, sample: torch.Tensor, batch_size: int,
                   total_samples: int, device: torch.device) -> tuple[bool, str]:
    """(compile?, why) for ``--compile auto|on|off``. ``auto`` times one eager batch of
    ``sample``'s shape, estimates the eager run (``total_samples`` noisy samples) and compiles
    when it would take ≥ REPAY_FACTOR × the estimated compile time."""
    if choice not in COMPILE_CHOICES:
        raise ValueError(f"compile choice must be one of {COMPILE_CHOICES}")
    if choice != "auto":
        return choice == "on", f"--compile {choice}"
    if total_samples <= 0:
        return False, "auto: nothing left to evaluate → eager"
    batch = torch.zeros((batch_size, *sample.shape), device=device, dtype=sample.dtype)
    with torch.inference_mode(), eval_mode(model):
        model(batch)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        times = []  # the fastest of three: one slow batch (a busy machine) overstates less
        for _ in range(3):
            t0 = time.perf_counter()
            model(batch).argmax(1)
            if device.type == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
        per_batch = min(times)
    eager = per_batch * math.ceil(total_samples / batch_size)
    cost = estimated_compile_seconds(model)
    decision = eager >= REPAY_FACTOR * cost
    return decision, (f"auto: eager run ≈ {eager:.0f} s, compile ≈ {cost:.0f} s → "
                      + ("compile" if decision else "eager"))

