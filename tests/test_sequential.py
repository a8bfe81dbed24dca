"""Sequential certification on models whose smoothed classifier is known in closed form."""

import math

import numpy as np
import pytest
import torch
from scipy.stats import norm

from smoothadv import Smooth
from smoothadv.cli import main
from smoothadv.errors import UserError
from smoothadv.records.files import read_records
from smoothadv.smoothing.sequences import CERTIFIED, NOT_CERTIFIED, UNDECIDED
from smoothadv.smoothing.sequential import SequentialCertifier, piece_size

SIGMA = 0.25


def _point(model, pa):
    return model.point_with_pa(pa, SIGMA)


def test_radii_inside_are_certified_beyond_are_not_with_few_samples(linear_model):
    smooth = Smooth(linear_model, 2, SIGMA)
    pas = [0.9, 0.99, 0.999]
    items = [(i, _point(linear_model, p), 1, 100 + i) for i, p in enumerate(pas)]
    for labelled in (True, False):
        cert = SequentialCertifier(smooth, [0.1, 0.45, 1.2], alpha=0.001, budget=100_000,
                                   labelled=labelled)
        results = dict(cert.run(items))
        for i, pa in enumerate(pas):
            res = results[i]
            true_radius = SIGMA * norm.ppf(pa)  # 0.32, 0.58, 0.77
            for r, d in zip(cert.radii, res.decisions):
                if r < 0.7 * true_radius:
                    assert d == CERTIFIED, (pa, r, res)
                if r > 1.3 * true_radius:
                    assert d == NOT_CERTIFIED, (pa, r, res)
            assert res.prediction == 1 and 0 < res.radius <= true_radius
            assert res.samples < 20_000
            assert res.p_lower <= pa <= res.p_upper


@pytest.mark.parametrize("labelled", [True, False])
def test_wrong_decision_rate_at_the_true_radius(linear_model, labelled):
    # at r = the true radius, p_A equals the threshold: any decision there is wrong
    alpha = 0.05
    smooth = Smooth(linear_model, 2, SIGMA)
    pa = 0.95
    radius = SIGMA * norm.ppf(pa)
    x = _point(linear_model, pa)
    count = 300
    cert = SequentialCertifier(smooth, [radius], alpha=alpha, budget=3000, labelled=labelled,
                               n0=20)
    results = [r for _, r in cert.run((i, x, 1, 5000 + i) for i in range(count))]
    wrong = np.mean([r.decisions[0] != UNDECIDED for r in results])
    assert wrong <= alpha + 3 * math.sqrt(alpha * (1 - alpha) / count)
    assert all(r.samples == 3000 + (0 if labelled else 20) for r in results
               if r.decisions[0] == UNDECIDED)


def test_results_do_not_depend_on_batch_size_or_packing(linear_model):
    smooth = Smooth(linear_model, 2, SIGMA)
    items = [(i, _point(linear_model, p), 1, 7 + i) for i, p in
             enumerate([0.6, 0.9, 0.97, 0.99, 0.995])]
    runs = []
    for batch in (64, 1000, 7000):
        cert = SequentialCertifier(smooth, [0.25, 0.5], alpha=0.01, budget=20_000,
                                   batch_size=batch)
        runs.append(dict(cert.run(items)))
    assert runs[0] == runs[1] == runs[2]
    alone = dict(SequentialCertifier(smooth, [0.25, 0.5], alpha=0.01,
                                     budget=20_000).run(items[3:4]))
    assert alone[3] == runs[0][3]


def test_anytime_radius(linear_model):
    smooth = Smooth(linear_model, 2, SIGMA)
    cert = SequentialCertifier(smooth, [], alpha=0.001, budget=200_000, anytime_tol=0.05)
    (_, res), = cert.run([(0, _point(linear_model, 0.99), 1, 3)])
    true_radius = SIGMA * norm.ppf(0.99)
    assert true_radius - 0.06 < res.radius < true_radius
    upper_radius = SIGMA * norm.ppf(res.p_upper)
    assert min(upper_radius, cert.radius_cap) - res.radius <= 0.05 + 1e-9
    assert res.samples < 200_000  # stopped by the tolerance, not the budget


def test_piece_sizes_and_bad_arguments(linear_model):
    assert piece_size(0, 100_000) == 128 and piece_size(8000, 100_000) == 1024
    assert piece_size(99_990, 100_000) == 10 and piece_size(100_000, 100_000) == 0
    smooth = Smooth(linear_model, 2, SIGMA)
    with pytest.raises(UserError, match="radii"):
        SequentialCertifier(smooth, [], alpha=0.01)
    with pytest.raises(UserError, match="non-negative"):
        SequentialCertifier(smooth, [-1], alpha=0.01)
    with pytest.raises(UserError, match="alpha"):
        SequentialCertifier(smooth, [0.5], alpha=2)
    with pytest.raises(UserError, match="unknown sequence"):
        SequentialCertifier(smooth, [0.5], alpha=0.01, sequence="wald")


