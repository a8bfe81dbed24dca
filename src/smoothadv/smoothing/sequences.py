"""Confidence sequences for a Bernoulli proportion: intervals valid at every sample size at once.

A confidence sequence at level α is a sequence of intervals [L_t, U_t], t = 1, 2, …, with
P(∃t: p ∉ [L_t, U_t]) ≤ α for the true success probability p. Because the guarantee holds
uniformly over t, the sampling may stop at any data-dependent time (when a decision is reached,
or the budget is spent) and the interval at that time still holds with probability ≥ 1 − α;
the running intersection [max L_s, min U_s] over the times inspected holds too. Checking only
at some times (after each piece of samples) is a special case.

Two sequences, both pure functions of (successes H, trials t):

- ``betting`` (default): the Krichevsky–Trofimov mixture. Before the t-th draw predict
  q̂ = (H + ½)/(t + 1); the product of the predicted probabilities of the observed draws is the
  Beta(½,½) mixture likelihood B(H + ½, t − H + ½)/B(½, ½), so the log wealth against p is
  log B(H + ½, t − H + ½) − log B(½, ½) − H·log p − (t − H)·log(1 − p). For the true p the
  wealth is a non-negative martingale with initial value 1, so by Ville's inequality it ever
  reaches 1/α with probability ≤ α: the set {p : log wealth < log(1/α)} is a confidence sequence.
  The log wealth is convex in p with its minimum (≤ 0) at H/t, so the set is an interval
  containing H/t. Other Beta mixtures (``prior=``) are valid in the same way provided the prior
  is fixed before the draws of the stream it is used on.
- ``union``: exact two-sided Clopper–Pearson intervals at the checkpoints t_k = ⌈β^k⌉
  (k ≥ 1, β = 1.1), at level α_k = 5α/((k + 4)(k + 5)) (Σ_{k≥1} α_k = α; checkpoints that
  coincide pool their levels). A union bound over the checkpoints gives the guarantee; between
  checkpoints the last interval is kept.

One sequence for p_A covers every threshold at once: a wrong decision at any radius needs the
interval to miss p_A, which happens with probability ≤ α in all, so no union bound over radii
is needed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy.special import betaln, xlog1py, xlogy
from scipy.stats import beta as beta_dist

from ..errors import UserError, check_alpha
from ..registry import Registry

CERTIFIED, UNDECIDED, NOT_CERTIFIED = 1, 0, -1
DECISION_CODES = {CERTIFIED: "C", UNDECIDED: "U", NOT_CERTIFIED: "N"}

KT_PRIOR = ((1.0, 0.5, 0.5),)  # Krichevsky–Trofimov: Beta(½, ½)
PRIOR_SCALES = (1e2, 1e3, 1e4, 1e5)

SEQUENCES: Registry[type[ConfidenceSequence]] = Registry("sequence")


def list_sequences() -> list[str]:
    return SEQUENCES.names()


def create_sequence(name: str, alpha: float, **kwargs) -> ConfidenceSequence:
    """A registered confidence sequence (``betting`` or ``union``) at level ``alpha``."""
    return SEQUENCES.get(name)(alpha, **kwargs)


class ConfidenceSequence:
    """Intervals for p from (successes, trials), valid uniformly over the trials.

    ``interval(h, t)`` takes arrays of equal shape (0 ≤ h ≤ t, t ≥ 1) and returns (lower,
    upper) arrays. ``is_check_time(t)`` says at which sample sizes an interval is available
    (every t for betting; the checkpoints for the union bound).
    """

    def __init__(self, alpha: float) -> None:
        self.alpha = check_alpha(alpha)

    def check_times(self, start: int, stop: int) -> np.ndarray:
        """The sample sizes in (start, stop] at which to look at the interval: for a sequence
        valid at every t, only ``stop`` (looking less often keeps the guarantee)."""
        return np.array([stop], dtype=np.int64) if stop > start else np.zeros(0, np.int64)

    def interval(self, h: np.ndarray, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def decisions(self, h: np.ndarray, t: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
        """Decisions [..., R] at each (h, t) [...] against thresholds [R] (see :func:`decide`)."""
        lower, upper = self.interval(h, t)
        return decide(lower, upper, thresholds)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(alpha={self.alpha})"


@SEQUENCES.register("betting")
class BettingSequence(ConfidenceSequence):
    """The Beta-mixture (default Krichevsky–Trofimov, Beta(½,½)) betting confidence sequence.

    ``prior``: mixture components ((weight, a, b), …) with weights summing to 1; the default
    is ((1, ½, ½),). Valid for any prior fixed before the stream's draws are seen.
    """

    def __init__(self, alpha: float,
                 prior: Sequence[tuple[float, float, float]] = KT_PRIOR) -> None:
        super().__init__(alpha)
        weights = np.array([w for w, _, _ in prior], dtype=np.float64)
        if np.any(weights <= 0) or abs(weights.sum() - 1) > 1e-9:
            raise UserError("prior weights must be positive and sum to 1")
        if any(a <= 0 or b <= 0 for _, a, b in prior):
            raise UserError("prior Beta parameters must be positive")
        self.prior = tuple((float(w), float(a), float(b)) for w, a, b in prior)
        self.log_threshold = math.log(1 / self.alpha)

    def log_mixture(self, h: np.ndarray, t: np.ndarray) -> np.ndarray:
        """log ∫ q^h (1 − q)^(t−h) dπ(q) for the mixture prior π."""
        h, t = np.asarray(h, dtype=np.float64), np.asarray(t, dtype=np.float64)
        terms = [math.log(w) + betaln(h + a, t - h + b) - betaln(a, b) for w, a, b in self.prior]
        return np.logaddexp.reduce(np.stack(terms), axis=0) if len(terms) > 1 else terms[0]

    def log_wealth(self, h: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
        """log wealth of the bet against the success probability p (∞ where p is impossible)."""
        h, t, p = (np.asarray(v, dtype=np.float64) for v in (h, t, p))
        with np.errstate(divide="ignore"):
            loglik = xlogy(h, p) + xlog1py(t - h, -p)
        return self.log_mixture(h, t) - loglik

    def excludes(self, h: np.ndarray, t: np.ndarray, p: np.ndarray) -> np.ndarray:
        """Whether p lies outside the confidence set at (h, t)."""
        return self.log_wealth(h, t, p) >= self.log_threshold

    def decisions(self, h, t, thresholds):
        # direct: p* is excluded iff its log wealth reaches log(1/α); the set is an interval
        # containing H/t, so an excluded p* below H/t lies below the whole set (certified)
        h = np.asarray(h, dtype=np.float64)[..., None]
        t = np.asarray(t, dtype=np.float64)[..., None]
        p = np.asarray(thresholds, dtype=np.float64)
        excluded = self.excludes(h, t, p)
        centre = h / t
        out = np.zeros(np.broadcast_shapes(h.shape, p.shape), dtype=np.int8)
        out[excluded & (p < centre)] = CERTIFIED
        out[excluded & (p > centre)] = NOT_CERTIFIED
        return out

    def interval(self, h, t, iterations: int = 50):
        h, t = np.broadcast_arrays(np.asarray(h, dtype=np.float64),
                                   np.asarray(t, dtype=np.float64))
        mixture = self.log_mixture(h, t)
        centre = h / t
        lower = self._edge(h, t, mixture, np.zeros_like(centre), centre, iterations)
        upper = self._edge(h, t, mixture, np.ones_like(centre), centre, iterations)
        return lower, upper

    def _edge(self, h, t, mixture, outside, inside, iterations):
        """Bisection between ``outside`` (an end of [0,1]) and ``inside`` (H/t, always in the
        set). Returns the last point found *outside* the set (or the end itself when the set
        reaches it), so the interval is never narrower than the exact confidence set."""

        def excluded(p):
            with np.errstate(divide="ignore"):
                return mixture - (xlogy(h, p) + xlog1py(t - h, -p)) >= self.log_threshold

        keep = ~excluded(outside)  # the end itself is in the set
        out, ins = outside.copy(), inside.copy()
        for _ in range(iterations):
            mid = (out + ins) / 2
            ex = excluded(mid)
            out = np.where(ex, mid, out)
            ins = np.where(ex, ins, mid)
        return np.where(keep, outside, out)


@SEQUENCES.register("union")
class UnionBoundSequence(ConfidenceSequence):
    """Clopper–Pearson intervals at geometric checkpoints ⌈β^k⌉ with levels 5α/((k+4)(k+5))."""

    def __init__(self, alpha: float, beta: float = 1.1, max_trials: int = 10**9) -> None:
        super().__init__(alpha)
        if not beta > 1:
            raise UserError("the checkpoint ratio beta must exceed 1")
        self.beta = float(beta)
        levels: dict[int, float] = {}
        k = 1
        while True:
            n_k = math.ceil(self.beta**k)
            if n_k > max_trials:
                break
            levels[n_k] = levels.get(n_k, 0.0) + 5 * self.alpha / ((k + 4) * (k + 5))
            k += 1
        self.checkpoints = np.array(sorted(levels), dtype=np.int64)
        self.levels = np.array([levels[n] for n in self.checkpoints])

    def level_at(self, t: np.ndarray) -> np.ndarray:
        """The level spent at each t (0 where t is no checkpoint)."""
        t = np.asarray(t, dtype=np.int64)
        pos = np.searchsorted(self.checkpoints, t)
        pos = np.clip(pos, 0, len(self.checkpoints) - 1)
        return np.where(self.checkpoints[pos] == t, self.levels[pos], 0.0)

    def check_times(self, start, stop):
        lo, hi = np.searchsorted(self.checkpoints, [start, stop], side="right")
        return self.checkpoints[lo:hi]

    def interval(self, h, t):
        h, t = np.broadcast_arrays(np.asarray(h, dtype=np.float64),
                                   np.asarray(t, dtype=np.float64))
        level = self.level_at(t)
        check = level > 0
        half = np.where(check, level, 1.0) / 2
        with np.errstate(invalid="ignore"):
            lo = np.where(h > 0, beta_dist.ppf(half, h, t - h + 1), 0.0)
            hi = np.where(h < t, beta_dist.ppf(1 - half, h + 1, t - h), 1.0)
        # not a checkpoint: no information
        return np.where(check, lo, 0.0), np.where(check, hi, 1.0)




def threshold_prior(thresholds: Sequence[float], kt_weight: float = 0.5,
                    scales: Sequence[float] = PRIOR_SCALES,
                    ) -> tuple[tuple[float, float, float], ...]:
    """A Beta mixture for deciding p against known thresholds: the KT prior with weight
    ``kt_weight`` (easy inputs, p far from every threshold, keep most of their speed) and, for
    each threshold p* and concentration κ in ``scales``, Beta(κp*, κ(1 − p*)) (mean p*,
    standard deviation ≈ √(p*(1 − p*)/κ)) sharing the rest.

    Inputs whose p lies near a threshold are the ones that need many samples; the KT prior pays
    about ½·log t nats for its spread there, while a component whose width matches the
    interval's at t pays only log(1/its weight). The prior depends only on the radii, σ and α,
    all fixed before any sample is drawn, so the sequence stays valid (Ville's inequality holds
    for every fixed mixture).
    """
    thresholds = sorted({float(p) for p in thresholds if 0 < p < 1})
    if not thresholds:
        return KT_PRIOR
    rest = (1 - kt_weight) / (len(thresholds) * len(scales))
    comps = [(kt_weight, 0.5, 0.5)]
    comps += [(rest, k * p, k * (1 - p)) for p in thresholds for k in scales]
    return tuple(comps)


def decide(lower: np.ndarray, upper: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Decisions [..., R] for intervals [...] against thresholds [R]: CERTIFIED where the
    lower end is above the threshold, NOT_CERTIFIED where the upper end is below, else
    UNDECIDED."""
    lo = np.asarray(lower)[..., None]
    hi = np.asarray(upper)[..., None]
    out = np.full(lo.shape[:-1] + (len(thresholds),), UNDECIDED, dtype=np.int8)
    out[lo > thresholds] = CERTIFIED
    out[hi < thresholds] = NOT_CERTIFIED
    return out
