import math

import numpy as np
import pytest
from scipy.stats import norm

from smoothadv.errors import UserError
from smoothadv.smoothing import stats


def test_exact_radius_from_cohen():
    p = stats.lower_confidence_bound(100_000, 100_000, 0.001)
    assert float(p) == pytest.approx(0.001 ** (1 / 100_000), rel=1e-12)  # closed form
    assert round(float(stats.certified_radius(p, 0.12)), 4) == 0.4574


def test_lower_bound_properties():
    assert float(stats.lower_confidence_bound(0, 10, 0.05)) == 0.0
    # Clopper–Pearson lower bound with n_a = 1: 1 - (1 - alpha)^(1/n)
    assert float(stats.lower_confidence_bound(1, 10, 0.05)) == pytest.approx(
        1 - 0.95 ** (1 / 10), rel=1e-9)
    bounds = stats.lower_confidence_bound(np.arange(0, 101), 100, 0.01)
    assert np.all(np.diff(bounds) > 0) and bounds[-1] < 1
    assert np.all(bounds <= np.arange(0, 101) / 100)
    upper = stats.upper_confidence_bound(np.arange(0, 101), 100, 0.01)
    assert np.all(upper >= np.arange(0, 101) / 100)


def test_binomial_pvalue_exact():
    # two-sided exact test of 9 of 10 at p=1/2: 2 * (C(10,9) + C(10,10)) / 2^10
    assert stats.binomial_test_pvalue(9, 1) == pytest.approx(22 / 1024)
    assert stats.binomial_test_pvalue(5, 5) == pytest.approx(1.0)
    assert stats.binomial_test_pvalue(0, 0) == 1.0


def test_radius_abstains_below_half():
    r = stats.certified_radius(np.array([0.3, 0.5, 0.8413447460685429]), 0.5)
    assert r[0] == 0 and r[1] == 0
    assert r[2] == pytest.approx(0.5, rel=1e-9)
    assert float(stats.certified_radius(norm.cdf(2.0), 0.25)) == pytest.approx(0.5)
    assert math.isfinite(float(stats.certified_radius(0.999999, 1.0)))


@pytest.mark.parametrize("bad", [0.0, -0.1, float("nan")])
def test_bad_sigma(bad):
    with pytest.raises(UserError, match="sigma"):
        stats.certified_radius(0.9, bad)


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.2])
def test_bad_alpha(bad):
    with pytest.raises(UserError, match="alpha"):
        stats.lower_confidence_bound(5, 10, bad)
