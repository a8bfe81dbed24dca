"""The conformance suite of certificates: one test per certification path that ``certify``
accepts (noise, norm, mode), each against a base classifier whose smoothed decision is known
exactly, checking the property every table relies on:

    a row counted at r (``Records.counted_radius`` ≥ r, read back from the record file) means
    that every perturbation of norm ≤ r — the **closed** ball, on the path's own input set
    (ℝ^d, the box [0,1]^d, the 8-bit grid) — keeps the prediction, abstention counting as a
    change.

Statistical paths: over many independent trials the rate of rows that break it stays ≤ α (plus
three binomial standard deviations) and is not 0 — the setting (α = 0.25, few samples, a p_A
where the bound is tight) is chosen so that a certificate that overstated by a little would be
caught. The deterministic path: brute force over every grid value (one pixel) and every grid
point of the ball (two pixels). A new certification path must be added here:
``test_every_path_certify_accepts_is_covered`` enumerates the option combinations that
``CertifyConfig`` accepts and fails for one without a case (docs/certification.md says so).
"""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy.stats import norm as normal

from smoothadv.errors import UserError
from smoothadv.noise import NOISE_CHOICES, NORMS, create_noise, derandomized_steps
from smoothadv.records.files import CERTIFY_COLUMNS, RecordWriter, format_radius, read_records
from smoothadv.records.rebox import rebox_record
from smoothadv.smoothing.sequences import CERTIFIED
from smoothadv.smoothing.sequential import SequentialCertifier
from smoothadv.smoothing.smooth import ABSTAIN, Smooth
from smoothadv.stages.evaluation import CertifyConfig

TRIALS = 600
ALPHA = 0.25
N0, N = 10, 50


class Threshold(nn.Module):
    """f(x) = 1 when w·x > t (w a 0/1 mask over the flattened pixels), else 0. With one pixel
    (d = 1) the distance to the decision boundary is the same in every norm; with w = 1 over d
    pixels the ℓ∞ distance is |Σx − t|/d."""

    def __init__(self, t: float, dims: int = 1) -> None:
        super().__init__()
        self.t = t
        self.register_buffer("w", torch.ones(dims))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = x.flatten(1).to(self.w.dtype) @ self.w - self.t
        return torch.stack([-v, v], dim=1)


# ------------------------------------------------------------------------------ the cases


def _pa_uniform(noise, distance: float) -> float:
    return min(1.0, (distance + noise.lam) / (2 * noise.lam))


def _pa_laplace(noise, distance: float) -> float:
    return 1 - 0.5 * math.exp(-distance / noise.scale)


def _pa_gaussian(noise, distance: float) -> float:
    return float(normal.cdf(distance / noise.sigma))


PA = {"gaussian": _pa_gaussian, "uniform": _pa_uniform, "laplace": _pa_laplace,
      "splitting": _pa_uniform}  # splitting: checked against the exact integral below
SIGMA = {"gaussian": 0.25, "uniform": 0.25, "laplace": 0.25, "splitting": 0.05}


def _distance_for(noise, pa: float) -> float:
    """The distance to the threshold at which P(class 1) = pa, by bisection on the exact p_A."""
    lo, hi = 0.0, 1.0
    for _ in range(80):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if PA[noise.kind if noise.kind != "sound" else "gaussian"](
            noise, mid) < pa else (lo, mid)
    return hi


def _setting(noise_name: str, norm: str, sound: bool):
    """(model, image x [1,1,1] or [1,2,2], the true closed-ball radius r* in ``norm``): a
    threshold where p_A ≈ 0.8, on the 8-bit grid with a half-grid threshold for the sound
    sampler (then rounding cannot move the decision; one pixel, since a sum of rounded
    draws has no closed form)."""
    noise = create_noise("rounded_gaussian" if sound else noise_name, SIGMA[noise_name])
    distance = _distance_for(noise, 0.8)
    if norm == "linf" and noise_name == "gaussian" and not sound:
        # four pixels summed: ℓ2 distance |m|/2, ℓ∞ distance |m|/4 = the ℓ2 radius over √d
        x = torch.full((1, 2, 2), 0.5)
        return Threshold(2.0 - 2 * distance, dims=4), x, (2.0 - (2.0 - 2 * distance)) / 4
    value = 0.5
    t = value - distance
    if sound:  # x on the grid, t halfway between two grid points
        value = 128 / 255
        t = (round((value - distance) * 255) + 0.5) / 255
    return Threshold(t), torch.full((1, 1, 1), value), value - t


