"""The attacks compute what the paper's code computes, step for step.

The reference loops below are written from the rules the paper's code follows (stated in the
docstring of ``smoothadv.attacks``), one operation per rule, and compared with the library on
a trained digits model with fixed noise.
"""

import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from smoothadv import Smooth
from smoothadv.attacks.smoothadv import (
    SmoothAdvDDN,
    SmoothAdvPGD,
    ddn_step_sizes,
    default_ddn_gamma,
    majority_vote,
    normalize_direction,
)
from smoothadv.data.datasets import create_dataset
from smoothadv.models import load_checkpoint
from smoothadv.train import TrainConfig, train

from .conftest import LinearBinary

SIGMA = 0.25


@pytest.fixture(scope="module")
def digits_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits_paper")
    ckpt = train(TrainConfig(dataset="digits", out=str(out), epochs=20, batch=64, lr=0.1,
                             lr_step=100, sigma=SIGMA, progress=False, device="cpu"))
    return load_checkpoint(ckpt)[0]


def _batch(n=24):
    test = create_dataset("digits", "test")
    return test.images[:n], test.targets[:n]


def _noise(x, m, seed=0):
    g = torch.Generator().manual_seed(seed)
    return SIGMA * torch.randn((x.shape[0], m, *x.shape[1:]), generator=g)


def _ref_direction(model, x_adv, y, noise, no_grad):
    """The gradient of the paper's loss w.r.t. the perturbation (or its gradient-free
    estimate), per example, before normalization; it points *down* the loss for
    minimisation, so the ascent direction is its negative in the exact case."""
    b, m = noise.shape[:2]
    if no_grad and m > 1:
        with torch.no_grad():
            flat = (x_adv.unsqueeze(1) + noise).flatten(0, 1)
            p = torch.softmax(model(flat), 1).view(b, m, -1)
            p_y = p[torch.arange(b), :, y]  # [b, m]
            return -(p_y[:, :, None, None, None] * noise).mean(1)
    d = x_adv.clone().requires_grad_(True)
    flat = (d.unsqueeze(1) + noise).flatten(0, 1)
    logits = model(flat)
    if m == 1:
        loss = F.cross_entropy(logits, y, reduction="sum")
    else:
        avg = torch.softmax(logits, 1).view(b, m, -1).mean(1)
        loss = F.nll_loss(torch.log(avg.clamp(min=1e-20)), y)
    (g,) = torch.autograd.grad(loss, d)
    return g


def _ref_unit(g, gen):
    n = g.flatten(1).norm(dim=1)
    u = g / n.view(-1, 1, 1, 1)
    for i in torch.nonzero(n == 0).flatten().tolist():
        u[i] = torch.randn(u[i].shape, generator=gen)
    return u


def _renorm(delta, eps):
    n = delta.flatten(1).norm(dim=1)
    scale = torch.where(n > eps, eps / (n + 1e-7), torch.ones_like(n))
    return delta * scale.view(-1, 1, 1, 1)


def ref_pgd(model, x, y, noise, eps, steps, no_grad=False):
    delta = torch.zeros_like(x)
    gen = torch.Generator().manual_seed(5)
    for _ in range(steps):
        u = _ref_unit(_ref_direction(model, x + delta, y, noise, no_grad), gen)
        delta = delta + (2 * eps / steps) * u
        delta = (x + delta).clamp(0, 1) - x  # first the box
        delta = _renorm(delta, eps)  # then the ball
    return x + delta


def ref_ddn(model, x, y, noise, eps, steps, gamma, init_norm=1.0):
    b, m = noise.shape[:2]
    gen = torch.Generator().manual_seed(5)
    delta = torch.zeros_like(x)
    norm = torch.full((b,), init_norm)
    worst = torch.max(x, 1 - x).flatten(1).norm(dim=1)
    best_l2, best = worst.clone(), torch.zeros_like(x)
    for t in range(steps):
        size = 0.01 + 0.99 * (1 + math.cos(math.pi * (t + 1) / steps)) / 2
        l2 = delta.flatten(1).norm(dim=1)
        with torch.no_grad():
            hard = model((x + delta).unsqueeze(1).add(noise).flatten(0, 1)).argmax(1)
        vote = hard.view(b, m).mode(1).values
        adv = vote != y
        better = adv & (l2 < best_l2)
        best_l2[better], best[better] = l2[better], delta[better]
        u = _ref_unit(_ref_direction(model, x + delta, y, noise, False), gen)
        delta = delta + size * u
        norm = torch.where(adv, norm * (1 - gamma), norm * (1 + gamma))
        norm = torch.min(norm, worst)
        delta = delta * (norm / delta.flatten(1).norm(dim=1)).view(-1, 1, 1, 1)
        delta = (torch.round((x + delta) * 255) / 255).clamp(0, 1) - x
    best = _renorm(best, eps)
    return x + torch.round(best * 255) / 255


