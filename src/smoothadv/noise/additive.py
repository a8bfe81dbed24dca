"""Uniform and Laplace noise sources for ℓ1 certificates (and their training draws).

Both are parametrised by σ, the per-coordinate standard deviation, as Yang et al. (2020) do:
uniform on [−λ, λ] with λ = √3·σ, Laplace with scale b = σ/√2. Noise is drawn in float on the
input's device from the input's own generator and added to the float input, unclipped, like
the float Gaussian source — and, like it, only approximately the distribution of the theorem
(24-bit uniform draws; Laplace tails cut at about 17b): there is no sound variant of these
families here (``--sound`` is Gaussian only).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .base import FloatNoise
from .radii import LaplaceRadii, UniformRadii


class _Additive(FloatNoise):
    """x + scale·draw. ``SCALE`` says what the family's scale is: (the attribute that holds
    it, its name in repr, the function of σ that gives it): uniform's λ, Laplace's b, recorded
    as ``lambda``."""

    kind = ""
    SCALE: tuple[str, str, Callable[[float], float]] = ("scale", "scale", float)
    sigma: float

    def __init__(self, sigma: float) -> None:
        self.sigma = float(sigma)
        attribute, _, scale_of = self.SCALE
        setattr(self, attribute, scale_of(self.sigma))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(sigma={self.sigma}, "
                f"{self.SCALE[1]}={self.unit_scale:.6g})")

    @property
    def unit_scale(self) -> float:
        return getattr(self, self.SCALE[0])

    def facts(self) -> dict:
        return {"lambda": self.unit_scale}

    def apply(self, clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x + scale·noise in one pass."""
        return torch.add(clean, noise, alpha=self.unit_scale)

    def training_noise(self, x: torch.Tensor, num: int,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Draws ε [B, num, C, H, W] with x + σ·ε the noisy inputs (what training methods
        take: they scale by σ themselves)."""
        raw = self.draw((x.shape[0], num, *x.shape[1:]), generator, x.device).to(x.dtype)
        return raw.mul_(self.unit_scale / self.sigma)


class UniformNoise(UniformRadii, _Additive):
    """Uniform noise on [−λ, λ]^d, λ = √3σ (Yang et al. 2020's ℓ1-optimal family)."""

    kind = "uniform"
    SCALE = ("lam", "lambda", lambda sigma: math.sqrt(3.0) * sigma)

    def draw(self, shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
        """U[−1, 1) draws (scaled by λ in :meth:`apply`)."""
        return torch.rand(shape, generator=generator, device=device).mul_(2).sub_(1)


class LaplaceNoise(LaplaceRadii, _Additive):
    """Laplace noise, density ∝ exp(−‖z‖₁/b), b = σ/√2 (Teng et al. 2020)."""

    kind = "laplace"
    SCALE = ("scale", "b", lambda sigma: sigma / math.sqrt(2.0))

    def draw(self, shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
        """Standard Laplace draws (scale 1; scaled by b in :meth:`apply`), by inversion:
        u ~ U(−½, ½), z = −sign(u)·log(1 − 2|u|)."""
        u = torch.rand(shape, generator=generator, device=device).sub_(0.5)
        u = u.clamp_(-0.5 + 2.0**-25, 0.5)  # u = −½ would give an infinite draw
        return -torch.sign(u) * torch.log1p(-2 * u.abs())