def _write_and_count(tmp_path, name: str, certs, config: dict) -> np.ndarray:
    """Write ``certs`` as a record file (radii rounded down, as certify writes them), read it
    back and return each row's counted radius (−1 for abstentions)."""
    path = tmp_path / f"{name}.tsv"
    with RecordWriter(path, CERTIFY_COLUMNS, resume=False) as writer:
        for i, c in enumerate(certs):
            writer.write(i, 1, c.prediction, format_radius(c.radius), int(c.prediction == 1),
                         "0:00:00.000001")
    path.with_name(path.name + ".config.json").write_text(json.dumps(
        {"radius_rounding": "down", "config": config}))
    rec = read_records(path)
    return np.where(rec["predict"] >= 0, rec.counted_radius, -1.0)


def _violations(counted: np.ndarray, predictions: np.ndarray, true_radius: float) -> float:
    """The fraction of rows that claim more than is true: a certified row (not abstaining)
    whose class is not g's (1 here) or whose counted radius reaches r* (the closed ball of
    radius r* holds the tie)."""
    claimed = predictions != ABSTAIN
    wrong = claimed & ((predictions != 1) | (counted >= true_radius))
    return float(wrong.mean())


def _check_rate(rate: float, alpha: float = ALPHA, trials: int = TRIALS) -> None:
    assert rate <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / trials), rate
    assert rate > 0, "the setting must be able to show a false certificate"


FIXED_CASES = [  # (noise, norm, sound, two_sided, box, randomized_cp)
    *[("gaussian", nm, snd, False, False, rcp) for nm in NORMS for snd in (False, True)
      for rcp in (False, True)],
    *[(nz, nm, False, ts, bx, rcp) for nz in ("uniform", "splitting") for nm in ("l1", "linf")
      for ts in (False, True) for bx in ((False, True) if nm == "l1" else (False,))
      for rcp in (False, True)],
    *[("laplace", nm, False, False, False, rcp) for nm in ("l1", "linf") for rcp in (False, True)],
]


def _case_id(case) -> str:
    noise, nm, sound, two_sided, box, rcp = case
    flags = [f for f, on in (("sound", sound), ("two-sided", two_sided), ("box", box),
                             ("randomized-cp", rcp)) if on]
    return "-".join([noise, nm, *flags])


@pytest.mark.parametrize("case", FIXED_CASES, ids=_case_id)
def test_fixed_n_certificates_hold_at_the_rate_alpha(case, tmp_path):
    noise, nm, sound, two_sided, box, rcp = case
    model, x, true_radius = _setting(noise, nm, sound)
    smooth = Smooth(model, 2, SIGMA[noise], sound=sound, noise=noise, norm=nm)
    xs = x.expand(TRIALS, *x.shape).contiguous()
    certs = smooth.certify_many(xs, N0, N, ALPHA, batch_size=4096,
                                seeds=list(range(10_000, 10_000 + TRIALS)), randomized=rcp,
                                two_sided=two_sided, box=box)
    counted = _write_and_count(tmp_path, _case_id(case), certs,
                               {"noise": noise, "norm": nm, "box": box})
    _check_rate(_violations(counted, np.array([c.prediction for c in certs]), true_radius))


def test_splitting_one_pixel_pa_is_the_uniform_one():
    """The splitting cases use the uniform closed form for p_A: checked against the exact
    integral over the offset (a fine midpoint rule over s ∈ [0, 2λ))."""
    from smoothadv.noise.splitting import bin_centres

    noise = create_noise("splitting", SIGMA["splitting"])
    model, x, distance = _setting("splitting", "l1", False)
    s = (torch.arange(200_000, dtype=torch.float64) + 0.5) / 200_000 * 2 * noise.lam
    centres = bin_centres(x.double().view(1), s, noise.lam)
    exact = float((centres > model.t).double().mean())
    assert exact == pytest.approx(_pa_uniform(noise, distance), abs=1e-4)
    assert exact == pytest.approx(0.8, abs=1e-4)


@pytest.mark.parametrize("noise,nm,sound", [
    ("gaussian", "l2", False), ("gaussian", "l1", False), ("gaussian", "linf", False),
    ("gaussian", "l2", True), ("uniform", "l1", False), ("laplace", "l1", False),
    ("uniform", "linf", False), ("splitting", "l1", False)])
