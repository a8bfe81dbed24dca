import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from smoothadv import ABSTAIN, Smooth
from smoothadv.errors import UserError
from smoothadv.smoothing import stats


def _inputs(k: int, seed: int = 1) -> torch.Tensor:
    return torch.rand(k, 1, 4, 4, generator=torch.Generator().manual_seed(seed))


def test_linear_certified_radius_is_sound_and_tight(linear_model):
    sigma, n, alpha = 0.5, 100_000, 0.001
    xs = _inputs(12)
    smooth = Smooth(linear_model, 2, sigma)
    certs = smooth.certify_many(xs, 100, n, alpha, 10_000, seeds=list(range(12)))
    true_r = linear_model.true_radius(xs)
    true_pa = linear_model.true_pa(xs, sigma)
    checked = 0
    for c, r_true, pa, x in zip(certs, true_r, true_pa, xs):
        true_class = int(linear_model.margin(x[None]).item() > 0)
        if c.prediction == ABSTAIN:
            # only near the boundary: where n0 = 100 draws can pick the wrong class
            assert pa < 0.7
            continue
        assert c.prediction == true_class
        assert c.radius <= r_true.item() + 1e-9  # never exceeds the true radius
        if pa > 0.6:
            expected = sigma * norm.ppf(float(stats.lower_confidence_bound(
                round(pa.item() * n), n, alpha)))
            assert abs(c.radius - expected) <= 0.05 * expected
            checked += 1
    assert checked >= 4


def test_coverage_of_lower_bound(linear_model):
    # A fixed input with known p_A; 2000 independent certifications at alpha = 0.05.
    sigma, alpha, reps = 0.5, 0.05, 2000
    x = linear_model.point_with_pa(0.8, sigma)
    pa = float(linear_model.true_pa(x[None], sigma))
    assert pa == pytest.approx(0.8, abs=1e-4)
    smooth = Smooth(linear_model, 2, sigma)
    certs = smooth.certify_many(x[None].repeat(reps, 1, 1, 1), 10, 100, alpha, 5000,
                                seeds=list(range(reps)))
    over = np.mean([c.p_lower > pa for c in certs])
    assert over <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / reps)


def test_certify_many_equals_certify_and_ignores_packing(linear_model):
    xs = _inputs(7, seed=3)
    smooth = Smooth(linear_model, 2, 0.3)
    seeds = [11, 12, 13, 14, 15, 16, 17]
    many = smooth.certify_many(xs, 50, 300, 0.01, 128, seeds=seeds)
    alone = [smooth.certify(x, 50, 300, 0.01, 128, seed=s) for x, s in zip(xs, seeds)]
    assert many == alone
    # other inputs in the batch do not change an input's counts
    subset = smooth.certify_many(xs[2:5], 50, 300, 0.01, 128, seeds=seeds[2:5])
    assert subset == many[2:5]


def test_certify_many_and_certify_agree_in_distribution(linear_model):
    x = linear_model.point_with_pa(0.75, 0.5)
    smooth = Smooth(linear_model, 2, 0.5)
    reps = 300
    torch.manual_seed(0)
    many = [c.n_a for c in smooth.certify_many(x[None].repeat(reps, 1, 1, 1), 100, 200, 0.01,
                                                 1000)]
    alone = [smooth.certify(x, 100, 200, 0.01, 1000).n_a for _ in range(reps)]
    pa = float(linear_model.true_pa(x[None], 0.5))
    sd = math.sqrt(200 * pa * (1 - pa) / reps)
    assert abs(np.mean(many) - 200 * pa) < 4 * sd
    assert abs(np.mean(alone) - 200 * pa) < 4 * sd
    assert abs(np.mean(many) - np.mean(alone)) < 4 * math.sqrt(2) * sd


def test_predict_abstains_on_a_coin_and_answers_when_clear(linear_model):
    smooth = Smooth(linear_model, 2, 0.25)
    on_boundary = torch.full((1, 4, 4), 0.5)  # margin 0 → p = 1/2 for both classes
    preds = smooth.predict_many(on_boundary[None].repeat(200, 1, 1, 1), 100, 0.01, 1000)
    assert np.mean([p.prediction == ABSTAIN for p in preds]) > 0.95
    w = linear_model.w.view(1, 4, 4)
    far = (0.5 + 0.5 * w.sign()).clamp(0, 1)  # well on the positive side
    assert smooth.predict(far, 1000, 0.001, 500, seed=1) == 1
    assert smooth.predict_many(far[None], 1000, 0.001, 500)[0].count1 == 1000


def test_soft_forward_matches_closed_form(linear_model):
    # For a 2-class model with logits [0, z], softmax_1 = sigmoid(z); G is its noise average.
    smooth = Smooth(linear_model, 2, 0.2)
    x = _inputs(3)
    noise = smooth.sample_noise(x, 5, torch.Generator().manual_seed(0))
    probs = smooth.soft_forward(x, noise=noise)
    z = (x.unsqueeze(1) + noise).flatten(2) @ linear_model.w + linear_model.b
    assert torch.allclose(probs[:, 1], torch.sigmoid(z).mean(1), atol=1e-6)
    assert torch.allclose(probs.sum(1), torch.ones(3))


def test_bad_inputs(linear_model):
    smooth = Smooth(linear_model, 2, 0.5)
    x = _inputs(1)[0]
    with pytest.raises(UserError, match=r"\[0,1\]"):
        smooth.certify(x + 2, 10, 100, 0.01, 10)
    with pytest.raises(UserError, match="n0"):
        smooth.certify(x, 0, 100, 0.01, 10)
    # n0 > n is valid (the selection draws are separate from the counting draws)
    cert = smooth.certify(x, 200, 100, 0.01, 10, seed=0)
    assert cert.n == 100 and 0 <= cert.n_a <= 100
    with pytest.raises(UserError, match="alpha"):
        smooth.certify(x, 10, 100, 1.5, 10)
    with pytest.raises(UserError, match="sigma"):
        Smooth(linear_model, 2, 0.0)


def test_mode_is_restored(linear_model):
    linear_model.train()
    Smooth(linear_model, 2, 0.5).certify(_inputs(1)[0], 10, 20, 0.1, 10)
    assert linear_model.training
