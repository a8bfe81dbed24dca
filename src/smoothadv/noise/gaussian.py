"""The float Gaussian noise source: δ = σ·N(0, I), added to the float input."""

from __future__ import annotations

import torch

from .base import FloatNoise
from .radii import GaussianRadii


class GaussianNoise(GaussianRadii, FloatNoise):
    """The standard noise model: δ = σ·N(0, I) in float, added to the float input.

    (Float arithmetic makes this only approximately the Gaussian of the theorem; see
    :class:`~smoothadv.noise.rounded.RoundedGaussian` for the sound alternative.)
    """

    kind = "gaussian"

    def __init__(self, sigma: float) -> None:
        self.sigma = sigma

    def __repr__(self) -> str:
        return f"GaussianNoise(sigma={self.sigma})"

    def draw(self, shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
        """Standard normal draws (scaled by σ in :meth:`apply`)."""
        return torch.randn(shape, generator=generator, device=device)

    def apply(self, clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        """x + σ·noise in one pass; inputs are never clipped after adding noise."""
        return torch.add(clean, noise, alpha=self.sigma)

    def training_noise(self, x: torch.Tensor, num: int,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """Standard-normal draws [B, num, C, H, W] (methods scale them by σ)."""
        return torch.randn((x.shape[0], num, *x.shape[1:]), generator=generator,
                           device=x.device, dtype=x.dtype)
