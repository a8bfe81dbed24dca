"""Certified radii of the smoothed classifier per noise family and norm, and their inverses
(the p_A a radius needs, for sequential certification's thresholds).

Every formula maps a lower bound p̲_A on the top class's probability (and, two-sided, an upper
bound p̄_B on every other class's) to a radius R such that g is constant on the ball
{x + δ : ‖δ‖ < R}. All are monotone in p̲_A, so a valid lower bound gives a valid radius.

- **Gaussian** N(0, σ²I), ℓ2: R = σ·Φ⁻¹(p̲_A) (Cohen et al. 2019, Theorem 1). ℓ1: the same R,
  since ‖δ‖₂ ≤ ‖δ‖₁ puts the ℓ1 ball inside the ℓ2 one. ℓ∞: R/√d (‖δ‖₂ ≤ √d‖δ‖∞).
- **Uniform** on the cube [−λ, λ]^d, λ = √3·σ (σ the per-coordinate standard deviation, as Yang
  et al. 2020 parametrise it), ℓ1: R = 2λ(p̲_A − ½); two-sided R = λ(p̲_A − p̄_B). The cubes at x
  and x + δ overlap in a fraction ∏(1 − |δ_i|/2λ) ≥ 1 − ‖δ‖₁/2λ of their volume, so the total
  variation between the two noisy inputs is at most ‖δ‖₁/2λ, and no class can gain or lose
  more probability than that (Yang et al. 2020, the uniform ℓ1 row of their table; tight for a
  classifier that thresholds one coordinate). ℓ∞: R/d.
- **Laplace** with density ∝ exp(−‖z‖₁/b), b = σ/√2, ℓ1: R = −b·log(2(1 − p̲_A)) (Teng et al.
  2020, Theorem 1; tight for a one-coordinate threshold). ℓ∞: R/d.
- **Splitting** (Levine & Feizi 2021): each coordinate is replaced by the centre of the bin of
  width 2λ, offset by s_i ~ U[0, 2λ), that holds it; x_i and x_i + δ_i land in different bins
  with probability |δ_i|/2λ, so the uniform formulas hold (their Theorem 1), and the
  deterministic variant's exact counts give R = λ(p_A − p_B) with no α (:mod:`.splitting`).

ℓ2 certificates exist only for Gaussian noise here: asking for ℓ2 with another noise is refused
in one line.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm as _normal

from ..errors import UserError

NORMS = ("l2", "l1", "linf")
NORM_NAMES = {"l2": "ℓ2", "l1": "ℓ1", "linf": "ℓ∞"}


def check_norm(norm: str) -> str:
    if norm not in NORMS:
        raise UserError(f"unknown norm {norm!r}; choose {', '.join(NORMS)}")
    return norm


def _linf_scale(norm: str, dims: int | None, root: bool) -> float:
    """The factor from the family's own-norm radius to ``norm``'s (1 for l2/l1; 1/√d or 1/d)."""
    if norm != "linf":
        return 1.0
    if not dims:
        raise ValueError("an ℓ∞ radius needs the input's dimension")
    return 1.0 / (math.sqrt(dims) if root else dims)


class GaussianRadii:
    """Radii of Gaussian noise (float or rounded): ℓ2 and ℓ1 σΦ⁻¹(p), ℓ∞ σΦ⁻¹(p)/√d."""

    family = "gaussian"
    norms = NORMS
    sigma: float

    def radius(self, p_lower, norm: str = "l2", dims: int | None = None) -> np.ndarray:
        p = np.asarray(p_lower, dtype=np.float64)
        r = np.where(p > 0.5, self.sigma * _normal.ppf(np.clip(p, 0.5, 1.0)), 0.0)
        return r * _linf_scale(norm, dims, root=True)

    def p_needed(self, radius, norm: str = "l2", dims: int | None = None) -> np.ndarray:
        """The smallest p̲_A whose radius reaches ``radius`` (a threshold for sequential tests)."""
        r = np.asarray(radius, dtype=np.float64) / _linf_scale(norm, dims, root=True)
        return _normal.cdf(r / self.sigma)

    def two_sided_radius(self, p_lower, p_upper_b, norm: str = "l2", dims=None):
        raise UserError("the two-sided certificate is defined here for uniform and splitting "
                        "noise; Gaussian noise uses p_A alone")


class UniformRadii:
    """Radii of uniform cube noise (and splitting noise): ℓ1 2λ(p − ½), ℓ∞ that over d;
    two-sided λ(p_A − p_B)."""

    family = "uniform"
    norms = ("l1", "linf")
    lam: float

    def radius(self, p_lower, norm: str = "l1", dims: int | None = None) -> np.ndarray:
        self._check(norm)
        p = np.asarray(p_lower, dtype=np.float64)
        return np.where(p > 0.5, 2 * self.lam * (p - 0.5), 0.0) * _linf_scale(norm, dims, False)

    def two_sided_radius(self, p_lower, p_upper_b, norm: str = "l1",
                         dims: int | None = None) -> np.ndarray:
        self._check(norm)
        gap = np.asarray(p_lower, dtype=np.float64) - np.asarray(p_upper_b, dtype=np.float64)
        return np.where(gap > 0, self.lam * gap, 0.0) * _linf_scale(norm, dims, False)

    def p_needed(self, radius, norm: str = "l1", dims: int | None = None) -> np.ndarray:
        self._check(norm)
        r = np.asarray(radius, dtype=np.float64) / _linf_scale(norm, dims, False)
        return 0.5 + r / (2 * self.lam)  # above 1: no p reaches it

    def _check(self, norm: str) -> None:
        if norm not in self.norms:
            raise UserError(f"{self.kind} noise certifies ℓ1 (and ℓ∞ through it), not "
                            f"{NORM_NAMES.get(norm, norm)}: give --norm l1 (or linf), or "
                            "--noise gaussian")


class LaplaceRadii(UniformRadii):
    """Radii of Laplace noise: ℓ1 −b·log(2(1 − p)), ℓ∞ that over d."""

    family = "laplace"
    scale: float

    def radius(self, p_lower, norm: str = "l1", dims: int | None = None) -> np.ndarray:
        self._check(norm)
        p = np.asarray(p_lower, dtype=np.float64)
        with np.errstate(divide="ignore"):
            r = np.where(p > 0.5, -self.scale * np.log(2 * (1 - np.clip(p, 0.5, 1.0))), 0.0)
        return r * _linf_scale(norm, dims, False)

    def two_sided_radius(self, p_lower, p_upper_b, norm: str = "l1", dims=None):
        raise UserError("the two-sided certificate is defined here for uniform and splitting "
                        "noise; Laplace noise uses p_A alone")

    def p_needed(self, radius, norm: str = "l1", dims: int | None = None) -> np.ndarray:
        self._check(norm)
        r = np.asarray(radius, dtype=np.float64) / _linf_scale(norm, dims, False)
        return 1 - 0.5 * np.exp(-r / self.scale)


def box_l1_radius(tv_budget: float, lam: float, x: np.ndarray) -> float:
    """The box-constrained ℓ1 radius for uniform or splitting noise of half-width λ at an image
    x in [0,1]^d (after Voráček & Hein 2023): the largest R such that no perturbation δ with
    ‖δ‖₁ < R **and x + δ in [0,1]^d** moves a total variation of ``tv_budget`` (p̲_A − ½, or
    (p̲_A − p̄_B)/2 two-sided) between the noisy inputs.

    The total variation of a shift δ is exactly 1 − ∏(1 − min(|δ_i|, 2λ)/2λ); the box caps
    |δ_i| at m_i = max(x_i, 1 − x_i). Σ log(1 − t_i) is concave, so its minimum over
    {0 ≤ t_i ≤ m_i/2λ, Σ t_i = R/2λ} lies at a vertex, and merging mass into fewer coordinates
    lowers the product ((1 − a)(1 − b) ≥ 1 − a − b): the worst δ fills the coordinates with the
    largest caps first. The radius is where that greedy total variation reaches the budget;
    never below the plain 2λ·budget, and larger only once the plain radius exceeds the largest
    cap (λ > ½ and a confident p_A). Where no δ in the box reaches the budget, every point of
    the box is certified and R = Σ m_i (no larger ball holds another point of the box). A
    relative 1e-9 is taken off for the floating-point products.
    """
    if tv_budget <= 0:
        return 0.0
    width = 2 * lam
    caps = np.sort(np.minimum(np.maximum(x, 1 - x).ravel().astype(np.float64), width))[::-1]
    keep = np.cumprod(1 - caps / width)  # ∏ over the first k filled coordinates
    reached = np.nonzero(1 - keep >= tv_budget)[0]
    if len(reached) == 0:
        return float(caps.sum())
    k = int(reached[0])
    before = 1.0 if k == 0 else float(keep[k - 1])
    spent = float(caps[:k].sum())
    t = width * (1 - (1 - tv_budget) / before)  # the last coordinate's share
    radius = spent + min(max(t, 0.0), float(caps[k]))
    return max(0.0, radius * (1 - 1e-9))
