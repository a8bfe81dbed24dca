"""Training methods: what one loaded batch turns into, as (inputs, targets) optimizer steps.

``gaussian`` is Cohen et al.'s Gaussian data augmentation; ``smoothadv`` first attacks the
soft smoothed classifier (Salman et al.) and trains on the attacked points with the *same*
noise draws the attack used. Both share one loop (:meth:`TrainingMethod.steps`); the
Gaussian method is that loop with no attack.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator

import torch

from .attacks import SmoothAdvAttack
from .errors import UserError, check_positive_int, check_sigma
from .registry import Registry
from .smoothing import Smooth

METHODS: Registry[Callable[..., TrainingMethod]] = Registry("method")


def list_methods() -> list[str]:
    return METHODS.names()


def create_method(name: str, **kwargs) -> TrainingMethod:
    """Build a registered training method (``gaussian`` or ``smoothadv``)."""
    return METHODS.get(name)(**kwargs)


def warmup_epsilon(epsilon: float, epoch: int, warmup: int) -> float:
    """ε at ``epoch`` (from 0) under a linear warm-up over ``warmup`` epochs:
    min(ε, (epoch + 1)·ε/warmup); ε itself when warmup is 0."""
    if warmup <= 0:
        return epsilon
    return min(epsilon, (epoch + 1) * epsilon / warmup)


class TrainingMethod:
    """Turns a loaded batch (x [B,C,H,W] in [0,1], y [B]) into optimizer steps.

    Args:
        sigma: training noise level σ.
        num_noise: m, noise draws per image (``--m-train``).
        multi_noise: train on all m noisy copies of each image (one optimizer step per
            chunk of B/m images) rather than on one copy (one step per batch).
        attack: a SmoothAdv attack whose ε is overridden by the warm-up, or None.
        epsilon, warmup: the attack radius and its warm-up length in epochs.
    """

    def __init__(self, *, sigma: float, num_noise: int = 1, multi_noise: bool = False,
                 attack: SmoothAdvAttack | None = None, epsilon: float = 0.0,
                 warmup: int = 0) -> None:
        self.sigma = check_sigma(sigma)
        self.num_noise = check_positive_int(num_noise, "m_train")
        self.multi_noise = bool(multi_noise)
        self.attack = attack
        self.epsilon = float(epsilon)
        self.warmup = int(warmup)

    def epsilon_at(self, epoch: int) -> float:
        return 0.0 if self.attack is None else warmup_epsilon(self.epsilon, epoch, self.warmup)

    def steps(self, smooth: Smooth, x: torch.Tensor, y: torch.Tensor, epoch: int,
              generator: torch.Generator | None = None,
              ) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield (noisy inputs, targets, points before noise) for each optimizer step.

        The batch is split into m chunks of ⌈B/m⌉ images; each image is repeated with its
        m draws δ, so the attack's forward passes hold B samples. ``smooth`` wraps the bare
        model (not the DDP wrapper), with the training σ; it is attacked in eval mode with
        frozen weights (the attack restores both); the caller trains in train mode on x′ + δ
        with the same δ. Noise is added in float32.
        """
        m = self.num_noise
        eps = self.epsilon_at(epoch)
        attacking = self.attack is not None and eps > 0
        draws = m if attacking or self.multi_noise else 1  # only the attack needs unused draws
        chunk = math.ceil(x.shape[0] / m)
        kept: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]] = []
        for xc, yc in zip(x.split(chunk), y.split(chunk)):
            noise = smooth.sample_noise(xc, draws, generator)  # [c, draws, C, H, W]
            if attacking:
                xc_adv = self.attack(smooth, xc, yc, noise=noise, generator=generator,
                                     epsilon=eps)
            else:
                xc_adv = xc
            if self.multi_noise:
                noisy = (xc_adv.unsqueeze(1) + noise).flatten(0, 1)
                yield noisy, yc.repeat_interleave(m), xc_adv
            else:
                kept.append((xc_adv + noise[:, 0], yc, xc_adv))
        if kept:
            yield tuple(torch.cat(parts) for parts in zip(*kept))  # type: ignore[misc]


@METHODS.register("gaussian")
def gaussian(*, sigma: float, num_noise: int = 1, multi_noise: bool = False,
             **_: object) -> TrainingMethod:
    """Gaussian data augmentation (Cohen et al.): train f on x + δ."""
    return TrainingMethod(sigma=sigma, num_noise=num_noise, multi_noise=multi_noise)


@METHODS.register("smoothadv")
def smoothadv(*, sigma: float, attack: SmoothAdvAttack, epsilon: float, num_noise: int = 1,
              multi_noise: bool = False, warmup: int = 0, **_: object) -> TrainingMethod:
    """SmoothAdv (Salman et al.): train f on x′ + δ, x′ from attacking the soft classifier."""
    if attack is None:
        raise UserError("method smoothadv needs an attack")
    return TrainingMethod(sigma=sigma, num_noise=num_noise, multi_noise=multi_noise,
                          attack=attack, epsilon=epsilon, warmup=warmup)
