"""12. ℓ1 noise sources on the ResNet-20 certification path, and the deterministic certificate.

Times ``Smooth.certify_many`` (CIFAR-10 ResNet-20, random weights, the library's default
channels-last layout, eager, fp32) with Gaussian, uniform, Laplace and splitting noise, run
alternately so that all see the same machine state, and reports the time per noisy sample and
each source's ratio to Gaussian. Target (issue 27): uniform and Laplace ≤ 1.2× Gaussian.

Then the deterministic certificate's cost: K = 2λ·255 forward passes per input (λ = √3σ
rounded to a multiple of 1/510: K = 221 at σ = 0.25, 442 at σ = 0.5, 883 at σ = 1.0), timed
per input on the same model.
"""

from __future__ import annotations

import statistics
import sys
import time

import torch

from common import build, device, machine, verdict
from smoothadv import Smooth
from smoothadv.noise import SplittingNoise

NOISES = ("gaussian", "uniform", "laplace", "splitting")


def main(n: int = 4_000, inputs: int = 2, repeat: int = 5) -> dict[str, float]:
    dev = device()
    torch.set_grad_enabled(False)
    model, shape = build("cifar_resnet20", dev)
    xs = torch.rand(inputs, *shape)
    print(f"12. ℓ1 noise sources, certify_many on ResNet-20 ({machine()}), n={n:,} per input, "
          f"{inputs} inputs, batch 1000")
    smooths = {k: Smooth(model, 10, 0.25, noise=k, norm="l2" if k == "gaussian" else "l1")
               for k in NOISES}
    for k in NOISES:  # warm-up
        smooths[k].certify_many(xs, 10, 1000, 0.001, 1000, seeds=list(range(inputs)))
    times: dict[str, list[float]] = {k: [] for k in NOISES}
    for _ in range(repeat):
        for k in NOISES:
            t0 = time.perf_counter()
            smooths[k].certify_many(xs, 10, n, 0.001, 1000, seeds=list(range(inputs)))
            if dev.type == "cuda":
                torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t0)
    per_sample = {k: statistics.median(v) / (inputs * (n + 10)) for k, v in times.items()}
    base = per_sample["gaussian"]
    for k in NOISES:
        ratio = per_sample[k] / base
        target = (verdict(ratio, 1.2, higher_is_better=False)
                  if k in ("uniform", "laplace") else "")
        print(f"   {k:9s} {per_sample[k] * 1e6:8.1f} µs/sample   {ratio:5.2f}× Gaussian  {target}")
    print("   deterministic certificate (--derandomized), per input:")
    for sigma in (0.25, 0.5):
        smooth = Smooth(model, 10, sigma, noise="splitting", norm="l1")
        x = (torch.rand(1, *shape) * 255).round() / 255
        smooth.certify_derandomized(x, 1000)
        t0 = time.perf_counter()
        smooth.certify_derandomized(x, 1000)
        took = time.perf_counter() - t0
        K = SplittingNoise(sigma).offsets_count
        print(f"     σ={sigma:<4g} K = 2λ·255 = {K:4d} forward passes: {took:6.2f} s "
              f"({took / K * 1e6:.0f} µs per offset image)")
    return per_sample


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