@pytest.mark.parametrize("m,estimator", [(1, "grad"), (4, "grad"), (4, "no_grad"),
                                         (1, "no_grad")])
def test_pgd_matches_the_papers_rules(digits_model, m, estimator):
    x, y = _batch()
    noise = _noise(x, m)
    smooth = Smooth(digits_model, 10, SIGMA)
    ours = SmoothAdvPGD(epsilon=0.5, steps=7, num_noise_vectors=m, estimator=estimator)(
        smooth, x, y, noise=noise, generator=torch.Generator().manual_seed(5))
    ref = ref_pgd(digits_model, x, y, noise, 0.5, 7, no_grad=estimator == "no_grad")
    assert torch.allclose(ours, ref, atol=2e-5)


@pytest.mark.parametrize("m", [1, 4])
def test_ddn_matches_the_papers_rules(digits_model, m):
    x, y = _batch()
    noise = _noise(x, m, seed=3)
    smooth = Smooth(digits_model, 10, SIGMA)
    eps, steps = 0.5, 8
    gamma = default_ddn_gamma(eps, steps)
    ours = SmoothAdvDDN(epsilon=eps, steps=steps, num_noise_vectors=m)(
        smooth, x, y, noise=noise, generator=torch.Generator().manual_seed(5))
    ref = ref_ddn(digits_model, x, y, noise, eps, steps, gamma)
    assert (ours - ref).abs().max() <= 1 / 255 + 1e-6  # a rounding tie at most
    assert (ours - ref).abs().gt(1e-5).float().mean() < 0.01
    assert not torch.equal(ours, x)  # some inputs were broken


def test_pgd_clips_before_projecting():
    # a linear model pushing every pixel down; half the pixels start near 0 and are clipped.
    # Clipping first and rescaling second leaves the perturbation exactly at norm ε; the
    # opposite order (ball, then box) leaves it short.
    model = LinearBinary(torch.ones(16), -4.0)
    x = torch.full((1, 1, 4, 4), 0.5)
    x.view(-1)[:8] = 0.02
    y = torch.ones(1, dtype=torch.long)
    eps = 0.6
    smooth = Smooth(model, 2, SIGMA)
    x_adv = SmoothAdvPGD(epsilon=eps, steps=10)(smooth, x, y, noise=torch.zeros(1, 1, 1, 4, 4))
    assert (x_adv - x).norm().item() == pytest.approx(eps, abs=1e-5)
    assert x_adv.min() >= 0
    # the opposite order, for contrast
    delta = torch.zeros_like(x)
    for _ in range(10):
        delta = delta - 0.12 * torch.ones_like(x) / 4
        delta = delta * min(1.0, eps / delta.norm().item())
        delta = (x + delta).clamp(0, 1) - x
    assert delta.norm().item() < eps - 0.005


def test_zero_gradient_becomes_an_unnormalized_normal_draw():
    g = torch.zeros(3, 1, 4, 4)
    g[1] = 2.0
    out = normalize_direction(g, torch.Generator().manual_seed(0))
    expected = torch.randn((2, 1, 4, 4), generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[0], expected[0]) and torch.equal(out[2], expected[1])
    assert out[0].norm().item() != pytest.approx(1.0, abs=1e-3)  # not normalized
    assert out[1].norm().item() == pytest.approx(1.0)


def test_no_grad_with_one_draw_takes_the_exact_gradient(digits_model):
    x, y = _batch(16)
    noise = _noise(x, 1)
    smooth = Smooth(digits_model, 10, SIGMA)
    for estimator in ("no_grad", "no_grad_cv"):
        f = smooth.base_classifier
        a = SmoothAdvPGD(epsilon=0.5, steps=1, estimator=estimator).evaluate(f, x, y, noise)
        b = SmoothAdvPGD(epsilon=0.5, steps=1).evaluate(smooth.base_classifier, x, y, noise)
        assert torch.equal(a.direction, b.direction)
        assert (a.direction.flatten(1).norm(dim=1) > 0).all()


def test_one_draw_gradient_free_attack_beats_a_random_walk(digits_model):
    x, y = _batch(96)
    smooth = Smooth(digits_model, 10, SIGMA)
    eval_noise = _noise(x, 256, seed=11)

    def g_y(points):
        with torch.no_grad():
            return smooth.soft_forward(points, noise=eval_noise)[torch.arange(len(y)), y]

    eps, steps = 1.0, 10
    attacked = SmoothAdvPGD(epsilon=eps, steps=steps, estimator="no_grad")(
        smooth, x, y, noise=_noise(x, 1, seed=4))
    gen = torch.Generator().manual_seed(9)
    walk = torch.zeros_like(x)
    for _ in range(steps):  # the same step sizes and projection, random directions
        walk = walk + (2 * eps / steps) * normalize_direction(torch.randn(x.shape, generator=gen))
        walk = ((x + walk).clamp(0, 1) - x).renorm(p=2, dim=0, maxnorm=eps)
    before = g_y(x)
    drop_attack = (before - g_y(attacked)).mean().item()
    drop_walk = (before - g_y(x + walk)).mean().item()
    assert drop_attack > drop_walk + 0.1, (drop_attack, drop_walk)


