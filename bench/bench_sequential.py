"""6. Sequential certification against fixed-n CERTIFY.

Fixed n = 100,000 (n0 = 100) against sequential certification (betting sequence, budget
100,000, labelled), α = 0.001, σ = 0.25, on the demo's two digits models over the whole test
split (449 inputs): certified accuracy at radii 0.25 and 0.5, noise samples per input and wall
time. Targets (at radii ≤ 2σ): ≥ 20× fewer samples on average, ≥ 10× less wall time,
certified accuracy within 1 point at each radius. Radius 0.75 (3σ) is reported on its own
against the floor ln(1/α)/(1 − Φ(3)) of any test, then the samples–accuracy curve over budgets
10,000–100,000. Last, a CIFAR-10 ResNet-20 (short training) on 100 test inputs: fixed n =
10,000 against budget 10,000.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from scipy.stats import norm

from common import cifar_resnet20, demo_models, machine, verdict
from smoothadv import Smooth
from smoothadv.analysis import certified_accuracy
from smoothadv.certification import SequentialCertifier
from smoothadv.data import create_dataset
from smoothadv.evaluate import run_records, run_sequential_records, select_indices
from smoothadv.models import load_checkpoint
from smoothadv.records import read_records

ALPHA, SIGMA = 0.001, 0.25
RADII = [0.25, 0.5]
BUDGETS = [10_000, 20_000, 40_000, 60_000, 100_000]


def _fixed(smooth, dataset, indices, n, path):
    t0 = time.perf_counter()
    path.unlink(missing_ok=True)
    run_records("certify", smooth, dataset, indices, path, n0=100, n=n, alpha=ALPHA,
                batch_size=1000, seed=0, progress=False)
    return read_records(path), time.perf_counter() - t0


def _sequential(smooth, dataset, indices, radii, budget, path):
    t0 = time.perf_counter()
    path.unlink(missing_ok=True)
    cert = SequentialCertifier(smooth, radii, ALPHA, budget=budget, labelled=True,
                               batch_size=1000)
    run_sequential_records(cert, dataset, indices, path, seed=0, progress=False)
    return read_records(path), time.perf_counter() - t0


def _accuracy(rec, radii):
    """Certified accuracy per radius of a sequential record, from its decisions."""
    dec = np.array([d.split(",") for d in rec["decisions"]])
    return (dec == "C").mean(axis=0)


def _stats(samples):
    s = np.asarray(samples, dtype=np.float64)
    return s.mean(), np.median(s), np.percentile(s, 90)


def main() -> None:
    from pathlib import Path

    from common import CACHE

    torch.manual_seed(0)
    work = Path(CACHE) / "sequential"
    work.mkdir(parents=True, exist_ok=True)
    print(f"6. sequential vs fixed-n certification ({machine()}), α={ALPHA}, σ={SIGMA}")
    test = create_dataset("digits", "test")
    indices = select_indices(len(test))
    models = demo_models(SIGMA)
    fixed_total = 100 + 100_000
    for name, ckpt in models.items():
        model, _ = load_checkpoint(ckpt)
        smooth = Smooth(model, 10, SIGMA)
        tag = name.split()[0].lower()
        fixed, t_fixed = _fixed(smooth, test, indices, 100_000, work / f"{tag}_fixed.tsv")
        seq, t_seq = _sequential(smooth, test, indices, RADII, 100_000, work / f"{tag}_seq.tsv")
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
              + f" ({verdict(-max(abs(d) for d in diff), -1.0)})")
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
