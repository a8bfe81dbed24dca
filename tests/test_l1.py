"""ℓ1 certificates: uniform, Laplace and splitting noise, the box-constrained radius and the
deterministic certificate, checked against closed forms, exhaustive enumeration, brute-force
worst cases and the false-certificate rate."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy.stats import norm

from smoothadv.errors import UserError
from smoothadv.noise import (
    LaplaceNoise,
    SplittingNoise,
    UniformNoise,
    box_l1_radius,
    create_noise,
    splitting_lambda,
)
from smoothadv.noise.splitting import bin_centres
from smoothadv.smoothing.smooth import Smooth
from smoothadv.stages.evaluation import AttackConfig, CertifyConfig, PredictConfig
from smoothadv.train import TrainConfig

SIDE = 4  # images [1, 4, 4]
PIXEL = 5  # the pixel the threshold classifier reads


class PixelThreshold(nn.Module):
    """f(x) = 1 if x_j > t else 0 for one pixel j: its ℓ1 (and ℓ2) distance to the decision
    boundary is x_j − t, and under any noise p_A = P(x_j + ε_j > t) is known exactly."""

    def __init__(self, t: float, pixel: int = PIXEL) -> None:
        super().__init__()
        self.t, self.pixel = t, pixel
        self.register_buffer("anchor", torch.zeros(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.flatten(1)[:, self.pixel] - self.t
        return torch.stack([-v, v], dim=1)


def _image(value: float, fill: float = 0.5) -> torch.Tensor:
    x = torch.full((1, SIDE, SIDE), fill)
    x.view(-1)[PIXEL] = value
    return x


def _exact_pa(noise, distance: float) -> float:
    if noise.kind == "uniform":
        return min(1.0, (distance + noise.lam) / (2 * noise.lam))
    if noise.kind == "laplace":
        return 1 - 0.5 * math.exp(-distance / noise.scale)
    return float(norm.cdf(distance / noise.sigma))


@pytest.mark.parametrize("kind", ["uniform", "laplace", "gaussian"])
@pytest.mark.parametrize("distance", [0.05, 0.2, 0.4])
def test_the_radius_of_the_exact_pa_is_the_distance_to_the_boundary(kind, distance):
    noise = create_noise(kind, 0.5)
    pa = _exact_pa(noise, distance)
    assert noise.radius(pa, "l1") == pytest.approx(distance, rel=1e-9)
    assert noise.p_needed(distance, "l1") == pytest.approx(pa, rel=1e-9)
    d = SIDE * SIDE
    scale = math.sqrt(d) if kind == "gaussian" else d
    assert noise.radius(pa, "linf", d) == pytest.approx(distance / scale, rel=1e-9)


@pytest.mark.parametrize("kind", ["uniform", "laplace"])
def test_the_empirical_pa_matches_the_exact_one(kind):
    """The sampler's p_A for the threshold classifier equals the closed form (so the radius
    formula is applied to the right distribution)."""
    noise = create_noise(kind, 0.5)
    distance = 0.2
    smooth = Smooth(PixelThreshold(0.3), 2, 0.5, noise=kind, norm="l1")
    x = _image(0.3 + distance)
    gen = [torch.Generator().manual_seed(0)]
    counts = smooth._counts(smooth._prepare(x[None], 10_000), 200_000, 10_000, gen)
    pa = counts[0, 1].item() / 200_000
    assert abs(pa - _exact_pa(noise, distance)) < 4 * math.sqrt(0.25 / 200_000)


@pytest.mark.parametrize("kind", ["uniform", "laplace"])
def test_certified_radii_stay_below_the_distance_and_approach_it(kind):
    sigma, t, distance = 0.5, 0.3, 0.35
    smooth = Smooth(PixelThreshold(t), 2, sigma, noise=kind, norm="l1")
    x = _image(t + distance)[None]
    radii = [smooth.certify_many(x, 100, n, 0.001, 10_000, seeds=[1])[0].radius
             for n in (1_000, 100_000)]
    assert all(r <= distance for r in radii)
    assert radii[0] < radii[1] and radii[1] > 0.9 * distance


def test_splitting_certificates_match_the_exact_probability():
    """Splitting changes the base classifier (f sees bin centres), so its smoothed classifier's
    distance is not the threshold's: p_A is computed exactly instead — over s ~ U[0, 2λ) the
    split pixel's centre exceeds t on a known set — and the certified radius never exceeds
    2λ(p_A − ½) and approaches it."""
    noise = SplittingNoise(0.25)
    t, value = 0.4, 0.62
    grid = (np.arange(200_000) + 0.5) / 200_000 * 2 * noise.lam  # offsets, finely
    centres = bin_centres(torch.tensor(value, dtype=torch.float64),
                          torch.tensor(grid), noise.lam).numpy()
    pa = float(np.mean(centres > t))
    bound = float(noise.radius(pa, "l1"))
    smooth = Smooth(PixelThreshold(t), 2, 0.25, noise="splitting", norm="l1")
    x = _image(value)[None]
    radii = [smooth.certify_many(x, 100, n, 0.001, 10_000, seeds=[1])[0].radius
             for n in (1_000, 100_000)]
    assert 0 < radii[0] < radii[1] <= bound and radii[1] > 0.9 * bound


def _worst_tv(lam: float, caps: np.ndarray, budget: float, rng, tries: int = 4000) -> float:
    """The largest total variation 1 − ∏(1 − t_i/2λ) found over random feasible shifts
    |δ_i| ≤ caps_i, Σ|δ_i| = budget, and over every vertex (coordinates filled in any order)."""
    best = 0.0
    for order in itertools.permutations(range(len(caps))):
        left, prod = budget, 1.0
        for i in order:
            take = min(caps[i], left)
            prod *= 1 - min(take, 2 * lam) / (2 * lam)
            left -= take
        if left <= 1e-12:
            best = max(best, 1 - prod)
    for _ in range(tries):
        w = rng.dirichlet(np.ones(len(caps))) * budget
        if np.all(w <= caps):
            best = max(best, 1 - np.prod(1 - np.minimum(w, 2 * lam) / (2 * lam)))
    return best


def test_the_box_radius_is_the_exact_worst_case_inside_the_box():
    rng = np.random.default_rng(0)
    lam = math.sqrt(3) * 1.0  # σ = 1: cubes wider than the box
    for _ in range(20):
        x = rng.uniform(0, 1, 4)
        caps = np.maximum(x, 1 - x)
        tau = rng.uniform(0.05, 0.45)
        r = box_l1_radius(tau, lam, x)
        assert r >= 2 * lam * tau * (1 - 1e-8) or r == pytest.approx(caps.sum())
        if r < caps.sum() * (1 - 1e-6):
            assert _worst_tv(lam, caps, r * (1 - 1e-6), rng) < tau  # nothing inside breaks it
            assert _worst_tv(lam, caps, min(r * (1 + 1e-3), caps.sum()), rng) >= tau  # tight


def test_the_box_radius_never_exceeds_the_distance_and_beats_the_plain_one_where_it_can():
    # exact p_A of the threshold classifier: box = plain = the distance (it is reachable)
    noise = UniformNoise(0.5)
    for value, t in ((0.9, 0.6), (0.55, 0.3), (0.2, 0.05)):
        x = _image(value).numpy()
        tau = _exact_pa(noise, value - t) - 0.5
        assert box_l1_radius(tau, noise.lam, x) == pytest.approx(value - t, rel=1e-6)
        assert box_l1_radius(tau, noise.lam, x) <= value - t
    # a confident p_A at σ = 1 (2λ = 3.46): the plain radius 2λ(p − ½) exceeds every pixel's
    # room in the box, so the box radius is larger — most for images near the box's middle
    wide = UniformNoise(1.0)
    plain = float(wide.radius(0.9, "l1"))
    middle = box_l1_radius(0.4, wide.lam, np.full(16, 0.5))
    edge = box_l1_radius(0.4, wide.lam, np.full(16, 0.98))
    assert plain < edge < middle


def test_box_certificates_from_sampling_hold(tmp_path):
    sigma, t, distance = 0.5, 0.3, 0.35
    smooth = Smooth(PixelThreshold(t), 2, sigma, noise="uniform", norm="l1")
    x = _image(t + distance)[None]
    plain = smooth.certify_many(x, 100, 50_000, 0.001, 10_000, seeds=[3])[0]
    boxed = smooth.certify_many(x, 100, 50_000, 0.001, 10_000, seeds=[3], box=True)[0]
    assert plain.radius <= boxed.radius <= distance


@pytest.mark.parametrize(("kind", "options"), [("uniform", {}), ("laplace", {}),
                                               ("uniform", {"two_sided": True})])
def test_false_certificates_stay_below_alpha(kind, options):
    """At p_A = 0.7 exactly, a radius above the true distance is a false certificate: over
    many independent runs they happen at most α of the time (plus three standard errors)."""
    alpha, runs = 0.1, 3000
    noise = create_noise(kind, 0.5)
    # the distance whose exact p_A is 0.7
    distance = float(noise.radius(0.7, "l1"))
    smooth = Smooth(PixelThreshold(0.2), 2, 0.5, noise=kind, norm="l1")
    xs = _image(0.2 + distance)[None].expand(runs, -1, -1, -1).contiguous()
    certs = smooth.certify_many(xs, 20, 200, alpha, 50_000, seeds=list(range(runs)), **options)
    wrong = np.mean([c.radius > distance + 1e-12 for c in certs])
    assert wrong <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / runs)
    assert wrong > 0.2 * alpha  # the test can fail: certificates do come close


# ------------------------------------------------------------------ deterministic (L&F)


def test_splitting_lambda_and_offsets():
    assert splitting_lambda(0.5) * 510 == round(math.sqrt(3) * 0.5 * 510)
    noise = SplittingNoise(0.05)
    assert noise.offsets_count == round(2 * noise.lam * 255) == 44
    x = torch.tensor([[[0.0, 10 / 255, 128 / 255, 1.0]]])
    j = torch.arange(44, dtype=torch.float64)
    # zero template: one offset (j + ½)/255 for every pixel
    copies = noise.offset_inputs(x, "zero")
    offsets = (j + 0.5) / 255
    direct = bin_centres(x.double().unsqueeze(0), offsets.view(-1, 1, 1, 1), noise.lam)
    assert torch.allclose(copies.double(), direct, atol=1e-6)
    assert copies.min() >= 0 and copies.max() <= 1
    # Levine & Feizi's template: pixel i's offset ((j + t_i) mod K + ½)/255, t from NumPy's
    # RandomState(0).randint(K, size=d)
    t = torch.from_numpy(np.random.RandomState(0).randint(44, size=4)).double()
    assert t.unique().numel() > 1
    offsets = ((j.view(-1, 1) + t.view(1, -1)) % 44 + 0.5) / 255
    direct = bin_centres(x.double().unsqueeze(0), offsets.view(44, 1, 1, 4), noise.lam)
    assert torch.allclose(noise.offset_inputs(x).double(), direct, atol=1e-6)
    assert torch.equal(noise.offset_inputs(x), noise.offset_inputs(x, "seed0"))
    assert not torch.equal(noise.offset_inputs(x, "seed1"), noise.offset_inputs(x))


def test_the_deterministic_certificate_holds_for_every_perturbation_inside(tmp_path):
    """Two pixels on the 8-bit grid and a linear classifier: every grid perturbation with
    ‖δ‖₁ < R keeps the deterministic prediction (enumerated), and R = (n_A − n_B)/510."""
    torch.manual_seed(0)

    class TwoPixelLinear(nn.Module):
        def forward(self, x):
            v = x.flatten(1) @ torch.tensor([1.0, -0.7]) - 0.2
            return torch.stack([-v, v], dim=1)

    model = TwoPixelLinear()
    smooth = Smooth(model, 2, 0.05, noise="splitting", norm="l1")
    for first in range(130, 256):  # a point whose p_A is neither ½ nor 1: a real test
        x = torch.tensor([[[first / 255, 120 / 255]]])
        cert, = smooth.certify_derandomized(x[None], batch_size=64)
        if 0.6 < cert.p_lower < 0.95:
            break
    K = smooth.noise.offsets_count
    inputs = smooth.noise.offset_inputs(x)
    counts = torch.bincount(model(inputs).argmax(1), minlength=2)
    assert cert.n == K and cert.n_a == int(counts.max())
    gap = abs(int(counts[1]) - int(counts[0]))
    assert cert.radius == pytest.approx(((gap - 1) // 2) / 255)
    assert cert.prediction == int(counts.argmax()) and cert.radius > 0
    steps = int(round(cert.radius * 255))
    a = (x.view(-1) * 255).round()
    checked = 0
    for d1 in range(-steps, steps + 1):  # the closed ball: ‖δ‖₁ ≤ R
        for d2 in range(-steps + abs(d1), steps - abs(d1) + 1):
            b = a + torch.tensor([d1, d2], dtype=a.dtype)
            if b.min() < 0 or b.max() > 255:
                continue
            moved, = smooth.certify_derandomized((b / 255).view(1, 1, 1, 2), batch_size=64)
            assert moved.prediction == cert.prediction, (d1, d2)
            checked += 1
    assert checked > 20


def test_the_deterministic_certificate_is_tight_somewhere():
    """A threshold on one pixel: the radius is where the prediction actually flips."""
    model = PixelThreshold(0.5, pixel=0)
    smooth = Smooth(model, 2, 0.05, noise="splitting", norm="l1")
    x = torch.zeros(1, 1, 2)
    x[0, 0, 0] = 150 / 255
    cert, = smooth.certify_derandomized(x[None], 64)
    flip = None
    for step in range(0, 60):
        y = x.clone()
        y[0, 0, 0] = (150 - step) / 255
        if smooth.certify_derandomized(y[None], 64)[0].prediction != cert.prediction:
            flip = step / 255
            break
    assert flip is not None and cert.radius < flip <= cert.radius + 2 * smooth.noise.lam


# ------------------------------------------------------------------------- refusals


def test_one_line_refusals():
    with pytest.raises(UserError, match="uniform noise certifies ℓ1"):
        CertifyConfig(checkpoint="a", out="o", noise="uniform")
    with pytest.raises(UserError, match="--box is an ℓ1 certificate"):
        CertifyConfig(checkpoint="a", out="o", noise="uniform", norm="linf", box=True)
    with pytest.raises(UserError, match="certificates of uniform and splitting"):
        CertifyConfig(checkpoint="a", out="o", noise="laplace", norm="l1", box=True)
    with pytest.raises(UserError, match="--derandomized is Levine & Feizi's"):
        CertifyConfig(checkpoint="a", out="o", noise="uniform", norm="l1", derandomized=True)
    with pytest.raises(UserError, match="--sound is the rounded Gaussian"):
        PredictConfig(checkpoint="a", out="o", noise="laplace", norm="l1", sound=True)
    with pytest.raises(UserError, match="ℓ2 attacks on the Gaussian"):
        AttackConfig(checkpoint="a", out="o", noise="uniform", norm="l1")
    with pytest.raises(UserError, match="method macer is defined for gaussian noise, not "
                                        "uniform"):
        TrainConfig(dataset="digits", out="o", method="macer", noise="uniform")
    with pytest.raises(UserError, match="--sequential tests p_A alone"):
        CertifyConfig(checkpoint="a", out="o", noise="uniform", norm="l1", sequential=True,
                      radii=(0.5,), two_sided=True)


def test_added_fields_keep_earlier_hashes():
    """noise, norm and the ℓ1 options entered the configs after runs existed: at their
    defaults they are left out of the hash (these values were computed before they existed)."""
    assert TrainConfig(dataset="digits", out="x").content_hash() == "387f69b9aaae3350"
    assert TrainConfig(dataset="cifar10", out="x", method="smoothadv",
                       sigma=0.5).content_hash() == "ad6e51120780dc71"
    assert CertifyConfig(checkpoint="a.pth", out="c.tsv").content_hash() == "d0b296d5fa31ac0f"
    assert PredictConfig(checkpoint="a.pth", out="c.tsv",
                         sigma=0.5).content_hash() == "3de52522aa0be8fd"
    moved = TrainConfig(dataset="digits", out="x", noise="uniform").content_hash()
    assert moved != "387f69b9aaae3350"


def test_training_draws_have_the_noise_and_sigma():
    x = torch.rand(64, 1, 8, 8)
    g = torch.Generator().manual_seed(0)
    for cls in (UniformNoise, LaplaceNoise):
        eps = cls(0.5).training_noise(x, 50, g)
        assert eps.shape == (64, 50, 1, 8, 8)
        assert float(eps.std()) == pytest.approx(1.0, abs=0.02)  # x + σ·ε: std σ
    split = SplittingNoise(0.5)
    eps = split.training_noise(x, 3, g)
    noisy = x.unsqueeze(1) + 0.5 * eps
    assert noisy.min() >= -1e-6 and noisy.max() <= 1 + 1e-6  # bin centres stay in [0,1]


def test_rebox_a_record_after_the_fact(tmp_path):
    """The box radius computed from a written record equals the one computed from the
    counts, up to the radius's rounding, and never falls below the plain radius."""
    from smoothadv.records.files import read_records
    from smoothadv.records.loops import run_records
    from smoothadv.records.rebox import rebox_record

    class Confident(nn.Module):  # class 1 almost everywhere: p_A near 1, radius near λ
        def forward(self, x):
            v = x.flatten(1).mean(1) + 2.0
            return torch.stack([-v, v], dim=1)

    sigma = 1.0  # 2λ = 3.46: the plain radius can exceed every pixel's room in the box
    images = [(torch.full((1, SIDE, SIDE), v), 1) for v in (0.5, 0.2, 0.9)]
    smooth = Smooth(Confident(), 2, sigma, noise="uniform", norm="l1")
    plain = run_records("certify", smooth, images, [0, 1, 2], tmp_path / "plain.tsv", n0=50,
                        n=2000, alpha=0.001, batch_size=1000, seed=0, progress=False)
    boxed = rebox_record(plain, images, sigma, "uniform", tmp_path / "box.tsv")
    a, b = read_records(plain), read_records(boxed)
    assert list(a["idx"]) == list(b["idx"])
    assert all(b["radius"] >= a["radius"]) and b["radius"][0] > a["radius"][0]
    direct = smooth.certify_many(torch.stack([x for x, _ in images]), 50, 2000, 0.001, 1000,
                                 seeds=None, box=True)
    assert all(c.prediction == 1 for c in direct)
    assert b["radius"][0] <= box_l1_radius(0.5, smooth.noise.lam, images[0][0].numpy())


