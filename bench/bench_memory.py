"""4. Peak memory of certifying one CIFAR-10 input at n = 100,000 with batch 1,000.

Memory must be bounded by the batch, not by n: the peak for n = 100,000 should match the
peak for n = 10,000. Each measurement runs in a fresh process (peak resident set size on the
CPU, ``torch.cuda.max_memory_allocated`` on CUDA), after a warm-up certification at n = 1,000
so that allocator caches are already filled.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent

CHILD = r"""
import json, resource, sys, time, torch
sys.path.insert(0, {here!r})
from common import build, device
from smoothadv import Smooth
n = int(sys.argv[1]); dev = device()
model, shape = build("cifar_resnet20", dev)
smooth = Smooth(model, 10, 0.25)
x = torch.rand(shape, device=dev)
smooth.certify(x, 100, 1000, 0.001, 1000, seed=0)
if dev.type == "cuda":
    torch.cuda.reset_peak_memory_stats()
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
t0 = time.perf_counter()
smooth.certify(x, 100, n, 0.001, 1000, seed=1)
seconds = time.perf_counter() - t0
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
cuda = torch.cuda.max_memory_allocated() / 2**20 if dev.type == "cuda" else None
print(json.dumps(dict(n=n, base=base, peak=peak, cuda=cuda, seconds=seconds)))
"""


def measure(n: int) -> dict:
    code = CHILD.format(here=str(HERE))
    out = subprocess.run([sys.executable, "-c", code, str(n)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    print("4. peak memory of certifying one CIFAR-10 input (cifar_resnet20, batch 1,000)")
    results = [measure(n) for n in (10_000, 100_000)]
    for r in results:
        gpu = "" if r["cuda"] is None else f", CUDA peak allocated {r['cuda']:.0f} MiB"
        print(f"   n = {r['n']:7,d}: peak RSS {r['peak']:7.0f} MiB (after warm-up "
              f"{r['base']:7.0f} MiB){gpu}, {r['seconds']:.1f} s")
    small, big = results
    key = "cuda" if big["cuda"] is not None else "peak"
    ratio = big[key] / small[key]
    print(f"   peak at n=100,000 / peak at n=10,000 = {ratio:.3f} (bounded by the batch when "
          f"≈ 1; target ≤ 1.05: {'met' if ratio <= 1.05 else 'MISSED'})")


if __name__ == "__main__":
    main()
