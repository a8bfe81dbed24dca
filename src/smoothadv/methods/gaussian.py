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

from ..attacks.smoothadv import (
    DDN_DECISIONS,
    DDN_TRAIN_GAMMA,
    ESTIMATORS,
    SmoothAdvAttack,
    attack_from_options,
)
from ..errors import check_epsilon, check_positive_int
from .base import TrainingMethod, accuracy_logs, cross_entropy, warmup_epsilon
from .registry import Option, register_method


class NoiseAugmentation(TrainingMethod):
    """Train f on x + δ (``attack`` None) or on x′ + δ, x′ from ``attack`` at the warmed-up ε.

    Args:
        sigma: training noise level σ.
        num_noise: m draws per image (``--m-train``).
        multi_noise: train on all m noisy copies (one step per ⌈B/m⌉ images).
        attack: a SmoothAdv attack (its ε is overridden by the warm-up) or None.
        epsilon, warmup: the attack radius (ℓ2, pixels) and its warm-up in epochs.
    """

    def __init__(self, *, sigma: float, num_noise: int, multi_noise: bool,
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
        return loss, {"loss": loss.detach(), **accuracy_logs(logits, targets)}

    def _attacked(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                  delta: torch.Tensor, epoch: int, generator) -> torch.Tensor:
        """x′ in pieces of ⌈B/m⌉ images (each attack forward then holds about B samples)."""
        base = getattr(model, "module", model)
        eps = self.epsilon_at(epoch)
        piece = x.shape[0] if self.multi_noise else math.ceil(x.shape[0] / self.num_noise)
        parts = [self.attack(base, xc, yc, noise=dc, generator=generator, epsilon=eps)
                 for xc, yc, dc in zip(x.split(piece), y.split(piece), delta.split(piece))]
        return torch.cat(parts)


M_HELP = "m, noise draws per image"
MULTI_HELP = "train on all m noisy copies of each image (one step per ⌈B/m⌉ images)"
EPS_HELP = ("the attack's l2 radius ε in pixel space (images in [0,1]); the paper's code used "
            "units of 1/256: its eps_64 is 0.25, eps_127 0.496, eps_255 0.996, eps_512 2.0")

GAUSSIAN_OPTIONS = (
    Option("num_noise", int, 1, M_HELP, flag="--m-train", at_least=1),
    Option("multi_noise", bool, False, MULTI_HELP),
)
SMOOTHADV_OPTIONS = (
    Option("attack", str, "pgd", "SmoothAdv-PGD or SmoothAdv-DDN", choices=("pgd", "ddn")),
    Option("epsilon", float, 0.25, EPS_HELP, at_least=0),
    Option("steps", int, 10, "attack steps T", at_least=1),
    Option("num_noise", int, 1, M_HELP, flag="--m-train", at_least=1),
    Option("multi_noise", bool, False, MULTI_HELP),
    Option("warmup", int, 0, "grow ε linearly from 0 over the first K epochs",
           at_least=0),
    Option("estimator", str, "grad", "gradient of the soft loss: grad, no_grad (the paper's "
           "gradient-free estimator) or no_grad_cv (a departure: with a control variate)",
           choices=ESTIMATORS),
    Option("ddn_gamma", float, DDN_TRAIN_GAMMA, "DDN norm update factor γ (the paper's "
           "training setting)", above=0, below=1),
    Option("ddn_init_norm", float, None, "DDN initial norm budget", default_text="the epoch's "
           "ε, as the paper's training loop sets it", above=0),
    Option("ddn_decision", str, "vote", "DDN's 'already adversarial' test: vote (the paper) "
           "or soft (a departure: argmax of G)", choices=DDN_DECISIONS),
    Option("ddn_strict_epsilon", bool, False, "a departure: DDN never leaves the ε-ball"),
)


@register_method("gaussian", options=GAUSSIAN_OPTIONS,
                 summary="noise augmentation: Gaussian (Cohen et al. 2019) or the run's --noise",
                 noises=("gaussian", "uniform", "laplace", "splitting"))
def gaussian(*, sigma: float, num_noise: int, multi_noise: bool) -> NoiseAugmentation:
    """Gaussian data augmentation (Cohen et al.): train f on x + δ."""
    return NoiseAugmentation(sigma=sigma, num_noise=num_noise, multi_noise=multi_noise)


@register_method("smoothadv", options=SMOOTHADV_OPTIONS,
                 summary="SmoothAdv: adversarial training of the smoothed classifier "
                         "(Salman et al. 2019)")
def smoothadv(*, sigma: float, attack: str, epsilon: float, steps: int, num_noise: int,
              multi_noise: bool, warmup: int, estimator: str, ddn_gamma: float,
              ddn_init_norm: float | None, ddn_decision: str,
              ddn_strict_epsilon: bool) -> NoiseAugmentation:
    """SmoothAdv (Salman et al.): train f on x′ + δ, x′ from attacking the soft classifier."""
    check_epsilon(epsilon)
    check_positive_int(steps, "--steps")
    built = attack_from_options(attack, epsilon=epsilon, steps=steps,
                                num_noise_vectors=num_noise, estimator=estimator,
                                ddn_gamma=ddn_gamma, ddn_init_norm=ddn_init_norm,
                                ddn_decision=ddn_decision, strict_epsilon=ddn_strict_epsilon)
    return NoiseAugmentation(sigma=sigma, num_noise=num_noise, multi_noise=multi_noise,
                             attack=built, epsilon=epsilon, warmup=warmup)


class Clean(TrainingMethod):
    """Standard training without noise (the classifier denoised smoothing starts from)."""

    name = "clean"

    def loss(self, model, x, y, noise, epoch=0, *, attack_model=None, generator=None,
             **draws):
        logits = model(x)
        loss = cross_entropy(logits, y)
        return loss, {"loss": loss.detach(), **accuracy_logs(logits, y)}


@register_method("clean", summary="standard training without noise (the classifier denoised "
                 "smoothing starts from)", noises=("gaussian", "uniform", "laplace", "splitting"))
def clean(*, sigma: float) -> Clean:
    """Standard training on clean inputs (σ is only recorded)."""
    return Clean(sigma=sigma, num_noise=1)