def test_sequential_certification_with_uniform_and_laplace_noise():
    """The sequential certifier's thresholds are the p_A each ℓ1 radius needs: radii inside
    the true distance are certified, one beyond the noise's reach (> λ) never is."""
    from smoothadv.smoothing.sequential import SequentialCertifier

    distance = 0.35
    for kind, dims in (("uniform", None), ("laplace", None)):
        smooth = Smooth(PixelThreshold(0.3), 2, 0.5, noise=kind, norm="l1")
        cert = SequentialCertifier(smooth, [0.1, 0.3, 2.0], alpha=0.001, budget=50_000,
                                   dims=dims)
        (_, res), = list(cert.run([(0, _image(0.3 + distance), 1, 5)]))
        assert res.prediction == 1 and 0.3 <= res.radius <= distance
        assert res.decision_text.startswith("C,C,") and res.decision_text[-1] != "C"


def test_the_deterministic_certificate_by_hand():
    """K = 3 offsets, one pixel at 10/255, bins of width 3/255 offset by ½, 1½, 2½ (/255): the
    bins holding 10 are (9.5, 12.5], (7.5, 10.5], (8.5, 11.5], centres 11, 9, 10 (/255). A
    classifier 'class 1 above 9.5/255' votes 1, 0, 1: n_1 = 2, n_0 = 1: class 1, closed radius
    ⌊(2 − 1 − 1)/2⌋ = 0 steps. At 9/255 (one step) the centres are 8, 9, 10: votes 0, 0, 1 and
    the class flips, so no ball of one step is certified (the old (n_A − n_B)/510 = ½ step did
    not claim one either; an even gap is where it overstated)."""
    sigma = 3 / (510 * math.sqrt(3))
    noise = SplittingNoise(sigma)
    assert noise.offsets_count == 3
    x = torch.tensor([[[10 / 255]]])
    assert torch.allclose(noise.offset_inputs(x, "zero").view(-1) * 255,
                          torch.tensor([11.0, 9, 10]))
    smooth = Smooth(PixelThreshold(9.5 / 255, pixel=0), 2, sigma, noise="splitting", norm="l1")
    cert, = smooth.certify_derandomized(x[None], 8, "zero")
    assert (cert.prediction, cert.n_a, cert.n) == (1, 2, 3)
    assert cert.radius == 0.0 and cert.p_lower == pytest.approx(2 / 3)
    moved, = smooth.certify_derandomized(torch.tensor([[[[9 / 255]]]]), 8, "zero")
    assert moved.prediction == 0 and moved.n_a == 2


