"""What every training method shares: the interface, mini-batch splitting, frozen eval-mode
passes, and the soft-classifier pieces (mean softmax, KL, entropy, normalized steps).

The interface (one optimizer step = one call)::

    loss, logs = method.loss(model, x, y, noise, epoch=0, **draws)

- ``model``: in train mode with trainable parameters; it comes back so. Passes the method's
  authors run in eval mode with frozen weights (attacks) go through :func:`.steps.frozen_eval`, on
  ``attack_model`` when given (the bare or compiled model under DDP), else on ``model``.
- ``x`` [B,C,H,W] in [0,1], ``y`` [B] (int64).
- ``noise`` **standard normal** [B, m, C, H, W] (input i, draw j), scaled by σ inside; m is
  :meth:`TrainingMethod.draws_at` (epoch).
- ``draws``: every other random quantity of the step, by name (``mix_weights`` [B],
  ``accepted`` [B], ``soft_targets`` [B, K]); drawn from ``generator`` (the run's default
  generator when None) when absent.
- returns the scalar loss to back-propagate and ``logs``: the terms the authors log (floats)
  plus ``correct``/``count``, the training accuracy's numerator and denominator.

Float64 models and inputs work unchanged (nothing here fixes a dtype).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..errors import UserError, check_positive_int, check_sigma
from ..smoothing.smooth import soft_classifier  # noqa: F401  (G, for the methods: p̄)

SPLITS = ("none", "ceil", "floor")


def warmup_epsilon(epsilon: float, epoch: int, warmup: int) -> float:
    """ε at ``epoch`` (from 0) under a linear warm-up over ``warmup`` epochs:
    min(ε, (epoch + 1)·ε/warmup); ε itself when warmup is 0."""
    if warmup <= 0:
        return epsilon
    return min(epsilon, (epoch + 1) * epsilon / warmup)


def by_sigma(table: dict[float, float], sigma: float, name: str, option: str) -> float:
    """The authors' setting of a hyper-parameter at σ (their CIFAR-10 table); a σ outside the
    table needs the value given explicitly."""
    for s, v in table.items():
        if math.isclose(s, sigma, rel_tol=1e-9):
            return v
    known = ", ".join(f"{v:g} at σ = {s:g}" for s, v in table.items())
    raise UserError(f"{name} has no default at σ = {sigma:g} (the authors used {known}): "
                    f"give {option}")


def kl_to(target: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(target ‖ softmax(logits)) summed over classes, as ``F.kl_div(log_softmax(z), t)``
    computes it (0·log 0 = 0): target [..., K], logits [..., K] → [...]."""
    return (torch.xlogy(target, target) - target * logits.log_softmax(dim=-1)).sum(dim=-1)


def entropy(p: torch.Tensor) -> torch.Tensor:
    """H(p) = −Σ_c p_c log max(p_c, 1e−20): [..., K] → [...]."""
    return -(p * p.clamp_min(1e-20).log()).sum(dim=-1)


class TrainingMethod:
    """The base of every training method: σ, m, how a loaded batch splits into optimizer
    steps, and the loss of one step (see the module docstring).

    ``split``: ``none`` (the loaded batch is one step), ``ceil`` (⌈B/m⌉-image steps: SmoothAdv's
    multi-noise training), ``floor`` (m steps of ⌊B/m⌋ images, the rest dropped: the CAT-RS,
    consistency and SmoothMix code).
    """

    name = ""
    split = "none"
    attack = None  # a SmoothAdv attack, for the trainer's per-epoch attacked accuracy
    own_input_gradients = False  # the loss itself differentiates with respect to the input

    @property
    def input_gradients(self) -> bool:
        """Whether a training step takes gradients with respect to the input (an attack or an
        adversarial step): fp16 autocast would let them underflow without loss scaling."""
        return self.own_input_gradients or self.attack is not None

    def __init__(self, *, sigma: float, num_noise: int = 1) -> None:
        self.sigma = check_sigma(sigma)
        self.num_noise = check_positive_int(num_noise, "--num-noise")

    # ----------------------------------------------------------------- step structure

    def epsilon_at(self, epoch: int) -> float:
        """The attack radius at ``epoch`` (0 for methods without one)."""
        return 0.0

    def draws_at(self, epoch: int) -> int:
        """m, the noise draws per image the step needs at ``epoch``."""
        return self.num_noise

    def minibatches(self, *tensors: torch.Tensor) -> Iterator[tuple[torch.Tensor, ...]]:
        """Split a loaded batch (tensors sharing their first dimension B) into the method's
        optimizer steps, in order."""
        b = tensors[0].shape[0]
        if self.split == "none" or self.num_noise == 1:
            yield tensors
            return
        size = math.ceil(b / self.num_noise) if self.split == "ceil" else b // self.num_noise
        if size == 0:
            raise UserError(f"a batch of {b} cannot be split into {self.num_noise} "
                            "mini-batches: raise --batch")
        count = math.ceil(b / size) if self.split == "ceil" else self.num_noise
        for i in range(count):
            yield tuple(t[i * size:(i + 1) * size] for t in tensors)

    def loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, noise: torch.Tensor,
             epoch: int = 0, *, attack_model: nn.Module | None = None,
             generator: torch.Generator | None = None,
             **draws: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        raise NotImplementedError

    def needs(self) -> tuple[str, ...]:
        """Per-image data the trainer must supply as draws (e.g. ``soft_targets``)."""
        return ()

    def check_noise(self, x: torch.Tensor, noise: torch.Tensor, epoch: int) -> None:
        want = (x.shape[0], self.draws_at(epoch), *x.shape[1:])
        if tuple(noise.shape) != want:
            raise ValueError(f"{self.name}: noise of shape {tuple(noise.shape)}, expected {want}")

    def hparams(self) -> dict[str, Any]:
        """The hyper-parameters, for ``repr`` and the run's config."""
        return {k: v for k, v in vars(self).items() if not k.startswith("_")
                and isinstance(v, (int, float, str, bool, type(None)))}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.hparams().items())
        return f"{type(self).__name__}({args})"


def accuracy_logs(logits: torch.Tensor, targets: torch.Tensor) -> dict[str, Any]:
    """``correct`` (a 0-dim tensor on the logits' device: reading it is left to whoever logs,
    once per interval) and ``count`` (an int) of logits [N, K] against targets [N]."""
    return {"correct": (logits.argmax(-1) == targets).sum().detach(), "count": targets.numel()}


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor, **kw) -> torch.Tensor:
    """Cross-entropy in at least float32 (bfloat16 logits under autocast are upcast)."""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return F.cross_entropy(logits, targets, **kw)
