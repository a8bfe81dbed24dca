"""11. Sweep overhead: planning a grid of 100 tiny stages (target < 1 s) and the local engine's
scheduling beyond the stages' own time (target < 0.5 s per stage).

The grid is the digits MLP trained one epoch on 64 images and certified at n = 20 on 9 inputs,
over 50 seeds (100 stages), planned and run with one worker; the
overhead is (wall time − Σ the stages' own times, measured inside the worker) / stages,
the workers' start included.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from common import machine, verdict
from smoothadv.sweep import Ledger, build_plan, load_sweep, run_local

GRID = """out = "{out}"
[[runs]]
train = {{ dataset = "digits", arch = "mlp", epochs = 1, batch = 64, train_subset = 64 }}
grid = {{ seed = {seeds} }}
certify = {{ n = 20, n0 = 5, skip = 50 }}
"""


def main() -> None:
    print(f"11. sweep overhead ({machine()})")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "grid.toml"
        path.write_text(GRID.format(out=Path(tmp) / "out", seeds=list(range(50))))
        t0 = time.perf_counter()
        plan = build_plan(load_sweep(path))
        t_plan = time.perf_counter() - t0
        print(f"   plan of {len(plan.jobs)} stages: {t_plan:.2f} s ({verdict(t_plan, 1.0, False)})")
        path.write_text(GRID.format(out=Path(tmp) / "run", seeds=list(range(50))))
        sweep = load_sweep(path)
        plan = build_plan(sweep)
        t0 = time.perf_counter()
        run_local(plan, Ledger(sweep.out), workers=1, say=lambda _: None)
        wall = time.perf_counter() - t0
        own = sum(Ledger(sweep.out).get(k).get("seconds", 0.0) for k in plan.jobs)
        per = (wall - own) / len(plan.jobs)
        print(f"   local engine, {len(plan.jobs)} stages, 1 worker: wall {wall:.1f} s, stages' "
              f"own time {own:.1f} s → {per:.2f} s per stage ({verdict(per, 0.5, False)})")


if __name__ == "__main__":
    main()
