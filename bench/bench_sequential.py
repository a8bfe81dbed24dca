"""6. Sequential certification against fixed-n CERTIFY, with the end test at the budget.

Fixed n = 100,000 (n0 = 100) against sequential certification (betting sequence, labelled,
α = 0.001, σ = 0.25) on the demo's two digits models and the quick demo's Gaussian model over
the whole test split (449 inputs): certified accuracy at radii 0.25 and 0.5 (≤ 2σ), noise
samples per input and wall time, for several splits α_seq/α of the error budget between the
confidence sequence and the end test (1.0 = no end test), at budgets 100,000 and 40,000.
Beside it the oracle limit: the samples Wald's test would need knowing each input's p_A
(estimated from 20,000 draws per input): min(budget, max_r ln(1/α)/KL(p_A ‖ Φ(r/σ))).
Targets: at budget 100,000 within 0.3 point of fixed n at every radius with ≥ 10× fewer
samples; at budget 40,000 within 1 point with ≥ 20×; samples within 10% of the oracle. Then
radius 0.75 (3σ) against the floor ln(1/α)/(1 − Φ(3)), and a CIFAR-10 ResNet-20 (short
training) on 100 test inputs: fixed n = 10,000 against budget 10,000.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from scipy.stats import norm

from common import cifar_resnet20, demo_models, machine, verdict
from smoothadv import Smooth
from smoothadv.analysis.metrics import certified_accuracy
from smoothadv.data.datasets import create_dataset
from smoothadv.models import load_checkpoint
from smoothadv.records.files import read_records
from smoothadv.records.loops import run_records, run_sequential_records, select_indices
from smoothadv.smoothing.sequential import DEFAULT_ALPHA_SPLIT, SequentialCertifier

ALPHA, SIGMA = 0.001, 0.25
RADII = [0.25, 0.5]
BUDGETS = [10_000, 20_000, 40_000, 60_000, 100_000]
SPLITS = [1.0, 0.9, 0.7, 0.5, 0.3, 0.1]


def _fixed(smooth, dataset, indices, n, path):
    t0 = time.perf_counter()
    path.unlink(missing_ok=True)
    run_records("certify", smooth, dataset, indices, path, n0=100, n=n, alpha=ALPHA,
                batch_size=1000, seed=0, progress=False)
    return read_records(path), time.perf_counter() - t0


def _sequential(smooth, dataset, indices, radii, budget, path, split=DEFAULT_ALPHA_SPLIT):
    t0 = time.perf_counter()
    path.unlink(missing_ok=True)
    cert = SequentialCertifier(smooth, radii, ALPHA, budget=budget, labelled=True,
                               batch_size=1000, alpha_split=split)
    run_sequential_records(cert, dataset, indices, path, seed=0, progress=False)
    return read_records(path), time.perf_counter() - t0


def _accuracy(rec, radii):
    """Certified accuracy per radius of a sequential record, from its decisions."""
    dec = np.array([d.split(",") for d in rec["decisions"]])
    return (dec == "C").mean(axis=0)


def _stats(samples):
    s = np.asarray(samples, dtype=np.float64)
    return s.mean(), np.median(s), np.percentile(s, 90)


def _label_rates(smooth, dataset, indices, n=20_000):
    """p̂ of the true label per input from ``n`` draws (for the oracle)."""
    from smoothadv.smoothing.smooth import make_generator

    rates = []
    with torch.inference_mode():
        for i in indices:
            x, y = dataset[i]
            counts = smooth._counts(x[None], n, 1000, [make_generator(77_000 + i)])
            rates.append(float(counts[0, y]) / n)
    return np.array(rates)


def _kl(p, q):
    p = np.clip(p, 1e-12, 1 - 1e-12)
    return p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))


def oracle_samples(p, radii, budget):
    """Wald's test knowing p: per input min(budget, max_r ln(1/α)/KL(p ‖ Φ(r/σ)))."""
    thresholds = norm.cdf(np.asarray(radii) / SIGMA)
    need = np.max([math.log(1 / ALPHA) / np.maximum(_kl(p, t), 1e-300) for t in thresholds],
                  axis=0)
    return np.minimum(need, budget)


