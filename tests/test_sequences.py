"""Confidence sequences and the randomized Clopper–Pearson bound: exact values and
simulations of their error rates (no model)."""

import math

import numpy as np
import pytest
from scipy.stats import beta as beta_dist

from smoothadv.errors import UserError
from smoothadv.smoothing.sequences import (
    CERTIFIED,
    NOT_CERTIFIED,
    UNDECIDED,
    BettingSequence,
    UnionBoundSequence,
    create_sequence,
    decide,
    threshold_prior,
)
from smoothadv.smoothing.stats import lower_confidence_bound, randomized_lower_confidence_bound

ALPHA = 0.05


def _streams(p, count, length, seed):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.random((count, length)) < p, axis=1)  # H after each draw


def test_kt_wealth_is_the_product_of_its_predictions():
    seq = BettingSequence(0.01)
    rng = np.random.default_rng(0)
    draws = rng.random(300) < 0.8
    h, log_wealth, p = 0, 0.0, 0.7
    for t, x in enumerate(draws):
        q = (h + 0.5) / (t + 1)  # predicted before the draw
        log_wealth += math.log(q if x else 1 - q) - math.log(p if x else 1 - p)
        h += int(x)
        assert seq.log_wealth(h, t + 1, p) == pytest.approx(log_wealth, abs=1e-9)


def test_betting_interval_is_the_confidence_set():
    seq = BettingSequence(0.001)
    h, t = np.array([0, 3, 480, 9000, 500]), np.array([10, 10, 480, 10000, 500])
    lo, hi = seq.interval(h, t)
    assert np.all(lo <= h / t) and np.all(h / t <= hi)
    # the ends are (just) outside the set, unless they are 0 or 1 themselves
    inside = lambda p: ~seq.excludes(h, t, p)  # noqa: E731
    assert np.all((lo == 0) | ~inside(lo)) and np.all((hi == 1) | ~inside(hi))
    assert np.all(inside(np.minimum(lo + 1e-9, h / t)))
    assert np.all(inside(np.maximum(hi - 1e-9, h / t)))
    assert lo[0] == 0 and hi[2] == 1 and hi[4] == 1
    # all 480 draws successes: p = Φ(2) = 0.97725 is excluded (σ = 0.25 certifies r = 0.5)
    assert lo[2] > 0.97725


@pytest.mark.parametrize("name", ["betting", "union"])
@pytest.mark.parametrize("p", [0.5, 0.9, 0.99])
def test_coverage_at_every_time(name, p):
    # P(the sequence ever misses p) ≤ α: 2,000 streams of 3,000 draws, checked every 8 draws
    seq = create_sequence(name, ALPHA)
    count, length = 2000, 3000
    h = _streams(p, count, length, seed=int(p * 100))
    times = np.arange(8, length + 1, 8) if name == "betting" else seq.check_times(0, length)
    lo, hi = seq.interval(h[:, times - 1], np.broadcast_to(times, (count, len(times))))
    missed = ((lo > p) | (hi < p)).any(axis=1).mean()
    assert missed <= ALPHA + 3 * math.sqrt(ALPHA * (1 - ALPHA) / count)


@pytest.mark.parametrize("name", ["betting", "union"])
def test_wrong_decisions_at_and_near_the_threshold(name):
    # thresholds Φ(r/σ) for r = 0.25, 0.5 at σ = 0.25; streams at and just above them
    seq = create_sequence(name, ALPHA)
    thresholds = np.array([0.8413447, 0.9772499])
    count, length = 2000, 4000
    times = np.arange(64, length + 1, 64) if name == "betting" else seq.check_times(0, length)
    tol = 3 * math.sqrt(ALPHA * (1 - ALPHA) / count)
    for p in (thresholds[0], thresholds[1], thresholds[0] + 0.01, thresholds[1] - 0.005):
        h = _streams(p, count, length, seed=7)
        dec = seq.decisions(h[:, times - 1], np.broadcast_to(times, (count, len(times))),
                            thresholds)  # [count, checks, R]
        wrong = (((dec == CERTIFIED) & (thresholds >= p)) | ((dec == NOT_CERTIFIED)
                                                             & (thresholds <= p)))
        assert wrong.any(axis=(1, 2)).mean() <= ALPHA + tol


def test_direct_decisions_equal_interval_decisions():
    seq = BettingSequence(0.001, prior=threshold_prior([0.84, 0.977]))
    h = np.array([100, 500, 990, 9800, 9760, 400])
    t = np.array([128, 512, 1000, 10000, 10000, 512])
    thresholds = np.array([0.5, 0.84, 0.977])
    lo, hi = seq.interval(h, t)
    assert np.array_equal(seq.decisions(h, t, thresholds), decide(lo, hi, thresholds))


def test_union_levels_and_checkpoints():
    seq = UnionBoundSequence(0.001)
    assert seq.levels.sum() <= 0.001 + 1e-15
    assert seq.levels.sum() == pytest.approx(0.001, rel=0.05)  # the tail past 10⁹ unused
    assert seq.checkpoints[0] == 2 and np.all(np.diff(seq.checkpoints) > 0)
    assert seq.check_times(100, 200).tolist() == [c for c in seq.checkpoints if 100 < c <= 200]
    lo, hi = seq.interval(np.array([40]), np.array([seq.checkpoints[40]]))
    level = seq.levels[40]
    n = seq.checkpoints[40]
    assert lo[0] == pytest.approx(beta_dist.ppf(level / 2, 40, n - 40 + 1))
    assert hi[0] == pytest.approx(beta_dist.ppf(1 - level / 2, 41, n - 40))


def test_prior_validation():
    with pytest.raises(UserError):
        BettingSequence(0.01, prior=((0.5, 1, 1),))
    with pytest.raises(UserError):
        UnionBoundSequence(0.01, beta=1.0)
    comps = threshold_prior([0.9, 0.99])
    assert sum(w for w, _, _ in comps) == pytest.approx(1.0)


def test_decide():
    out = decide(np.array([0.9, 0.5]), np.array([0.95, 0.6]), np.array([0.5, 0.92]))
    assert out.tolist() == [[CERTIFIED, UNDECIDED], [UNDECIDED, NOT_CERTIFIED]]


def test_randomized_clopper_pearson():
    n, p, alpha = 50, 0.3, 0.05
    rng = np.random.default_rng(0)
    k = rng.binomial(n, p, 20000)
    w = rng.random(20000)
    rand = randomized_lower_confidence_bound(k, n, alpha, w)
    plain = lower_confidence_bound(k, n, alpha)
    assert np.all(rand >= plain - 1e-12)  # never below the ordinary bound
    coverage = (rand <= p).mean()  # exact coverage 1 − α
    assert coverage == pytest.approx(1 - alpha, abs=3 * math.sqrt(alpha * (1 - alpha) / 20000))
    assert (plain <= p).mean() > coverage  # the ordinary bound over-covers
    # W = 1 gives the ordinary bound; k = 0 with W > α gives 0
    assert randomized_lower_confidence_bound([7, 30], n, alpha, 1.0) == pytest.approx(
        lower_confidence_bound(np.array([7, 30]), n, alpha), abs=1e-9)
    assert randomized_lower_confidence_bound(0, n, alpha, 0.5)[()] == 0.0
