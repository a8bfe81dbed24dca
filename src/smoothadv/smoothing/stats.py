"""Statistics of randomized smoothing, as pure functions (Cohen et al., 2019).

Every function here is deterministic and works on plain numbers or NumPy arrays, so it can
be checked against exact values.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import beta, binom, binomtest, norm

from ..errors import check_alpha, check_sigma


def lower_confidence_bound(n_a: int | np.ndarray, n: int | np.ndarray, alpha: float) -> np.ndarray:
    """One-sided Clopper–Pearson lower bound on a binomial proportion.

    With probability at least ``1 - alpha`` over the draw of ``n_a ~ Binomial(n, p)``, the
    returned value is ≤ p. Equals ``beta.ppf(alpha, n_a, n - n_a + 1)``, and 0 where n_a = 0.

    Args:
        n_a: successes, 0 ≤ n_a ≤ n (scalar or array).
        n: trials, ≥ 1.
        alpha: level in (0, 1).
    Returns:
        Array (0-d for scalar input) of bounds in [0, 1).
    """
    alpha = check_alpha(alpha)
    n_a = np.asarray(n_a, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    if np.any(n_a < 0) or np.any(n_a > n):
        raise ValueError("need 0 <= n_a <= n")
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(alpha, n_a, n - n_a + 1)
    return np.where(n_a > 0, bound, 0.0)


def randomized_lower_confidence_bound(n_a: int | np.ndarray, n: int, alpha: float,
                                      w: float | np.ndarray) -> np.ndarray:
    """The randomized (exact-coverage) one-sided Clopper–Pearson lower bound.

    inf{p : P(Bin(n,p) > n_a) + W·P(Bin(n,p) = n_a) > α} with W ~ U[0,1] drawn independently
    of the samples. With probability exactly 1 − α (over the samples and W) it is ≤ p, and on
    every draw it is ≥ the ordinary bound :func:`lower_confidence_bound` (whose defining
    probability P(Bin ≥ n_a) is the W = 1 case, the largest).
    """
    alpha = check_alpha(alpha)
    n_a, w = np.broadcast_arrays(np.asarray(n_a, dtype=np.int64), np.asarray(w, dtype=float))
    if np.any(n_a < 0) or np.any(n_a > n):
        raise ValueError("need 0 <= n_a <= n")
    if np.any((w < 0) | (w > 1)):
        raise ValueError("W must lie in [0, 1]")
    k, u = n_a.astype(np.float64), w

    def excess(p: np.ndarray) -> np.ndarray:  # increasing in p
        return binom.sf(k, n, p) + u * binom.pmf(k, n, p) - alpha

    # bisection on the whole array; ``lo`` keeps excess ≤ 0, so the answer never exceeds the
    # exact infimum (it is within 2⁻⁶⁰ below it)
    lo, hi = np.zeros(k.shape), np.ones(k.shape)
    for _ in range(60):
        mid = (lo + hi) / 2
        above = excess(mid) > 0
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    out = np.where(excess(np.zeros(k.shape)) > 0, 0.0, lo)
    return out[()] if out.ndim == 0 else out


def upper_confidence_bound(n_a: int | np.ndarray, n: int | np.ndarray, alpha: float) -> np.ndarray:
    """One-sided Clopper–Pearson upper bound: ≥ p with probability at least ``1 - alpha``."""
    alpha = check_alpha(alpha)
    n_a = np.asarray(n_a, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        bound = beta.ppf(1 - alpha, n_a + 1, n - n_a)
    return np.where(n_a < n, bound, 1.0)


def binomial_test_pvalue(count1: int, count2: int) -> float:
    """Two-sided p-value of ``count1 ~ Binomial(count1 + count2, 1/2)`` (PREDICT's test).

    Returns 1.0 when both counts are 0 (no evidence at all).
    """
    total = int(count1) + int(count2)
    if total == 0:
        return 1.0
    return float(binomtest(int(count1), total, 0.5).pvalue)


def certified_radius(p_lower: float | np.ndarray, sigma: float) -> np.ndarray:
    """Certified ℓ2 radius σ·Φ⁻¹(p_lower) for p_lower > 1/2 (Cohen et al., Theorem 1).

    Where p_lower ≤ 1/2 the smoothed classifier abstains and the radius returned is 0.
    p_lower = 1 gives an infinite radius; callers use finite n so that never occurs.
    """
    sigma = check_sigma(sigma)
    p = np.asarray(p_lower, dtype=np.float64)
    return np.where(p > 0.5, sigma * norm.ppf(np.clip(p, 0.5, 1.0)), 0.0)