def test_records_resume_and_analyze(digits_ckpt, tmp_path, capsys):  # noqa: F811
    out = tmp_path / "seq.tsv"
    args = ["certify", str(digits_ckpt), "--sequential", "--radii", "0", "0.25", "--budget",
            "2000", "--alpha", "0.01", "--max", "60", "--skip", "3", "--out", str(out),
            "--no-progress"]
    assert main(args) == 0
    assert "samples per input" in capsys.readouterr().out
    rec = read_records(out)
    assert len(rec) == 20 and rec.rounding == "down"
    assert {"samples", "p_lower", "p_upper", "decisions"} <= set(rec.columns)
    rows = sorted(out.read_text().splitlines()[1:])
    # a run killed after 5 rows, in the middle of the sixth
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:6]) + lines[6][:5])
    assert main(args) == 0
    assert sorted(line.rsplit("\t", 5)[0] + line.split("\t", 6)[-1]
                  for line in out.read_text().splitlines()[1:]) == sorted(
        line.rsplit("\t", 5)[0] + line.split("\t", 6)[-1] for line in rows)
    assert main(["analyze", str(out), "--radii", "0", "0.25"]) == 0
    text = capsys.readouterr().out
    assert "samples mean" in text and "p90" in text
    # a certified row's radius column agrees with its decisions
    for radius, dec, correct in zip(rec["radius"], rec["decisions"], rec["correct"]):
        flags = dec.split(",")
        assert (flags[1] == "C") == (correct == 1 and radius >= 0.25)


def test_cli_refuses_mixed_options(digits_ckpt, tmp_path, capsys):  # noqa: F811
    out = str(tmp_path / "x.tsv")
    assert main(["certify", str(digits_ckpt), "--radii", "0.5", "--out", out]) == 2
    assert "--radii needs --sequential" in capsys.readouterr().err
    assert main(["certify", str(digits_ckpt), "--sequential", "--out", out]) == 2
    assert "--radii" in capsys.readouterr().err
    assert main(["certify", str(digits_ckpt), "--sequential", "--radii", "0.5",
                 "--randomized-cp", "--out", out]) == 2


def test_randomized_cp_certify(digits_ckpt, tmp_path):  # noqa: F811
    plain, rand = tmp_path / "plain.tsv", tmp_path / "rand.tsv"
    common = [str(digits_ckpt), "--n0", "20", "--n", "300", "--max", "40", "--skip", "4",
              "--no-progress", "--seed", "2"]
    assert main(["certify", *common, "--out", str(plain)]) == 0
    assert main(["certify", *common, "--randomized-cp", "--out", str(rand)]) == 0
    a, b = read_records(plain), read_records(rand)
    assert np.all(b["radius"] >= a["radius"] - 1e-6)  # never below the ordinary bound
    assert '"randomized_cp": true' in (tmp_path / "rand.tsv.config.json").read_text()
    torch.manual_seed(0)


def test_end_test_keeps_the_error_rate_and_recovers_what_the_sequence_misses(linear_model):
    from smoothadv.smoothing.stats import lower_confidence_bound

    alpha, budget, count, theta = 0.05, 3000, 400, 0.95
    smooth = Smooth(linear_model, 2, SIGMA)
    radius = SIGMA * norm.ppf(theta)

    def certified(pa, split):
        cert = SequentialCertifier(smooth, [radius], alpha=alpha, budget=budget,
                                   labelled=True, alpha_split=split)
        x = _point(linear_model, pa)
        results = [r for _, r in cert.run((i, x, 1, 9000 + i) for i in range(count))]
        assert all(r.radius <= SIGMA * norm.ppf(r.p_lower) + 1e-12 for r in results)
        return np.mean([r.decisions[0] == CERTIFIED for r in results])

    margin = 3 * math.sqrt(alpha * (1 - alpha) / count)
    for pa in (0.93, theta):  # at or below the threshold every certificate is false
        for split in (0.2, 0.5, 0.9):
            assert certified(pa, split) <= alpha + margin, (pa, split)
    # just above the threshold: fixed-n CERTIFY at n = budget certifies most such inputs, the
    # sequence alone few of them, the end test (split 0.2) nearly as many as fixed n
    pa = 0.962
    k = np.random.default_rng(0).binomial(budget, pa, size=20_000)
    fixed = float(np.mean(lower_confidence_bound(k, budget, alpha) > theta))
    alone, with_end = certified(pa, 1.0), certified(pa, 0.2)
    assert fixed > 0.9 and alone < fixed - 0.3
    assert with_end >= fixed - 0.05, (with_end, fixed)


def test_end_test_budget_split_is_recorded_and_validated(linear_model, tmp_path, digits_ckpt):  # noqa: F811
    smooth = Smooth(linear_model, 2, SIGMA)
    cert = SequentialCertifier(smooth, [0.1], alpha=0.001, alpha_split=0.25)
    assert math.isclose(cert.alpha_seq, 0.00025) and math.isclose(cert.alpha_end, 0.00075)
    with pytest.raises(UserError, match="alpha split"):
        SequentialCertifier(smooth, [0.1], alpha=0.001, alpha_split=0.0)
    out = tmp_path / "s.tsv"
    assert main(["certify", str(digits_ckpt), "--sequential", "--radii", "0.25",
                 "--alpha-split", "0.5", "--budget", "500", "--skip", "100", "--out", str(out),
                 "--no-progress"]) == 0
    import json

    config = json.loads(out.with_name(out.name + ".config.json").read_text())
    assert math.isclose(config["alpha_seq"], 0.0005) and math.isclose(config["alpha_end"],
                                                                       0.0005)
    assert main(["certify", str(digits_ckpt), "--alpha-split", "0.5", "--out",
                 str(tmp_path / "f.tsv")]) == 2
