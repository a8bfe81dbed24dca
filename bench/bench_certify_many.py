"""2. ``certify_many`` against one-input-at-a-time ``certify`` at n = 1,000 (digits MLP).

Both at the same batch size; certify_many packs the noisy samples of several inputs into
each forward batch. Target ≥ 3× the throughput.
"""

from __future__ import annotations

import torch

from common import build, device, paired_timeit, verdict
from smoothadv import Smooth

N0, N, INPUTS = 100, 1_000, 200


def main() -> None:
    dev = device()
    model, shape = build("digits MLP", dev)
    smooth = Smooth(model, 10, 0.25)
    xs = torch.rand((INPUTS, *shape), device=dev)
    seeds = list(range(INPUTS))
    print(f"2. certify_many vs one-at-a-time certify (digits MLP, n0={N0}, n={N:,}, "
          f"{INPUTS} inputs), {dev}")
    for batch in (1_000, 10_000):
        t_one, t_many = paired_timeit(
            lambda: [smooth.certify(x, N0, N, 0.001, batch, seed=s) for x, s in zip(xs, seeds)],
            lambda: smooth.certify_many(xs, N0, N, 0.001, batch, seeds), 5, device=dev)
        speedup = t_one / t_many
        print(f"   batch {batch:6d}: certify {INPUTS / t_one:8.1f} inputs/s, certify_many "
              f"{INPUTS / t_many:8.1f} inputs/s, speed-up {speedup:.2f}× "
              f"({verdict(speedup, 3.0)})")


if __name__ == "__main__":
    main()
