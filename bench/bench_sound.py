"""7. Sound certification (``--sound``) against standard certification.

The demo's two digits models (their k/16 pixels rounded to the 8-bit grid, as --round-inputs
does) over the whole test split at n = 100,000, and a CIFAR-10 ResNet-20 (short training) on
100 test inputs at n = 10,000: certified accuracy at every radius, the mean relative difference
of individual radii (inputs certified by both), and wall time. Targets: accuracy within 1 point
at every radius, radii within 1% on average, wall time ≤ 1.1× the standard mode.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

from common import CACHE, SHARED, cifar_resnet20, demo_models, machine, verdict
from smoothadv import Smooth
from smoothadv.analysis.metrics import certified_accuracy
from smoothadv.data.datasets import create_dataset
from smoothadv.models import load_checkpoint
from smoothadv.noise import GridRounded
from smoothadv.records.files import read_records
from smoothadv.records.loops import run_records, select_indices
from smoothadv.runtime.compile import compile_for_inference

SIGMA = 0.25
RADII = [0.0, 0.25, 0.5, 0.75]


def _certify(model, sound, dataset, indices, n, path):
    path.unlink(missing_ok=True)
    smooth = Smooth(model, 10, SIGMA, sound=sound)
    t0 = time.perf_counter()
    run_records("certify", smooth, dataset, indices, path, n0=100, n=n, alpha=0.001,
                batch_size=1000, seed=0, progress=False)
    return read_records(path), time.perf_counter() - t0


def _compare(name, model, dataset, indices, n, work, repeat=2):
    tag = name.split()[0].lower()
    # alternate the modes and keep each one's faster run (the machine is shared)
    runs = {False: [], True: []}
    for _ in range(repeat):
        for sound in (False, True):
            runs[sound].append(_certify(model, sound, dataset, indices, n,
                                        work / f"{tag}_{'sound' if sound else 'std'}.tsv"))
    (std, _), (snd, _) = runs[False][0], runs[True][0]
    t_std = min(t for _, t in runs[False])
    t_snd = min(t for _, t in runs[True])
    acc_std, acc_snd = certified_accuracy(std, RADII), certified_accuracy(snd, RADII)
    both = (std["radius"] > 0) & (snd["radius"] > 0) & (std["predict"] == snd["predict"])
    rel = np.abs(snd["radius"][both] - std["radius"][both]) / std["radius"][both]
    diff = 100 * (acc_snd - acc_std)
    print(f"   {name} ({len(indices)} inputs, n={n:,}):")
    print("     radius     " + " ".join(f"{r:>7g}" for r in RADII))
    print("     standard   " + " ".join(f"{a:7.3f}" for a in acc_std) + f"   wall {t_std:6.1f}s")
    print("     sound      " + " ".join(f"{a:7.3f}" for a in acc_snd) + f"   wall {t_snd:6.1f}s")
    print("     accuracy difference (points) " + ", ".join(f"{d:+.1f}" for d in diff)
          + f" ({verdict(-np.abs(diff).max(), -1.0)}); radii differ by "
          f"{100 * rel.mean():.2f}% on average over {both.sum()} inputs "
          f"({verdict(100 * rel.mean(), 1.0, higher_is_better=False)}); wall "
          f"{t_snd / t_std:.2f}× ({verdict(t_snd / t_std, 1.1, higher_is_better=False)})")


def main(parts: tuple[str, ...] = ("digits", "cifar")) -> None:
    torch.manual_seed(0)
    work = Path(CACHE) / "sound"
    work.mkdir(parents=True, exist_ok=True)
    print(f"7. sound vs standard certification ({machine()}), σ={SIGMA}, α=0.001")
    if "digits" in parts:
        test = GridRounded(create_dataset("digits", "test"))
        indices = select_indices(len(test))
        for name, ckpt in demo_models(SIGMA).items():
            model, _ = load_checkpoint(ckpt)
            _compare(f"{name} digits MLP", model, test, indices, 100_000, work)
    if "cifar" not in parts:
        return
    ckpt = cifar_resnet20(SIGMA)
    if ckpt is None:
        print("   CIFAR-10 ResNet-20: skipped (../shared/data/cifar10 not found)")
        return
    model, _ = load_checkpoint(ckpt)
    # compiled, as certify's default would for a run this long; one run per mode (≈ 8 min each)
    model = compile_for_inference(model, 1000)
    cifar = create_dataset("cifar10", "test", f"{SHARED}/cifar10")
    for sound in (False, True):  # compile outside the timed runs (both shapes, both modes)
        Smooth(model, 10, SIGMA, sound=sound).certify(cifar[0][0], 100, 2000, 0.001, 1000, 0)
    _compare("CIFAR-10 ResNet-20 (compiled)", model, cifar, select_indices(len(cifar), skip=100),
             10_000, work, repeat=1)


if __name__ == "__main__":
    main(tuple(sys.argv[1:]) or ("digits", "cifar"))
