"""Splitting noise and the deterministic ℓ1 certificate (Levine & Feizi, ICML 2021, "Improved,
Deterministic Smoothing for L1 Certified Robustness").

**Splitting.** Each coordinate x_i in [0,1] is replaced by the centre of its bin: the bins have
width 2λ and are offset by s_i in [0, 2λ), so x_i lies in (s_i + 2λ(k − 1), s_i + 2λk] with
k = ⌈(x_i − s_i)/2λ⌉, and the model sees the midpoint of that bin intersected with [0,1]. With
s_i ~ U[0, 2λ) independent, x_i and x_i + δ_i fall into different bins with probability
min(1, |δ_i|/2λ) — the same total-variation bound as uniform noise, so the uniform radii hold
(:mod:`.radii`), and the box-constrained one too.

**Deterministic** (their "derandomized" smoothing). For 8-bit inputs (x_i = a_i/255) and
2λ = K/255, the offsets s_{i,j} = ((j + t_i) mod K + ½)/255, j = 0 … K − 1, evaluate the smoothed
classifier exactly: each pixel's offset is uniform over its K values (each bin boundary falls
halfway between grid points), so p_c = n_c/K with no sampling and no α. The **template** t ∈
{0 … K−1}^d is fixed before any input is seen and recorded: by default Levine & Feizi's, NumPy's
``RandomState(seed).randint(K, size=d)`` with seed 0 over the flattened [C,H,W] pixels, which
decorrelates the pixels so that the K evaluations look like the independent offsets the model was
trained on; ``zero`` (t = 0: one offset shared by every pixel) is the other choice. With 2λ > 1 and
a zero template many offsets quantize the whole image to one constant, which costs most of the
certificate (:func:`template_for`).

**The radius, for this project's tie rule (abstain on a tie).** Between grid values a and b of one
pixel lie exactly |a − b| half-integer boundaries, and each lies in the bins of exactly one offset
index j (min(|a − b|, K) of them), so a grid perturbation of ‖δ‖₁ = m/255 (m grid steps in all)
changes the bin pattern, hence possibly the vote, of at most m of the K evaluations. A changed
vote moves at most one unit from the top class A and one unit to a class B, so after m steps
n'_A − n'_B ≥ n_A − n_B − 2m for every other class B (n_B its count before). The prediction is A
while n'_A > n'_B for every B, that is for every m with n_A − n_B − 2m > 0 (n_B the runner-up's
count): m ≤ ⌊(n_A − n_B − 1)/2⌋. At m = (n_A − n_B)/2 (an even gap) a tie, hence an abstention,
can be reached. So the **closed** ball of ℓ1 radius ⌊(n_A − n_B − 1)/2⌋/255 on the 8-bit grid is
certified (:func:`derandomized_steps`), and no larger one in general: for a one-pixel threshold
classifier the bound is met with equality. (Levine & Feizi's code breaks ties toward the lower
class index and writes ⌊(n_A − n_B − [B < A])/2⌋/255; with abstention on ties the two agree when
the gap is odd and B < A, and ours is one step smaller otherwise.) The certificate is for perturbed
images on the 8-bit grid, as the inputs are (``--sound``'s grid check applies). K = 2λ·255
forward passes per input.

λ is √3·σ (σ the per-coordinate standard deviation of the uniform offsets' displacement, as for
uniform noise) rounded to the nearest multiple of 1/510 (at least 1/510), so that K is an
integer; the value used is recorded.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..errors import UserError
from .base import FloatNoise
from .radii import UniformRadii
from .rounded import GRID_TOLERANCE, LEVELS

TEMPLATES = ("seedN", "zero")  # --template: seed0 (the default), seed1, …, or zero
DEFAULT_TEMPLATE = "seed0"


def splitting_lambda(sigma: float) -> float:
    """λ = √3σ rounded to a multiple of 1/510 (at least one step)."""
    return max(1, round(math.sqrt(3.0) * sigma * 2 * LEVELS)) / (2 * LEVELS)


def check_template(name: str) -> str:
    """``name`` if it is a template choice (``zero`` or ``seed<N>``, N ≥ 0), else a one-line
    refusal."""
    if name == "zero" or (name.startswith("seed") and name[4:].isdigit()):
        return name
    raise UserError(f"unknown template {name!r}: give seed<N> (e.g. seed0, Levine & Feizi's "
                    "default) or zero (one offset shared by every pixel)")


def template_for(name: str, offsets: int, dims: int) -> np.ndarray:
    """The per-pixel offset template t [dims] (int64, values in [0, offsets)) of a template
    choice: ``seed<N>`` draws NumPy's ``RandomState(N).randint(offsets, size=dims)``, as Levine
    & Feizi's derandomized smoothing does (seed 0 in their code); ``zero`` is all zeros. A
    function of the name, K and d alone: fixed before any input is seen."""
    check_template(name)
    if name == "zero":
        return np.zeros(dims, dtype=np.int64)
    rng = np.random.RandomState(int(name[4:]))
    return rng.randint(offsets, size=dims).astype(np.int64)


def derandomized_steps(n_a: int, n_b: int) -> int:
    """The closed certified ℓ1 radius of the deterministic certificate in grid steps (1/255):
    ⌊(n_A − n_B − 1)/2⌋ for a top count n_A above the runner-up's n_B, else −1 (abstain).
    See the module docstring for the proof: m steps move the gap by at most 2m, and the
    prediction survives while the gap stays positive."""
    gap = int(n_a) - int(n_b)
    return (gap - 1) // 2 if gap > 0 else -1


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

    def offset_inputs(self, x: torch.Tensor, template: str = DEFAULT_TEMPLATE) -> torch.Tensor:
        """The K split copies of one image x [C,H,W] on the 8-bit grid, copy j with pixel i's
        offset ((j + t_i) mod K + ½)/255 for the ``template`` t (:func:`template_for`):
        [K, C, H, W]. Bins are computed in integers (exact)."""
        a = torch.round(x * LEVELS)
        if x.numel() and float((x * LEVELS - a).abs().max()) > GRID_TOLERANCE:
            raise UserError("the deterministic ℓ1 certificate needs images on the 8-bit grid "
                            "(k/255): round them with --round-inputs")
        K = self.offsets_count
        t = torch.from_numpy(template_for(template, K, x.numel())).to(x.device)
        j = torch.arange(K, device=x.device, dtype=torch.int64).view(-1, 1)
        shift = ((j + t.view(1, -1)) % K).to(torch.float64).view(K, *x.shape)  # [K, C, H, W]
        a = a.to(torch.float64).unsqueeze(0)
        # k = ⌈(a − j − ½)/K⌉ in integers: the bin's upper end is (j + ½ + K·k)/255
        k = torch.floor((a - shift - 1) / K) + 1
        hi = (shift + 0.5 + K * k) / LEVELS
        lo = hi - K / LEVELS
        return ((lo.clamp(min=0.0) + hi.clamp(max=1.0)) / 2).to(torch.float32)