def test_ddn_step_sizes():
    steps = 8
    sizes = ddn_step_sizes(steps)
    expected = [0.01 + 0.99 * (1 + math.cos(math.pi * (t + 1) / steps)) / 2 for t in range(steps)]
    assert sizes == pytest.approx(expected, abs=1e-12)
    assert sizes[-1] == pytest.approx(0.01)
    # the same values as SGD(lr=1) under CosineAnnealingLR(T_max=T, eta_min=0.01) stepped
    # before each step
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps, eta_min=0.01)
    seen = []
    for _ in range(steps):
        opt.step()
        sched.step()
        seen.append(opt.param_groups[0]["lr"])
    assert sizes == pytest.approx(seen, abs=1e-9)


class _Table(nn.Module):
    """Logits looked up by the rounded value of the first pixel (0, 1 or 2)."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(torch.tensor(table), requires_grad=False)
        self.dummy = nn.Parameter(torch.zeros(()))

    def forward(self, x):
        idx = x.flatten(1)[:, 0].round().long().clamp(0, 2)
        return self.table[idx] + self.dummy * x.flatten(1).sum(1, keepdim=True)


def test_ddn_decides_by_the_majority_vote_of_hard_labels():
    # draw 0 lands on class 0 with p ≈ 1, draws 1 and 2 on class 1 with p = 0.6: G picks
    # class 0, the vote class 1
    x = torch.zeros(1, 1, 2, 2)
    noise = torch.zeros(1, 3, 1, 2, 2)
    noise[0, :, 0, 0, 0] = torch.tensor([0.0, 1.0, 1.0])
    p = torch.tensor([[1.0, 1e-9], [0.4, 0.6], [0.4, 0.6]])
    model = _Table(p.log().tolist())
    smooth = Smooth(model, 2, SIGMA)
    y = torch.zeros(1, dtype=torch.long)
    ddn = SmoothAdvDDN(epsilon=0.5, steps=2, num_noise_vectors=3)
    step = ddn.evaluate(smooth.base_classifier, x, y, noise)
    assert step.probs.argmax(1).item() == 0  # G: (1 + 0.4 + 0.4)/3 = 0.6 for class 0
    assert step.vote.item() == 1  # two of three hard labels say 1
    assert ddn._adversarial(step, y).item()
    soft = SmoothAdvDDN(epsilon=0.5, steps=2, num_noise_vectors=3, decision="soft")
    assert not soft._adversarial(step, y).item()
    assert majority_vote(torch.tensor([[2, 1, 2, 0]])).item() == 2


def test_ddn_returns_x_for_an_input_it_never_breaks():
    model = LinearBinary(torch.ones(16), 100.0)  # always class 1
    x = torch.rand(4, 1, 4, 4)
    y = torch.ones(4, dtype=torch.long)
    out = SmoothAdvDDN(epsilon=0.5, steps=6, num_noise_vectors=2)(Smooth(model, 2, SIGMA), x, y)
    assert torch.equal(out, x)


class _FarFrom(nn.Module):
    """Class 1 exactly when the input is farther than 0.9 from a fixed point (class 0 near)."""

    def __init__(self, centre):
        super().__init__()
        self.centre = nn.Parameter(centre.clone(), requires_grad=False)

    def forward(self, x):
        d = (x - self.centre).flatten(1).norm(dim=1)
        return torch.stack([torch.zeros_like(d), 10 * (d - 0.9)], dim=1)


def test_ddn_norm_budget_starts_at_init_norm_not_epsilon():
    # only points farther than 0.9 are adversarial. The budget starts at 1.0 (not capped at
    # ε = 0.1), so the first step lands at norm 1.05 and is adversarial: the answer is that δ
    # rescaled onto the ε-ball. Capping the budget at ε would never find one and return x.
    x = torch.full((1, 1, 4, 4), 0.5)
    smooth = Smooth(_FarFrom(x[0]), 2, SIGMA)
    y = torch.zeros(1, dtype=torch.long)
    noise = torch.zeros(1, 1, 1, 4, 4)
    out = SmoothAdvDDN(epsilon=0.1, steps=4, gamma=0.05)(smooth, x, y, noise=noise)
    assert (out - x).norm().item() == pytest.approx(0.1, abs=4 / 510)
    capped = SmoothAdvDDN(epsilon=0.1, steps=4, gamma=0.05, init_norm=0.1)
    assert torch.equal(capped(smooth, x, y, noise=noise), x)