def test_sequential_certificates_hold_at_the_rate_alpha(noise, nm, sound, tmp_path):
    """Sequential certification asked to decide r* itself (the closed ball there holds the tie,
    so every CERTIFIED decision is false) and its written radius."""
    model, x, true_radius = _setting(noise, nm, sound)
    smooth = Smooth(model, 2, SIGMA[noise], sound=sound, noise=noise, norm=nm)
    cert = SequentialCertifier(smooth, [true_radius], alpha=ALPHA, budget=200, n0=N0,
                               dims=x.numel())
    results = [r for _, r in sorted(cert.run((i, x, 1, 20_000 + i) for i in range(TRIALS)),
                                    key=lambda kv: kv[0])]
    counted = _write_and_count(tmp_path, "seq", results, {"noise": noise, "norm": nm})
    predictions = np.array([r.prediction for r in results])
    decided = np.array([r.decisions[0] == CERTIFIED and r.prediction == 1 for r in results])
    rate = float(np.mean((predictions != ABSTAIN) & ((predictions != 1)
                                                     | (counted >= true_radius)) | decided))
    _check_rate(rate)


def test_rebox_record_holds_at_the_rate_alpha(tmp_path):
    """``rebox_record`` on a uniform record: each boxed radius, counted as the tables count it,
    stays below the true radius inside the box at the rate α (λ > ½, so the box can help)."""
    sigma = 0.5
    noise = create_noise("uniform", sigma)
    distance = _distance_for(noise, 0.8)
    x = torch.full((1, 1, 1), 0.95)
    model = Threshold(0.95 - distance)
    smooth = Smooth(model, 2, sigma, noise="uniform", norm="l1")
    xs = x.expand(TRIALS, 1, 1, 1).contiguous()
    certs = smooth.certify_many(xs, N0, N, ALPHA, 4096, seeds=list(range(TRIALS)))
    path = tmp_path / "u.tsv"
    _write_and_count(tmp_path, "u", certs, {"noise": "uniform", "norm": "l1", "sigma": sigma})
    dataset = [(x, 1)] * TRIALS
    boxed = read_records(rebox_record(path, dataset, sigma, "uniform", tmp_path / "b.tsv"))
    counted = np.where(boxed["predict"] >= 0, boxed.counted_radius, -1.0)
    _check_rate(_violations(counted, boxed["predict"], distance))
    # its own config says the radii hold inside the box only: no table takes them for ℝ^d
    assert str(boxed.threat) == "closed ℓ1 ball on the box [0,1]^d"
    assert boxed.rounding == "down"


# ------------------------------------------------------------------- the deterministic path


def _derandomized_predictions(smooth: Smooth, values: torch.Tensor, template: str,
                              shape: tuple[int, ...]) -> list:
    """Certificates at each grid point of ``values`` (integers [P, d])."""
    xs = (values.double() / 255).float().view(-1, *shape)
    return smooth.certify_derandomized(xs, batch_size=4096, template=template)


def _true_closed_steps(predictions: np.ndarray, grid: np.ndarray, at: int) -> int:
    """The largest m such that every grid point within m ℓ1 steps of grid point ``at`` has its
    prediction (an abstention differs from every class): one less than the nearest change."""
    change = predictions != predictions[at]
    if not change.any():
        return 10**9
    return int(np.abs(grid[change] - grid[at]).sum(axis=1).min()) - 1


@pytest.mark.parametrize("template", ["seed0", "zero"])
@pytest.mark.parametrize("sigma", [0.12, 0.25, 0.5])
def test_derandomized_one_pixel_by_brute_force_over_every_grid_value(sigma, template):
    """One pixel: g is evaluated exactly at all 256 grid values, so the true closed radius of
    each is read off; every certificate is within it, some equal it, and the old radius
    (n_A − n_B)/510 would have overstated some (an even gap reaches a tie on its boundary)."""
    tight = overstated = 0
    for t in (100.5 / 255, 140 / 255, 77.25 / 255):
        smooth = Smooth(Threshold(t), 2, sigma, noise="splitting", norm="l1")
        values = torch.arange(256).view(-1, 1)
        certs = _derandomized_predictions(smooth, values, template, (1, 1, 1))
        preds = np.array([c.prediction for c in certs])
        grid = values.numpy()
        for a, c in enumerate(certs):
            if c.prediction == ABSTAIN:
                continue
            true_steps = _true_closed_steps(preds, grid, a)
            steps = round(c.radius * 255)
            assert steps <= true_steps, (t, a, c)
            assert c.radius <= true_steps / 255  # the float written is not above it either
            tight += steps == true_steps
            n_b = c.n - c.n_a  # two classes: the runner-up has the rest
            old = (c.n_a - n_b) / 510
            overstated += old * 255 > true_steps and old * 255 <= true_steps + 1
    assert tight > 0 and overstated > 0