def _split_table(name, smooth, test, indices, acc_fixed, p_hat, work, tag):
    """Samples and accuracy for each split at budgets 100,000 and 40,000."""
    fixed_total = 100 + 100_000
    print(f"     split sweep ({name}): budget, α_seq/α, mean samples, fewer, "
          "Δ r=0.25, Δ r=0.5 (points vs fixed n=100,000), oracle mean, samples/oracle")
    for budget in (100_000, 40_000):
        oracle = float(oracle_samples(p_hat, RADII, budget).mean())
        for split in SPLITS:
            rec, t = _sequential(smooth, test, indices, RADII, budget,
                                 work / f"{tag}_split{split}_{budget}.tsv", split)
            acc = _accuracy(rec, RADII)
            mean = float(rec["samples"].mean())
            print(f"       {budget:>7,d} {split:4.2f} {mean:9,.0f} {fixed_total / mean:6.1f}× "
                  + " ".join(f"{100 * (a - b):+5.1f}" for a, b in zip(acc, acc_fixed))
                  + f"  {oracle:8,.0f} {mean / oracle:5.2f}  {t:5.1f}s")


def main() -> None:
    from pathlib import Path

    from common import CACHE

    torch.manual_seed(0)
    work = Path(CACHE) / "sequential"
    work.mkdir(parents=True, exist_ok=True)
    print(f"6. sequential vs fixed-n certification ({machine()}), α={ALPHA}, σ={SIGMA}, "
          f"default split α_seq/α = {DEFAULT_ALPHA_SPLIT}")
    test = create_dataset("digits", "test")
    indices = select_indices(len(test))
    models = {**demo_models(SIGMA), **demo_models(SIGMA, quick=True)}
    fixed_total = 100 + 100_000
    for name, ckpt in models.items():
        model, _ = load_checkpoint(ckpt)
        smooth = Smooth(model, 10, SIGMA)
        tag = name.split()[0].lower() + ("_quick" if "quick" in name else "")
        fixed, t_fixed = _fixed(smooth, test, indices, 100_000, work / f"{tag}_fixed.tsv")
        seq, t_seq = _sequential(smooth, test, indices, RADII, 100_000, work / f"{tag}_seq.tsv")
        p_hat = _label_rates(smooth, test, indices)
        acc_fixed = certified_accuracy(fixed, RADII)
        acc_seq = _accuracy(seq, RADII)
        mean, median, p90 = _stats(seq["samples"])
        fewer, faster = fixed_total / mean, t_fixed / t_seq
        print(f"   {name} (digits, {len(indices)} inputs), radii {RADII}:")
        print(f"     {'':24s} {'r=0.25':>8s} {'r=0.5':>8s} {'samples mean':>13s} "
              f"{'median':>8s} {'p90':>8s} {'wall':>8s}")
        print(f"     {'fixed n=100,000':24s} {acc_fixed[0]:8.3f} {acc_fixed[1]:8.3f} "
              f"{fixed_total:13,d} {fixed_total:8,d} {fixed_total:8,d} {t_fixed:7.1f}s")
        print(f"     {'sequential B=100,000':24s} {acc_seq[0]:8.3f} {acc_seq[1]:8.3f} "
              f"{mean:13,.0f} {median:8,.0f} {p90:8,.0f} {t_seq:7.1f}s")
        diff = [100 * (a - b) for a, b in zip(acc_seq, acc_fixed)]
        print(f"     samples {fewer:.1f}× fewer ({verdict(fewer, 20)}); wall {faster:.1f}× less "
              f"({verdict(faster, 10)}); accuracy difference (points) "
              + ", ".join(f"{d:+.1f}" for d in diff)
              + f" ({verdict(-max(abs(d) for d in diff), -0.3)}); samples/oracle "
              + f"{mean / float(oracle_samples(p_hat, RADII, 100_000).mean()):.2f}")
        _split_table(name, smooth, test, indices, acc_fixed, p_hat, work, tag)
        # radius 0.75 = 3σ on its own: no test can decide it with fewer samples than the floor
        seq75, _ = _sequential(smooth, test, indices, [0.75], 100_000, work / f"{tag}_seq75.tsv")
        floor = math.log(1 / ALPHA) / (1 - norm.cdf(3.0))
        cert_rows = seq75["samples"][np.array([d == "C" for d in seq75["decisions"]])]
        m75 = _stats(seq75["samples"])
        print(f"     r=0.75 (3σ): certified {float(_accuracy(seq75, [0.75])[0]):.3f} "
              f"(fixed {float(certified_accuracy(fixed, [0.75])[0]):.3f}); samples mean "
              f"{m75[0]:,.0f}, median {m75[1]:,.0f}; certified inputs needed "
              + (f"{cert_rows.min():,d}–{cert_rows.max():,d}" if len(cert_rows) else "-")
              + f" (floor ln(1/α)/(1−Φ(3)) = {floor:,.0f}, {fewer_than(cert_rows, floor)})")
        # the samples–accuracy curve
        print(f"     budget curve ({name}): budget, mean samples, fewer, r=0.25, r=0.5")
        for budget in BUDGETS:
            rec, t = _sequential(smooth, test, indices, RADII, budget,
                                 work / f"{tag}_seq_{budget}.tsv")
            acc = _accuracy(rec, RADII)
            mean_b = float(rec["samples"].mean())
            print(f"       {budget:>7,d} {mean_b:9,.0f} {fixed_total / mean_b:6.1f}× "
                  f"{acc[0]:.3f} ({100 * (acc[0] - acc_fixed[0]):+.1f}) "
                  f"{acc[1]:.3f} ({100 * (acc[1] - acc_fixed[1]):+.1f})  {t:.1f}s")
    _cifar(work)


