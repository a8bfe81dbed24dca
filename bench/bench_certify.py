"""1. Certification speed against its limit, the model's own forward throughput.

Noisy samples per second of ``Smooth.certify`` at n = 10,000 (n0 = 100 included) divided by
samples per second of plain forward passes at the same batch size. Target ≥ 0.90.
"""

from __future__ import annotations

import torch

from common import build, device, paired_timeit, verdict
from smoothadv import Smooth

N0, N = 100, 10_000
CASES = [("digits MLP", 1_000), ("digits MLP", 10_000), ("MNIST CNN", 1_000),
         ("cifar_resnet20", 1_000)]


def main() -> None:
    dev = device()
    print(f"1. certify vs plain forward throughput (n0={N0}, n={N:,}), {dev}")
    for name, batch in CASES:
        model, shape = build(name, dev)
        smooth = Smooth(model, 10, 0.25)
        x = torch.rand(shape, device=dev)
        inputs = torch.rand((batch, *shape), device=dev)
        reps = 3 if name == "cifar_resnet20" else 15

        # the baseline: as many full batches as certify runs (one for n0, then n's)
        n_batches = -(-N0 // batch) + -(-N // batch)
        t_fwd, t_cert = paired_timeit(lambda: _forward(model, inputs, n_batches),
                                      lambda: smooth.certify(x, N0, N, 0.001, batch, seed=0),
                                      reps, device=dev)
        fwd_rate = n_batches * batch / t_fwd
        cert_rate = (N0 + N) / t_cert
        ratio = cert_rate / fwd_rate
        print(f"   {name:15s} batch {batch:6d}: forward {fwd_rate:12,.0f} samples/s, "
              f"certify {cert_rate:12,.0f} samples/s, ratio {ratio:.3f} "
              f"({verdict(ratio, 0.90)})")


def _forward(model: torch.nn.Module, inputs: torch.Tensor, n_batches: int) -> None:
    with torch.inference_mode():
        for _ in range(n_batches):
            model(inputs).argmax(1)


if __name__ == "__main__":
    main()
