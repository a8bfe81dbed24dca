"""Gaussian data augmentation (Cohen et al. 2019) and SmoothAdv (Salman et al. 2019): one
method, SmoothAdv being Gaussian augmentation on attacked points.

SmoothAdv first attacks the soft smoothed classifier (the model frozen in eval mode) with the
step's m draws and then trains on x′ + δ with the **same** draws: all m copies of each image
with ``multi_noise`` (one optimizer step per ⌈B/m⌉ images), one copy otherwise (one step per
loaded batch, attacked in ⌈B/m⌉-image pieces so that each attack forward holds B samples).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from ..attacks import SmoothAdvAttack
from ..errors import UserError
from ..smoothing import Smooth
from . import register
from .base import TrainingMethod, accuracy_logs, cross_entropy, warmup_epsilon


class NoiseAugmentation(TrainingMethod):
    """Train f on x + δ (``attack`` None) or on x′ + δ, x′ from ``attack`` at the warmed-up ε.

    Args:
        sigma: training noise level σ.
        num_noise: m draws per image (``--m-train``).
        multi_noise: train on all m noisy copies (one step per ⌈B/m⌉ images).
        attack: a SmoothAdv attack (its ε is overridden by the warm-up) or None.
        epsilon, warmup: the attack radius (ℓ2, pixels) and its warm-up in epochs.
    """

    def __init__(self, *, sigma: float, num_noise: int = 1, multi_noise: bool = False,
                 attack: SmoothAdvAttack | None = None, epsilon: float = 0.0,
                 warmup: int = 0) -> None:
        super().__init__(sigma=sigma, num_noise=num_noise)
        self.multi_noise = bool(multi_noise)
        self.attack = attack
        self.epsilon = float(epsilon)
        self.warmup = int(warmup)
        self.name = "gaussian" if attack is None else "smoothadv"
        self.split = "ceil" if self.multi_noise else "none"

    def epsilon_at(self, epoch: int) -> float:
        return 0.0 if self.attack is None else warmup_epsilon(self.epsilon, epoch, self.warmup)

    def _attacking(self, epoch: int) -> bool:
        return self.attack is not None and self.epsilon_at(epoch) > 0

    def draws_at(self, epoch: int) -> int:
        # only the attack needs draws that are not trained on
        return self.num_noise if self._attacking(epoch) or self.multi_noise else 1

    def loss(self, model, x, y, noise, epoch=0, *, attack_model=None, generator=None,
             **draws):
        self.check_noise(x, noise, epoch)
        delta = noise.mul(self.sigma)
        x_adv = x
        if self._attacking(epoch):
            x_adv = self._attacked(attack_model or model, x, y, delta, epoch, generator)
        if self.multi_noise:
            noisy = (x_adv.unsqueeze(1) + delta).flatten(0, 1)
            targets = y.repeat_interleave(delta.shape[1])
        else:
            noisy, targets = x_adv + delta[:, 0], y
        logits = model(noisy)
        loss = cross_entropy(logits, targets)
        return loss, {"loss": loss.item(), **accuracy_logs(logits, targets)}

    def _attacked(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  delta: torch.Tensor, epoch: int, generator) -> torch.Tensor:
        """x′ in pieces of ⌈B/m⌉ images (each attack forward then holds about B samples)."""
        smooth = Smooth(getattr(model, "module", model), 1, self.sigma)
        eps = self.epsilon_at(epoch)
        piece = x.shape[0] if self.multi_noise else math.ceil(x.shape[0] / self.num_noise)
        parts = [self.attack(smooth, xc, yc, noise=dc, generator=generator, epsilon=eps)
                 for xc, yc, dc in zip(x.split(piece), y.split(piece), delta.split(piece))]
        return torch.cat(parts)


@register("gaussian")
def gaussian(*, sigma: float, num_noise: int = 1, multi_noise: bool = False,
             **_: object) -> NoiseAugmentation:
    """Gaussian data augmentation (Cohen et al.): train f on x + δ."""
    return NoiseAugmentation(sigma=sigma, num_noise=num_noise, multi_noise=multi_noise)


@register("smoothadv")
def smoothadv(*, sigma: float, attack: SmoothAdvAttack | None = None, epsilon: float = 0.0,
              num_noise: int = 1, multi_noise: bool = False, warmup: int = 0,
              **_: object) -> NoiseAugmentation:
    """SmoothAdv (Salman et al.): train f on x′ + δ, x′ from attacking the soft classifier."""
    if attack is None:
        raise UserError("method smoothadv needs an attack")
    return NoiseAugmentation(sigma=sigma, num_noise=num_noise, multi_noise=multi_noise,
                             attack=attack, epsilon=epsilon, warmup=warmup)


class Clean(TrainingMethod):
    """Standard training without noise (the classifier denoised smoothing starts from)."""

    name = "clean"

    def loss(self, model, x, y, noise, epoch=0, *, attack_model=None, generator=None,
             **draws):
        logits = model(x)
        loss = cross_entropy(logits, y)
        return loss, {"loss": loss.item(), **accuracy_logs(logits, y)}


@register("clean")
def clean(*, sigma: float, **_: object) -> Clean:
    """Standard training on clean inputs (σ is only recorded)."""
    return Clean(sigma=sigma, num_noise=1)