def fewer_than(rows: np.ndarray, floor: float) -> str:
    if not len(rows):
        return "none certified"
    return f"{np.median(rows) / floor:.2f}× the floor at the median"


def _cifar(work) -> None:
    ckpt = cifar_resnet20(SIGMA)
    if ckpt is None:
        print("   CIFAR-10 ResNet-20: skipped (../shared/data/cifar10 not found)")
        return
    from common import SHARED

    model, _ = load_checkpoint(ckpt)
    smooth = Smooth(model, 10, SIGMA)
    test = create_dataset("cifar10", "test", f"{SHARED}/cifar10")
    indices = select_indices(len(test), skip=100)  # 100 inputs
    fixed, t_fixed = _fixed(smooth, test, indices, 10_000, work / "cifar_fixed.tsv")
    seq, t_seq = _sequential(smooth, test, indices, RADII, 10_000, work / "cifar_seq.tsv")
    acc_fixed, acc_seq = certified_accuracy(fixed, RADII), _accuracy(seq, RADII)
    mean, median, p90 = _stats(seq["samples"])
    total = 100 + 10_000
    print(f"   CIFAR-10 ResNet-20 (2 epochs, {len(indices)} inputs), radii {RADII}:")
    print(f"     fixed n=10,000       {acc_fixed[0]:.3f} {acc_fixed[1]:.3f}  samples {total:,d}"
          f"  wall {t_fixed:.0f}s")
    print(f"     sequential B=10,000  {acc_seq[0]:.3f} {acc_seq[1]:.3f}  samples mean "
          f"{mean:,.0f} median {median:,.0f} p90 {p90:,.0f}  wall {t_seq:.0f}s")
    print(f"     {total / mean:.1f}× fewer samples, {t_fixed / t_seq:.1f}× less wall time, "
          "accuracy difference (points) "
          + ", ".join(f"{100 * (a - b):+.1f}" for a, b in zip(acc_seq, acc_fixed)))


if __name__ == "__main__":
    main()
