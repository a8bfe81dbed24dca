"""Splitting noise and the deterministic ℓ1 certificate (Levine & Feizi, ICML 2021, "Improved,
Deterministic Smoothing for L1 Certified Robustness").

**Splitting.** Each coordinate x_i in [0,1] is replaced by the centre of its bin: the bins have
width 2λ and are offset by s_i in [0, 2λ), so x_i lies in (s_i + 2λ(k − 1), s_i + 2λk] with
k = ⌈(x_i − s_i)/2λ⌉, and the model sees the midpoint of that bin intersected with [0,1]. With
s_i ~ U[0, 2λ) independent, x_i and x_i + δ_i fall into different bins with probability
min(1, |δ_i|/2λ) — the same total-variation bound as uniform noise, so the uniform radii hold
(:mod:`.radii`), and the box-constrained one too.

**Deterministic.** With one offset s shared by every coordinate, each coordinate still changes
bin with probability |δ_i|/2λ, and a union bound gives P(any bin changes) ≤ ‖δ‖₁/2λ. For 8-bit
inputs (x_i = a_i/255) and 2λ = K/255, only the K offsets s_j = (j + ½)/255, j = 0 … K − 1 matter
(each bin boundary then falls halfway between grid points, and between a/255 and b/255 there
are exactly |a − b| boundaries, one for each of |a − b| of the K offsets). Evaluating f once per
offset gives the smoothed classifier's probabilities **exactly**: p_c = n_c/K, no sampling and
no α. A perturbation with ‖δ‖₁ = e (on the grid) changes the bin pattern for at most 255·e of
the K offsets, each moving at most one vote from the top class A to another class B, so the
prediction cannot change while 255·e < (n_A − n_B)/2: R = (n_A − n_B)/510 = λ(p_A − p_B).
The certificate is for perturbed images on the 8-bit grid, as the inputs are (``--sound``'s
grid check applies). K = 2λ·255 forward passes per input.

λ is √3·σ (σ the per-coordinate standard deviation of the uniform offsets' displacement, as for
uniform noise) rounded to the nearest multiple of 1/510 (at least 1/510), so that K is an
integer; the value used is recorded.
"""

from __future__ import annotations

import math

import torch

from ..errors import UserError
from .base import FloatNoise
from .radii import UniformRadii
from .rounded import GRID_TOLERANCE, LEVELS


def splitting_lambda(sigma: float) -> float:
    """λ = √3σ rounded to a multiple of 1/510 (at least one step)."""
    return max(1, round(math.sqrt(3.0) * sigma * 2 * LEVELS)) / (2 * LEVELS)


def bin_centres(x: torch.Tensor, offsets: torch.Tensor, lam: float) -> torch.Tensor:
    """The splitting transform: each x_i replaced by the midpoint of its bin of width 2λ offset
    by ``offsets`` (broadcast against x), clipped to [0,1]."""
    width = 2 * lam
    k = torch.ceil((x - offsets) / width)
    hi = offsets + width * k
    lo = hi - width
    return (lo.clamp(min=0.0) + hi.clamp(max=1.0)) / 2


class SplittingNoise(UniformRadii, FloatNoise):
    """Levine & Feizi's splitting noise: random per-coordinate offsets s_i ~ U[0, 2λ)."""

    kind = "splitting"

    def __init__(self, sigma: float) -> None:
        self.sigma = float(sigma)
        self.lam = splitting_lambda(self.sigma)
        self.offsets_count = round(2 * self.lam * LEVELS)  # K, for the deterministic variant

    def __repr__(self) -> str:
        return f"SplittingNoise(sigma={self.sigma}, lambda={self.lam:.6g})"

    def facts(self) -> dict:
        return {"lambda": self.lam, "offsets": self.offsets_count}

    def draw(self, shape: tuple[int, ...], generator: torch.Generator | None,
             device: torch.device) -> torch.Tensor:
        """Offsets s ~ U[0, 2λ) per coordinate."""
        return torch.rand(shape, generator=generator, device=device).mul_(2 * self.lam)

    def apply(self, clean: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
        return bin_centres(clean, noise, self.lam)

    def training_noise(self, x: torch.Tensor, num: int,
                       generator: torch.Generator | None = None) -> torch.Tensor:
        """ε [B, num, C, H, W] with x + σ·ε the split inputs (training methods add σ·ε)."""
        offsets = self.draw((x.shape[0], num, *x.shape[1:]), generator, x.device)
        return (bin_centres(x.unsqueeze(1), offsets, self.lam) - x.unsqueeze(1)) / self.sigma

    # ------------------------------------------------------------------ deterministic

    def offset_inputs(self, x: torch.Tensor) -> torch.Tensor:
        """The K split copies of one image x [C,H,W] on the 8-bit grid, one per offset
        s_j = (j + ½)/255: [K, C, H, W]. Bins are computed in integers (exact)."""
        a = torch.round(x * LEVELS)
        if x.numel() and float((x * LEVELS - a).abs().max()) > GRID_TOLERANCE:
            raise UserError("the deterministic ℓ1 certificate needs images on the 8-bit grid "
                            "(k/255): round them with --round-inputs")
        K = self.offsets_count
        j = torch.arange(K, device=x.device, dtype=torch.float64).view(-1, *[1] * x.dim())
        a = a.to(torch.float64).unsqueeze(0)
        # k = ⌈(a − j − ½)/K⌉ in integers: the bin's upper end is (j + ½ + K·k)/255
        k = torch.floor((a - j - 1) / K) + 1
        hi = (j + 0.5 + K * k) / LEVELS
        lo = hi - K / LEVELS
        return ((lo.clamp(min=0.0) + hi.clamp(max=1.0)) / 2).to(torch.float32)
