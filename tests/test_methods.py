"""Each training method against a reference loop written from its authors' rules (in the
style of their code: one tensor per draw, draw-major concatenation), on a small conv net with
BatchNorm in float64: the loss and every parameter's gradient agree to 1e-6 relative. Then the
rules that are easy to get wrong, pinned one by one."""

import copy
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from smoothadv.errors import UserError
from smoothadv.methods import create_method, list_methods
from smoothadv.methods.catrs import rms_restandardise
from smoothadv.methods.consistency import consistency_pgd
from smoothadv.methods.smoothmix import smoothmix_walk
from smoothadv.train import fit_batch

SIGMA = 0.5
K = 5


class BNNet(nn.Module):
    """conv → BatchNorm → ReLU → linear: every train-mode pass depends on its batch."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 6 * 6, K)

    def forward(self, x):
        return self.fc(F.relu(self.bn(self.conv(x))).flatten(1))


def _setup(b=6, m=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    net = BNNet().double()
    for p in net.parameters():  # larger weights: decisive, varied predictions
        p.data.normal_(0, 0.6, generator=g)
    x = torch.rand(b, 1, 6, 6, generator=g, dtype=torch.float64)
    y = torch.randint(0, K, (b,), generator=g)
    noise = torch.randn(b, m, 1, 6, 6, generator=g, dtype=torch.float64)
    return net, x, y, noise


def _grads(net, loss):
    net.zero_grad()
    loss.backward()
    return [p.grad.clone() for p in net.parameters()]


def _agree(method, reference, b=6, m=2, epoch=0, seed=0, **draws):
    net, x, y, noise = _setup(b, m, seed)
    ours, ref_net = net, copy.deepcopy(net)
    ours.train()
    ref_net.train()
    loss, logs = method.loss(ours, x, y, noise, epoch, **draws)
    assert ours.training and all(p.requires_grad for p in ours.parameters())
    g_ours = _grads(ours, loss)
    ref = reference(ref_net, x, y, [noise[:, j] * SIGMA for j in range(m)], **draws)
    g_ref = _grads(ref_net, ref)
    assert torch.allclose(loss, ref, rtol=1e-6, atol=0), (loss.item(), ref.item())
    # the conv bias's gradient is 0 up to rounding (BatchNorm removes it): scale-free atol
    scale = max(r.abs().max().item() for r in g_ref)
    for a, r in zip(g_ours, g_ref):
        assert torch.allclose(a, r, rtol=1e-6, atol=1e-9 * scale), (a, r)
    return loss, logs, g_ours, (net, x, y, noise)


def _cat(x, noises):
    return torch.cat([x + n for n in noises], dim=0)


def _chunks(logits, m):
    return list(torch.chunk(logits, m, dim=0))


# ------------------------------------------------------------------------ stability


def _ref_stability(net, x, y, noises, lbd=2.0):
    clean = net(x)
    noisy = net(x + noises[0])
    stab = sum(-(F.softmax(clean[i], 0) * F.log_softmax(noisy[i], 0)).sum()
               for i in range(len(x))) / len(x)
    return F.cross_entropy(clean, y) + lbd * stab


def test_stability_matches_reference():
    method = create_method("stability", sigma=SIGMA)
    assert method.lbd == 2.0 and method.split == "none"
    _agree(method, _ref_stability, m=1)


def test_stability_clean_softmax_not_detached():
    method = create_method("stability", sigma=SIGMA)
    _, _, g, (net, x, y, noise) = _agree(method, _ref_stability, m=1)
    net.train()
    clean = net(x)
    noisy = net(x + SIGMA * noise[:, 0])
    detached = F.cross_entropy(clean, y) + 2.0 * -(clean.softmax(1).detach()
                                                   * noisy.log_softmax(1)).sum(1).mean()
    g_det = _grads(net, detached)
    assert not all(torch.allclose(a, b) for a, b in zip(g, g_det))


# --------------------------------------------------------------------------- MACER


def _ref_macer(net, x, y, noises, lbd=12.0, beta=16.0, gamma=8.0, sigma=SIGMA):
    b, m = len(x), len(noises)
    out = torch.stack(_chunks(net(_cat(x, noises)), m), dim=1)  # [B, m, K]
    total_cl = 0.0
    total_rl = 0.0
    normal = torch.distributions.Normal(torch.tensor(0.0, dtype=x.dtype),
                                        torch.tensor(1.0, dtype=x.dtype))
    for i in range(b):
        p = F.softmax(out[i], dim=1).mean(0)
        total_cl = total_cl - torch.log(p[y[i]] + 1e-10)
        pb = F.softmax(beta * out[i], dim=1).mean(0)
        values, idx = pb.sort(descending=True)
        if idx[0] != y[i]:
            continue
        with torch.no_grad():
            xi = normal.icdf(values[0]) - normal.icdf(values[1])
        if not torch.isfinite(xi) or xi > gamma:
            continue
        xi = normal.icdf(values[0]) - normal.icdf(values[1])
        total_rl = total_rl + sigma / 2 * (gamma - xi)
    return (total_cl + lbd * total_rl) / b


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_macer_matches_reference(seed):
    method = create_method("macer", sigma=SIGMA, lbd=12.0)
    assert method.num_noise == 16 and method.split == "none"
    _, logs, _, _ = _agree(method, _ref_macer, m=16, seed=seed)
    if seed == 0:
        assert 0 < logs["counted"] < 6, logs  # some, not all, inputs count here


def test_macer_counts_and_divides_by_all_inputs():
    method = create_method("macer", sigma=SIGMA, lbd=12.0)
    net, x, y, noise = _setup(6, 16)
    net.train()
    loss, logs = method.loss(net, x, y, noise)
    # with λ = 0 the loss is CL / B: a sum over inputs divided by all B
    zero = create_method("macer", sigma=SIGMA, lbd=0.0)
    net.train()
    cl_only, _ = zero.loss(copy.deepcopy(net), x, y, noise)
    assert math.isclose(cl_only.item(), logs["cl"], rel_tol=1e-12)
    assert math.isclose(loss.item(), logs["cl"] + 12.0 * logs["rl"], rel_tol=1e-12)
    # labels that are never the top class of p̄β: nothing counts, the robustness term is 0,
    # and the loss is still divided by all B
    with torch.no_grad():
        net.eval()
        rows = (x.unsqueeze(1) + SIGMA * noise).flatten(0, 1)
        top = (16 * net(rows)).softmax(-1).view(6, 16, K).mean(1).argmax(1)
    wrong = (top + 1) % K
    net.train()
    loss_wrong, logs_wrong = method.loss(copy.deepcopy(net), x, wrong, noise)
    assert logs_wrong["counted"] == 0 and logs_wrong["rl"] == 0
    assert math.isclose(loss_wrong.item(), logs_wrong["cl"], rel_tol=1e-12)
    # deferred: λ = 0 for the first epochs (σ = 1.0 re-run default: 51)
    deferred = create_method("macer", sigma=1.0)
    assert deferred.lbd == 12.0 and deferred.deferred == 51
    assert deferred.lambda_at(50) == 0.0 and deferred.lambda_at(51) == 12.0
    assert create_method("macer", sigma=0.5).lbd == 6.0


# ---------------------------------------------------------------------- consistency


def _ref_consistency(net, x, y, noises, lbd=10.0, eta=0.5):
    m = len(noises)
    logits = net(_cat(x, noises))
    xent = F.cross_entropy(logits, y.repeat(m))
    chunks = _chunks(logits, m)
    softmax = [F.softmax(z, dim=1) for z in chunks]
    avg = sum(softmax) / m
    kl = sum(F.kl_div(F.log_softmax(z, dim=1), avg, reduction="none").sum(1)
             for z in chunks) / m
    ent = (-avg * torch.log(avg.clamp(min=1e-20))).sum(1)
    return xent + (lbd * kl + eta * ent).mean()


def test_consistency_matches_reference():
    method = create_method("consistency", sigma=SIGMA)
    assert (method.lbd, method.eta, method.num_noise, method.split) == (10.0, 0.5, 2, "floor")
    _agree(method, _ref_consistency, m=2)


def test_consistency_average_carries_gradient():
    method = create_method("consistency", sigma=SIGMA)
    _, _, g, (net, x, y, noise) = _agree(method, _ref_consistency, m=2)
    net.train()
    logits = torch.stack(_chunks(net(_cat(x, [SIGMA * noise[:, j] for j in range(2)])), 2), 1)
    avg = logits.softmax(-1).mean(1).detach()
    kl = (avg.unsqueeze(1) * (avg.unsqueeze(1).log() - logits.log_softmax(-1))).sum(-1).mean()
    ent = -(avg * avg.log()).sum(-1).mean()
    detached = F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(2)) + 10 * kl + 0.5 * ent
    assert not all(torch.allclose(a, b) for a, b in zip(g, _grads(net, detached)))


def _ref_consistency_pgd(net, x, y, noises, eps, steps):
    adv = x.detach()
    alpha = 2 * eps / steps
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    for _ in range(steps):
        adv.requires_grad_()
        avg = sum(F.softmax(net(adv + n), 1) for n in noises) / len(noises)
        loss = F.nll_loss(torch.log(avg.clamp(min=1e-20)), y)
        grad = torch.autograd.grad(loss, [adv])[0]
        grad = grad / (grad.reshape(len(x), -1).norm(dim=1).view(-1, 1, 1, 1) + 1e-8)
        adv = adv + alpha * grad
        eta = (adv - x).renorm(p=2, dim=0, maxnorm=eps)
        adv = torch.clamp(x + eta, 0, 1).detach()
    for p in net.parameters():
        p.requires_grad_(True)
    net.train()
    return adv


def test_consistency_with_pgd_matches_reference_and_projects_before_clipping():
    method = create_method("consistency", sigma=SIGMA, attack="pgd")
    assert (method.epsilon, method.steps, method.num_noise, method.lbd) == (2.0, 10, 2, 1.0)
    assert method.epsilon_at(0) == pytest.approx(0.2)  # warm-up over 10 epochs

    def reference(net, x, y, noises):
        adv = _ref_consistency_pgd(net, x, y, noises, method.epsilon_at(3), 10)
        return _ref_consistency(net, adv, y, noises, lbd=1.0)

    _agree(method, reference, m=2, epoch=3)
    # the order: rescale, then clip (x′ can end inside the ball); clipping first differs
    net, x, y, noise = _setup()
    x = x.clamp(0.05, 0.95) * 0 + 0.97  # near the top of the box: clipping bites
    delta = SIGMA * noise
    ours = consistency_pgd(net, x, y, delta, 1.5, 2)
    net.eval()
    assert ((ours - x).flatten(1).norm(dim=1) <= 1.5 + 1e-9).all()
    assert ours.max() <= 1 and ours.min() >= 0
    ref = _ref_consistency_pgd(copy.deepcopy(net), x, y, list(delta.unbind(1)), 1.5, 2)
    assert torch.allclose(ours, ref, atol=1e-12)


# ------------------------------------------------------------------------ SmoothMix


def _ref_smoothmix(net, x, y, noises, mix_weights, steps=4, alpha=1.0, eta=5.0, mix_step=1,
                   warm=0.4):
    m = len(noises)
    # the attack, eval mode with frozen weights
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    adv, init = x.detach(), x.detach()
    for t in range(steps):
        if t == mix_step:
            init = adv.detach()
        adv.requires_grad_()
        avg = sum(F.softmax(net(adv + n), 1) for n in noises) / m
        loss = F.nll_loss(torch.log(avg.clamp(min=1e-20)), y, reduction="sum")
        grad = torch.autograd.grad(loss, [adv])[0]
        grad = grad / (grad.reshape(len(x), -1).norm(dim=1).view(-1, 1, 1, 1) + 1e-8)
        adv = torch.clamp(adv + alpha * grad, 0, 1).detach()
    init = torch.clamp(x + (init - x).renorm(p=2, dim=0, maxnorm=warm * alpha * mix_step), 0, 1)
    for p in net.parameters():
        p.requires_grad_(True)
    net.train()
    logits = net(_cat(init, noises))
    avg = sum(F.softmax(z, 1) for z in _chunks(logits, m)) / m
    xent = F.cross_entropy(logits, y.repeat(m), reduction="none")
    lam = mix_weights
    mixed_x = (1 - lam).view(-1, 1, 1, 1) * init + lam.view(-1, 1, 1, 1) * adv
    mixed_y = (1 - lam).view(-1, 1) * avg + lam.view(-1, 1) / K
    out = F.log_softmax(net(_cat(mixed_x, noises)), 1)
    correct = (avg.argmax(1) == y).double().repeat(m)
    kl = F.kl_div(out, mixed_y.repeat(m, 1), reduction="none").sum(1)
    return xent.mean() + eta * warm * (correct * kl).mean()


def test_smoothmix_matches_reference():
    method = create_method("smoothmix", sigma=SIGMA)
    assert (method.steps, method.alpha, method.eta, method.mix_step) == (4, 1.0, 5.0, 1)
    lam = torch.tensor([0.1, 0.3, 0.0, 0.45, 0.2, 0.05], dtype=torch.float64)
    _agree(method, _ref_smoothmix, m=2, epoch=3, mix_weights=lam)
    assert create_method("smoothmix", sigma=0.25).mix_step == 0


def test_smoothmix_walk_is_unbounded_and_x0_is_x_at_mix_step_0():
    net, x, y, noise = _setup()
    delta = SIGMA * noise
    x0, x_t = smoothmix_walk(net, x * 0.5 + 0.25, y, delta, steps=8, alpha=2.0, mix_step=0,
                             pull=0.0)
    start = x * 0.5 + 0.25
    assert torch.equal(x0, start)  # mix_step 0: x⁰ = x
    assert (x_t - start).flatten(1).norm(dim=1).max() > 2.0  # no ε-ball holds it
    assert x_t.min() >= 0 and x_t.max() <= 1


def test_smoothmix_average_carries_gradient():
    method = create_method("smoothmix", sigma=SIGMA)
    lam = torch.full((6,), 0.25, dtype=torch.float64)
    _, _, g, (net, x, y, noise) = _agree(method, _ref_smoothmix, m=2, epoch=3, mix_weights=lam)

    def detached_ref(net, x, y, noises, mix_weights):
        real_softmax = F.softmax

        def softmax(t, dim):  # p̄ only enters through the clean forward's softmax
            return real_softmax(t, dim).detach() if t.requires_grad and net.training else \
                real_softmax(t, dim)

        F.softmax = softmax
        try:
            return _ref_smoothmix(net, x, y, noises, mix_weights)
        finally:
            F.softmax = real_softmax

    net2, x2, y2, noise2 = _setup()
    net2.train()
    g_det = _grads(net2, detached_ref(net2, x2, y2, [SIGMA * noise2[:, j] for j in range(2)],
                                      lam))
    assert not all(torch.allclose(a, b) for a, b in zip(g, g_det))


# --------------------------------------------------------------------------- CAT-RS


def _ref_catrs(net, x, y, noises, soft_targets, accepted, eps=1.0, steps=4, lbd=1.0):
    m, b = len(noises), len(x)
    logits0 = net(_cat(x, noises))
    chunks0 = _chunks(logits0, m)
    # the attack on the noise (eval, frozen)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    noise0 = torch.cat(noises, 0)
    rows = b * m
    mu0 = noise0.view(rows, -1).mean(1).view(-1, 1, 1, 1)
    s0 = (noise0 ** 2).view(rows, -1).mean(1).sqrt().view(-1, 1, 1, 1)
    noise = noise0.detach()
    x_r = x.repeat(m, 1, 1, 1)
    alpha = 2 * eps / steps
    for _ in range(steps):
        noise.requires_grad_()
        parts = _chunks(net(x_r + noise), m)
        loss = (sum(F.kl_div(F.log_softmax(z, 1), soft_targets, reduction="none").sum(1)
                    for z in parts) / m).sum()
        grad = torch.autograd.grad(loss, [noise])[0]
        grad = grad / (grad.reshape(rows, -1).norm(dim=1).view(-1, 1, 1, 1) + 1e-8)
        noise = noise + alpha * grad
        noise = noise0 + (noise - noise0).renorm(p=2, dim=0, maxnorm=eps)
        mu = noise.view(rows, -1).mean(1).view(-1, 1, 1, 1)
        s = (noise ** 2).view(rows, -1).mean(1).sqrt().view(-1, 1, 1, 1)
        noise = (mu0 + (noise - mu) / s * s0).detach()
    for p in net.parameters():
        p.requires_grad_(True)
    net.train()
    logits = net(x_r + noise)
    xent = torch.cat([F.cross_entropy(z, y, reduction="none").view(-1, 1) for z in chunks0], 1)
    xent, _ = xent.sort()
    tril = torch.ones(m + 1, m, dtype=x.dtype).tril(-1)
    k = accepted.long().clamp(min=1)
    low = (xent * tril[k]).mean(1)
    kls = torch.cat([F.kl_div(F.log_softmax(z, 1), soft_targets, reduction="none")
                     .sum(1, keepdim=True) for z in _chunks(logits, m)], 1)
    high, _ = kls.max(1)
    return (low + lbd * high * (k == m)).mean()


def test_catrs_matches_reference():
    method = create_method("catrs", sigma=SIGMA)
    assert (method.num_noise, method.epsilon, method.steps, method.lbd) == (4, 1.0, 4, 1.0)
    g = torch.Generator().manual_seed(5)
    soft = torch.softmax(torch.randn(6, K, generator=g, dtype=torch.float64) * 2, 1)
    soft[0] = torch.tensor([1.0, 0, 0, 0, 0], dtype=torch.float64)  # zero entries: 0·log 0
    accepted = torch.tensor([0, 1, 2, 4, 4, 3])
    _agree(method, _ref_catrs, m=4, soft_targets=soft, accepted=accepted)


def test_catrs_rms_restandardisation_and_low_divided_by_m():
    g = torch.Generator().manual_seed(1)
    d0 = torch.randn(5, 1, 4, 4, generator=g, dtype=torch.float64) * 0.5 + 0.1
    mu0 = d0.flatten(1).mean(1).view(-1, 1, 1, 1)
    s0 = d0.flatten(1).pow(2).mean(1).sqrt().view(-1, 1, 1, 1)
    moved = torch.randn(5, 1, 4, 4, generator=g, dtype=torch.float64) * 2 - 0.3
    out = rms_restandardise(moved, mu0, s0)
    assert torch.allclose(out.flatten(1).mean(1), mu0.flatten(), atol=1e-12)
    # the RMS of (δ − μ)/s · s0 is s0·std/RMS, and the mean is restored: the re-standardised
    # row's RMS is √(μ0² + s0²·(1 − μ²/s²)), not s0 (the authors' rule, not a std rescale)
    mu = moved.flatten(1).mean(1)
    s = moved.flatten(1).pow(2).mean(1).sqrt()
    expect = torch.sqrt(mu0.flatten() ** 2 + s0.flatten() ** 2 * (1 - mu ** 2 / s ** 2))
    assert torch.allclose(out.flatten(1).pow(2).mean(1).sqrt(), expect, atol=1e-12)
    # L_low with K = 1 is the smallest CE divided by m (not by K)
    method = create_method("catrs", sigma=SIGMA, lbd=0.0)
    net, x, y, noise = _setup(6, 4)
    net.train()
    soft = torch.full((6, K), 1.0 / K, dtype=torch.float64)
    loss, logs = method.loss(copy.deepcopy(net), x, y, noise, soft_targets=soft,
                             accepted=torch.ones(6))
    net.train()
    with torch.no_grad():
        ce = F.cross_entropy(net((x.unsqueeze(1) + SIGMA * noise).flatten(0, 1)),
                             y.repeat_interleave(4), reduction="none").view(6, 4)
    assert math.isclose(loss.item(), (ce.min(1).values / 4).mean().item(), rel_tol=1e-9)


# ------------------------------------------------------------ the loop around them


class CountingSGD(torch.optim.SGD):
    def __init__(self, params):
        super().__init__(params, lr=0.01)
        self.calls = 0

    def step(self, closure=None):
        self.calls += 1
        return super().step(closure)


@pytest.mark.parametrize("name,steps,rows", [
    ("consistency", 2, 128), ("smoothmix", 2, 128), ("catrs", 4, 64), ("macer", 1, 256),
    ("stability", 1, 256)])
def test_mini_batch_optimizer_steps(name, steps, rows):
    from smoothadv import Smooth

    torch.manual_seed(0)
    net = BNNet()
    opt = CountingSGD(net.parameters())
    options = {"macer": dict(num_noise=2), "stability": {}}.get(name, dict(steps=1))
    method = create_method(name, sigma=0.25, **options)
    sizes = []
    net.register_forward_hook(lambda mod, inp, out: sizes.append(inp[0].shape[0])
                              if mod.training else None)
    x = torch.rand(257, 1, 6, 6)  # one more than 256: the remainder is dropped
    y = torch.randint(0, K, (257,))
    soft = torch.full((257, K), 1.0 / K) if name == "catrs" else None
    fit_batch(net, opt, method, Smooth(net, K, 0.25), x, y, 0, soft_targets=soft)
    assert opt.calls == steps
    m = method.num_noise
    if method.split == "floor":
        assert set(sizes) == {rows * m}  # ⌊257/m⌋ images × m draws per train forward


def test_every_method_is_registered_and_bad_settings_fail_in_one_line():
    assert set(list_methods()) >= {"gaussian", "smoothadv", "stability", "macer",
                                   "consistency", "smoothmix", "catrs"}
    with pytest.raises(UserError, match="give --lbd"):
        create_method("stability", sigma=0.3)
    with pytest.raises(UserError, match="m ≥ 2"):
        create_method("consistency", sigma=0.25, num_noise=1)
    with pytest.raises(UserError, match="--attack must be one of pgd"):
        create_method("consistency", sigma=0.25, attack="ddn")
    net, x, y, noise = _setup(6, 4)
    with pytest.raises(UserError, match="soft targets"):
        create_method("catrs", sigma=SIGMA).loss(net, x, y, noise)


# ------------------------------------------------------------- resume and processes


def _soft_targets(tmp_path):
    """p_b for the digits training split from a barely trained teacher (50 draws)."""
    from smoothadv import Smooth
    from smoothadv.data.datasets import create_dataset
    from smoothadv.labels.soft import soft_labels
    from smoothadv.models import load_checkpoint
    from smoothadv.train import TrainConfig, train

    teacher = train(TrainConfig(dataset="digits", out=str(tmp_path / "teacher"), epochs=1,
                                batch=64, progress=False, device="cpu"))
    model, _ = load_checkpoint(teacher)
    return soft_labels(Smooth(model, 10, 0.25), create_dataset("digits", "train"),
                       tmp_path / "pb.pt", num=50, progress=False)


@pytest.mark.parametrize("method,extra", [
    ("stability", {}), ("macer", dict(num_noise=4)), ("consistency", {}),
    ("consistency", dict(attack="pgd", steps=2, epsilon=0.5)), ("smoothmix", dict(steps=2)),
    ("catrs", dict(steps=2))])
def test_resume_is_bit_equal(tmp_path, method, extra):
    from smoothadv.models import read_checkpoint
    from smoothadv.train import TrainConfig, train

    if method == "catrs":
        extra = dict(extra, soft_targets=str(_soft_targets(tmp_path)))
    kw = dict(dataset="digits", batch=64, lr_step=10, progress=False, device="cpu",
              train_subset=256, test_subset=64, method=method, sigma=0.5, lr_delay=1,
              options=extra)
    train(TrainConfig(out=str(tmp_path / "a"), epochs=2, **kw))
    train(TrainConfig(out=str(tmp_path / "b"), epochs=1, **kw))
    train(TrainConfig(out=str(tmp_path / "b"), epochs=2, resume=True, **kw))
    ca = read_checkpoint(tmp_path / "a" / "checkpoint.pth.tar")
    cb = read_checkpoint(tmp_path / "b" / "checkpoint.pth.tar")
    assert ca["method"] == method and ca["hparams"]["method"] == method
    for k, v in ca["state_dict"].items():
        assert torch.equal(v, cb["state_dict"][k]), k
    log_a = (tmp_path / "a" / "log.tsv").read_text().splitlines()
    assert [r.split("\t")[2] for r in log_a[1:]] == ["0.1", "0.1"]  # lr_delay keeps epoch 1


def test_lr_delay_schedule():
    from smoothadv.train import TrainConfig, _scheduler

    opt = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)
    sched = _scheduler(opt, TrainConfig(dataset="digits", out="x", lr_step=50, lr_delay=1))
    lrs = []
    for _ in range(103):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[50] == 0.1 and math.isclose(lrs[51], 0.01) and math.isclose(lrs[100], 0.01)
    assert math.isclose(lrs[101], 0.001)  # the step(epoch) code: 0–50, 51–100, 101–


def test_new_methods_under_torchrun(tmp_path):
    import os
    import subprocess
    import sys

    from .conftest import ROOT

    pb = _soft_targets(tmp_path)
    for method, more in (("stability", []), ("catrs", ["--soft-targets", str(pb), "--steps",
                                                       "1"])):
        out = tmp_path / method
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "smoothadv", "train", "--dataset", "digits",
               "--epochs", "1", "--batch", "32", "--train-subset", "128", "--test-subset", "32",
               "--device", "cpu", "--method", method, "--sigma", "0.5", "--no-progress",
               "--out", str(out), *more]
        proc = subprocess.run(cmd, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="1"),
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert '"world_size": 2' in (out / "config.json").read_text()
