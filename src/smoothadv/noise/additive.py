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

import torch

from .base import FloatNoise
from .radii import LaplaceRadii, UniformRadii


class _Additive(FloatNoise):
    """x + scale·draw, with ``unit_scale`` the family's scale (recorded as ``lambda``)."""

    kind = ""
    sigma: float

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

    @property
    def unit_scale(self) -> float:
        raise NotImplementedError


class UniformNoise(UniformRadii, _Additive):
    """Uniform noise on [−λ, λ]^d, λ = √3σ (Yang et al. 2020's ℓ1-optimal family)."""

    kind = "uniform"

    def __init__(self, sigma: float) -> None:
        self.sigma = float(sigma)
        self.lam = math.sqrt(3.0) * self.sigma

    def __repr__(self) -> str:
        return f"UniformNoise(sigma={self.sigma}, lambda={self.lam:.6g})"

    @property
    def unit_scale(self) -> float:
        return self.lam

    def draw(self, shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
        """U[−1, 1) draws (scaled by λ in :meth:`apply`)."""
        return torch.rand(shape, generator=generator, device=device).mul_(2).sub_(1)


class LaplaceNoise(LaplaceRadii, _Additive):
    """Laplace noise, density ∝ exp(−‖z‖₁/b), b = σ/√2 (Teng et al. 2020)."""

    kind = "laplace"

    def __init__(self, sigma: float) -> None:
        self.sigma = float(sigma)
        self.scale = self.sigma / math.sqrt(2.0)

    def __repr__(self) -> str:
        return f"LaplaceNoise(sigma={self.sigma}, b={self.scale:.6g})"

    @property
    def unit_scale(self) -> float:
        return self.scale

    def draw(self, shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
        """Standard Laplace draws (scale 1; scaled by b in :meth:`apply`), by inversion:
        u ~ U(−½, ½), z = −sign(u)·log(1 − 2|u|)."""
        u = torch.rand(shape, generator=generator, device=device).sub_(0.5)
        u = u.clamp_(-0.5 + 2.0**-25, 0.5)  # u = −½ would give an infinite draw
        return -torch.sign(u) * torch.log1p(-2 * u.abs())
