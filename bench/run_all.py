"""Run every benchmark in one process tree on this machine and print their figures.

``make bench`` calls this; it is not part of ``make test``. Takes a few minutes on 2 CPU cores
(the n = 100,000 CIFAR-10 memory benchmark dominates).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_certify  # noqa: E402
import bench_certify_many  # noqa: E402
import bench_channels_last  # noqa: E402
import bench_compile  # noqa: E402
import bench_digits_networks  # noqa: E402
import bench_estimates  # noqa: E402
import bench_l1  # noqa: E402
import bench_memory  # noqa: E402
import bench_methods  # noqa: E402
import bench_precision  # noqa: E402
import bench_sequential  # noqa: E402
import bench_sound  # noqa: E402
import bench_sweep  # noqa: E402
import bench_train_step  # noqa: E402

from common import machine  # noqa: E402


def main() -> None:
    print(f"machine: {machine()}")
    start = time.perf_counter()
    for module in (bench_certify, bench_certify_many, bench_train_step, bench_memory,
                   bench_channels_last, bench_sequential, bench_sound, bench_compile,
                   bench_methods, bench_precision, bench_sweep, bench_l1,
                   bench_digits_networks, bench_estimates):
        module.main() if module not in (bench_precision, bench_estimates) else module.main([])
        print()
    print(f"all benchmarks: {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