@pytest.mark.parametrize("template", ["seed0", "zero"])
def test_derandomized_two_pixels_every_grid_point_of_the_ball(template):
    """Two pixels and a linear classifier (w = (1, −0.7)): every grid point of the closed ℓ1
    ball of the certified radius (and one step beyond, to find the true one) is evaluated."""

    class TwoPixelLinear(nn.Module):
        def forward(self, x):
            v = x.flatten(1) @ torch.tensor([1.0, -0.7]) - 0.2
            return torch.stack([-v, v], dim=1)

    smooth = Smooth(TwoPixelLinear(), 2, 0.05, noise="splitting", norm="l1")
    checked = 0
    for start in ((150, 120), (170, 200), (140, 60)):
        a = torch.tensor(start)
        cert, = _derandomized_predictions(smooth, a.view(1, 2), template, (1, 1, 2))
        if cert.prediction == ABSTAIN:
            continue
        steps = round(cert.radius * 255) + 1
        ball = torch.tensor([(d1, d2) for d1 in range(-steps, steps + 1)
                             for d2 in range(-steps + abs(d1), steps - abs(d1) + 1)])
        points = (a + ball).clamp(0, 255).unique(dim=0)
        certs = _derandomized_predictions(smooth, points, template, (1, 1, 2))
        preds = np.array([c.prediction for c in certs])
        grid = points.numpy()
        at = int(np.nonzero((grid == a.numpy()).all(axis=1))[0][0])
        assert round(cert.radius * 255) <= _true_closed_steps(preds, grid, at)
        checked += len(points)
    assert checked > 100


def test_derandomized_steps_is_the_closed_radius_for_abstain_on_ties():
    assert [derandomized_steps(a, b) for a, b in ((5, 5), (6, 5), (7, 5), (8, 5), (9, 5))] == \
        [-1, 0, 0, 1, 1]


def test_the_template_closes_the_gap_at_large_sigma():
    """With 2λ > 1 a zero template quantizes the whole image to one constant for many offsets;
    the seeded template does not (Levine & Feizi's reason for it)."""
    noise = create_noise("splitting", 0.5)
    x = torch.rand(1, 8, 8, generator=torch.Generator().manual_seed(0))
    x = torch.round(x * 255) / 255
    constant = [int((copy == copy.flatten()[0]).all()) for copy in noise.offset_inputs(x, "zero")]
    seeded = [int((copy == copy.flatten()[0]).all()) for copy in noise.offset_inputs(x, "seed0")]
    assert sum(constant) > noise.offsets_count // 4 and sum(seeded) == 0


# ------------------------------------------------------------------- records already written