def test_rebox_refuses_records_whose_radius_is_not_a_plain_budget(tmp_path):
    """A box, derandomized or other-noise record's radius is not 2λ·budget: re-boxing it would
    overstate the certificate, so its config makes rebox_record refuse."""
    import json

    from smoothadv.records.files import CERTIFY_COLUMNS
    from smoothadv.records.rebox import rebox_record

    record = tmp_path / "r.tsv"
    record.write_text("\t".join(CERTIFY_COLUMNS) + "\n0\t1\t1\t0.5\t1\t0:00:00.001\n")
    images = [(torch.full((1, SIDE, SIDE), 0.5), 1)]
    conf = tmp_path / "r.tsv.config.json"
    for config, why in (({"noise": "uniform", "norm": "l1", "sigma": 1.0, "box": True},
                         "it is a --box record"),
                        ({"config": {"noise": "splitting", "norm": "l1", "sigma": 1.0,
                                     "derandomized": True}}, "it is a --derandomized record"),
                        ({"noise": "laplace", "norm": "l1", "sigma": 1.0}, "its noise is laplace"),
                        ({"noise": "uniform", "norm": "l1", "sigma": 0.5}, "its σ is 0.5")):
        conf.write_text(json.dumps(config))
        noise = config.get("config", config)["noise"]
        noise = noise if noise in ("uniform", "splitting") else "uniform"
        with pytest.raises(UserError, match=why):
            rebox_record(record, images, 1.0, noise, tmp_path / "b.tsv")
    conf.write_text(json.dumps({"config": {"noise": "uniform", "norm": "l1", "sigma": None},
                                "sigma": 1.0}))
    assert rebox_record(record, images, 1.0, "uniform", tmp_path / "b.tsv").exists()
