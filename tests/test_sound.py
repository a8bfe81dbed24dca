"""Sound certification: the integer sampler's table, its draws, the lattice-point inputs, and
the certify/predict paths with --sound."""

import json

import mpmath
import numpy as np
import pytest
import torch
from scipy.stats import chisquare

from smoothadv import Smooth
from smoothadv.cli import main
from smoothadv.errors import UserError
from smoothadv.noise.rounded import (
    BITS,
    LEVELS,
    RoundedGaussian,
    edge_table,
    exact_probabilities,
    round_to_grid,
    truncation,
)
from smoothadv.records.files import read_records
from smoothadv.smoothing.stats import lower_confidence_bound


@pytest.mark.parametrize("sigma", [0.12, 0.25, 0.5, 1.0])
def test_table_equals_the_exact_probabilities(sigma):
    m, table = edge_table(sigma)
    assert m == (truncation(sigma) + 1) * LEVELS
    edges = [0, *table, 2**BITS]
    # an independent evaluation (mpmath's ncdf, 256 bits) of P(noise = k)·2^b, tails folded
    with mpmath.workprec(256):
        s = mpmath.mpf(sigma) * LEVELS
        def cdf(k):
            return mpmath.ncdf((mpmath.mpf(k) + mpmath.mpf(1) / 2) / s)
        for k in [-m, -m + 1, -400, -37, -1, 0, 1, 2, 150, m - 1, m]:
            lo = 0 if k == -m else cdf(k - 1)
            hi = 1 if k == m else cdf(k)
            exact = (hi - lo) * 2**BITS
            drawn = edges[k + m + 1] - edges[k + m]
            assert abs(drawn - exact) <= 2, (k, drawn, float(exact))  # within 2 units of 2^-62
    assert all(a <= b for a, b in zip(table, table[1:]))
    # the float64 helper used by the chi-square test agrees with the table
    ks = np.array([-3, 0, 5])
    ref = exact_probabilities(sigma, ks)
    got = np.array([(edges[k + m + 1] - edges[k + m]) / 2**BITS for k in ks])
    assert np.allclose(got, ref, rtol=1e-12, atol=0)


def test_draws_pass_a_chi_square_test_and_stay_in_range():
    noise = RoundedGaussian(0.25)
    draws = noise.draw((1_000_000,), torch.Generator().manual_seed(0), torch.device("cpu"))
    assert draws.dtype == torch.int16
    assert draws.min() >= -noise.m and draws.max() <= noise.m
    values = draws.numpy().astype(np.int64)
    ks = np.arange(-noise.m, noise.m + 1)
    probs = exact_probabilities(0.25, ks)
    probs[0] += 1 - probs.sum()  # the folded tails carry almost nothing at 8σ; keep the sum 1
    expected = probs * len(values)
    observed = np.bincount(values + noise.m, minlength=len(ks)).astype(float)
    keep = expected >= 5
    obs = np.append(observed[keep], observed[~keep].sum())
    exp = np.append(expected[keep], expected[~keep].sum())
    assert chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 0.001
    assert abs(values.std() / LEVELS - 0.25) < 0.001


def test_model_input_is_a_function_of_the_lattice_point():
    noise = RoundedGaussian(0.5)
    k = torch.arange(256, dtype=torch.float64)
    a = (k / 255).float()  # the same lattice points reached by different float paths
    b = k.float() / 255 + 1e-7
    c = (k.float() * (1 / 255.0)).float()
    assert not torch.equal(a, b) and not torch.equal(a, c)  # the float tensors differ
    drawn = noise.draw((4, 256), torch.Generator().manual_seed(1), torch.device("cpu"))
    out = [noise.apply(noise.prepare(x), drawn) for x in (a, b, c)]
    assert torch.equal(out[0], out[1]) and torch.equal(out[0], out[2])
    expected = ((k.long() + drawn.long()).clamp(-255 * noise.k, 255 * (noise.k + 1)).float()
                / 255)
    assert torch.equal(out[0], expected)
    # clipped to [−K, K + 1]
    assert out[0].min() >= -noise.k and out[0].max() <= noise.k + 1


def test_off_grid_inputs_are_refused_or_rounded():
    noise = RoundedGaussian(0.25)
    with pytest.raises(UserError, match="8-bit grid"):
        noise.prepare(torch.tensor([0.5]))
    assert noise.prepare(round_to_grid(torch.tensor([0.5, 1.2, -0.1]))).tolist() == [128, 255, 0]


def test_sound_certificate_spends_the_samplers_bound(linear_model):
    x = round_to_grid(linear_model.point_with_pa(0.99, 0.25))
    sound, plain = Smooth(linear_model, 2, 0.25, sound=True), Smooth(linear_model, 2, 0.25)
    cs = sound.certify(x, 100, 20_000, 0.001, 1000, seed=3)
    cp = plain.certify(x, 100, 20_000, 0.001, 1000, seed=3)
    spent = sound.noise.alpha_spent(20_100, x.numel())
    assert 0 < spent < 1e-9
    assert cs.p_lower == pytest.approx(float(lower_confidence_bound(cs.n_a, 20_000,
                                                                    0.001 - spent)), abs=0)
    assert cs.prediction == cp.prediction == 1
    assert abs(cs.radius - cp.radius) < 0.02  # the rounded noise is close to the Gaussian


def test_cli_sound_modes(digits_ckpt, tmp_path, capsys):  # noqa: F811
    # digits pixels are k/16, off the 8-bit grid: refused unless rounded
    out = tmp_path / "s.tsv"
    base = ["certify", str(digits_ckpt), "--n0", "20", "--n", "300", "--max", "30", "--skip",
            "3", "--no-progress", "--sound"]
    assert main([*base, "--out", str(out)]) == 2
    assert "8-bit grid" in capsys.readouterr().err
    assert main([*base, "--round-inputs", "--out", str(out)]) == 0
    config = json.loads((tmp_path / "s.tsv.config.json").read_text())
    assert config["config"]["sound"] and config["config"]["round_inputs"]
    assert config["noise"] == "sound"
    assert len(read_records(out)) == 10
    seq = tmp_path / "seq.tsv"
    assert main([*base, "--round-inputs", "--sequential", "--radii", "0.25", "--budget",
                 "1000", "--out", str(seq)]) == 0
    pred = tmp_path / "p.tsv"
    assert main(["predict", str(digits_ckpt), "--n", "200", "--max", "20", "--skip", "4",
                 "--sound", "--round-inputs", "--no-progress", "--out", str(pred)]) == 0
    assert main(["certify", str(digits_ckpt), "--round-inputs", "--out", str(out)]) == 2