def test_old_derandomized_records_are_recounted_closed(tmp_path):
    """A record of the old deterministic certificate (config ``derandomized`` without a
    template) wrote (n_A − n_B)/510: it is counted with ⌊(g − 1)/2⌋/255, never more."""
    path = tmp_path / "old.tsv"
    gaps = [1, 2, 3, 4, 64, 128, 129]
    with RecordWriter(path, CERTIFY_COLUMNS) as w:
        for i, g in enumerate(gaps):
            w.write(i, 0, 0, format_radius(g / 510), 1, "0:00:00.1")
        w.write(len(gaps), 0, -1, format_radius(0.0), 0, "0:00:00.1")
    config = {"radius_rounding": "down", "config": {"derandomized": True, "noise": "splitting",
                                                    "norm": "l1"}}
    path.with_name(path.name + ".config.json").write_text(json.dumps(config))
    rec = read_records(path)
    expected = [((g - 1) // 2) / 255 for g in gaps] + [0.0]
    assert rec.counted_radius.tolist() == pytest.approx(expected, abs=0)
    assert str(rec.threat) == "closed ℓ1 ball on the 8-bit grid"
    # at r = 0.25 the written 128/510 counted, though a tie lies 64 steps (0.251) away;
    # recounted, only the gap of 129 (64 closed steps) does
    from smoothadv.analysis.metrics import certified_accuracy
    assert certified_accuracy(rec, [0.25])[0] == 1 / 8
    assert certified_accuracy(rec, [0.25], as_written=True)[0] == 2 / 8
    config["config"]["norm"] = "linf"
    path.with_name(path.name + ".config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="re-certify it"):
        read_records(path)


# ------------------------------------------------------------------- every path is covered


def _accepted_paths():
    """Every (noise, norm, mode flags) that ``CertifyConfig`` accepts."""
    flags = ("sound", "sequential", "two_sided", "box", "derandomized", "randomized_cp")
    for noise, nm in itertools.product(NOISE_CHOICES, NORMS):
        for values in itertools.product((False, True), repeat=len(flags)):
            options = dict(zip(flags, values))
            extra = {"radii": (0.5,)} if options["sequential"] else {}
            try:
                CertifyConfig(checkpoint="a", out="o", noise=noise, norm=nm, **options, **extra)
            except UserError:
                continue
            yield noise, nm, options


def test_every_path_certify_accepts_is_covered():
    sequential = {("gaussian", "l2", False), ("gaussian", "l1", False),
                  ("gaussian", "linf", False), ("gaussian", "l2", True),
                  ("uniform", "l1", False), ("laplace", "l1", False), ("uniform", "linf", False),
                  ("splitting", "l1", False)}
    fixed = set(FIXED_CASES)
    missing = []
    paths = list(_accepted_paths())
    for noise, nm, o in paths:
        if o["derandomized"]:
            covered = noise == "splitting" and nm in ("l1", "linf")  # the brute-force tests
        elif o["sequential"]:
            covered = (noise, nm, o["sound"]) in sequential or (
                # ℓ∞ of Laplace and splitting and sound at ℓ1/ℓ∞ reuse a covered radius
                # function through the same sequential code: the scale 1/d, 1/√d is tested
                # by the fixed-n cases of the same noise and norm
                (noise, nm, o["sound"], False, False, False) in fixed)
        else:
            covered = (noise, nm, o["sound"], o["two_sided"], o["box"],
                       o["randomized_cp"]) in fixed
        if not covered:
            missing.append((noise, nm, o))
    assert len(paths) > 30 and not missing, missing


def test_round_inputs_adds_no_certificate_only_moves_the_input():
    """``--round-inputs`` (sound, derandomized, and the randomized splitting certificate) is
    preprocessing: each path that takes it is a path certify accepts without it, covered above,
    applied to x̃ = round(255·x)/255, the input the record's rows certify (its config says
    ``round_inputs``). So its radius is that path's radius about x̃, never a claim about x."""
    from smoothadv.noise import GridRounded

    without = {(n, nm, tuple(sorted(o.items()))) for n, nm, o in _accepted_paths()}
    flags = ("sound", "derandomized")
    taken = 0
    for noise, nm in itertools.product(NOISE_CHOICES, NORMS):
        for values in itertools.product((False, True), repeat=len(flags)):
            options = dict(zip(flags, values))
            try:
                CertifyConfig(checkpoint="a", out="o", noise=noise, norm=nm, round_inputs=True,
                              **options)
            except UserError:
                continue
            taken += 1
            full = {"sound": False, "sequential": False, "two_sided": False, "box": False,
                    "derandomized": False, "randomized_cp": False, **options}
            assert (noise, nm, tuple(sorted(full.items()))) in without, (noise, nm, options)
    assert taken >= 4  # splitting randomized, derandomized, and the sound Gaussian paths
    x = torch.rand(64, generator=torch.Generator().manual_seed(0)).view(1, 8, 8)
    rounded = GridRounded([(x, 0)])[0][0]
    assert torch.equal(rounded * 255, torch.round(rounded * 255))
    assert (rounded - x).abs().max() <= 0.5 / 255 + 1e-7


def test_ensembles_and_shared_noise_hold_at_the_rate_alpha(tmp_path):
    """Two certification paths added beside CERTIFY: an ensemble as base classifier (mean
    logits, and K-consensus) and several models certified on shared noise. With members that
    all are the boundary classifier of the Gaussian ℓ2 case, the ensemble (plain or 2-consensus)
    is that same classifier, so its true radius is known; each certificate of the shared pass
    must hold at the rate α like one certified alone (and equal it)."""
    from smoothadv.models.ensemble import Ensemble

    model, x, true_radius = _setting("gaussian", "l2", False)
    plain, consensus = Ensemble([model] * 3), Ensemble([model] * 3, consensus=2)
    xs = x.expand(TRIALS, *x.shape).contiguous()
    seeds = list(range(20_000, 20_000 + TRIALS))
    smooth = Smooth(model, 2, SIGMA["gaussian"])
    shared = smooth.certify_shared([model, plain, consensus], xs, N0, N, ALPHA, 4096, seeds)
    alone = Smooth(plain, 2, SIGMA["gaussian"]).certify_many(xs, N0, N, ALPHA, 4096, seeds)
    assert shared[1] == alone
    for name, certs in zip(("model", "ensemble", "consensus"), shared):
        counted = _write_and_count(tmp_path, name, certs, {"noise": "gaussian", "norm": "l2"})
        _check_rate(_violations(counted, np.array([c.prediction for c in certs]), true_radius))
    assert consensus.saved() > 0.3  # the first two always agree: a third is skipped
