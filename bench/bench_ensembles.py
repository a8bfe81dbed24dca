"""16. Ensembles of the seven-method demo's seeds (Horváth et al., ICLR 2022), on digits.

For each method and σ asked for, the three seeds' trained ``digits_cnn`` models of a finished
``smoothadv demo --methods …`` folder are certified as an ensemble (their mean logits) on all
449 test images, and compared with

- each member certified alone at the same n (the strongest member by ACR, with the paired 95%
  interval of the per-image ACR difference);
- the strongest member at an equal number of base-classifier evaluations: the ensemble at
  n / 3 (3 members × n / 3 samples), as the authors' Table 14 compares;
- the ensemble with 2-consensus aggregation: the fraction of member evaluations it skipped, and
  its ACR beside the full ensemble's (its certificates are of another classifier, equal to the
  ensemble wherever the first two members agree with it; its counts, and so its radii, move a
  little).

Every record is written by ``smoothadv certify`` into ``--work`` (resumable: a second run only
reads them back), so the figures are those of the command line.

    python bench/bench_ensembles.py --demo runs/demo_methods --n 10000
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from common import machine
from smoothadv.analysis.compare import paired_acr_difference
from smoothadv.analysis.metrics import average_certified_radius
from smoothadv.cli import main as cli
from smoothadv.demos.methods import MethodsDemo, methods_sweep_data
from smoothadv.records.files import read_records
from smoothadv.sweep import build_plan, sweep_from_data


def members_of(demo: Path, method: str, sigma: float, epochs: int) -> list[str]:
    """The checkpoints of ``method`` at ``sigma`` over the demo's seeds (0, 1, 2) that exist."""
    cfg = MethodsDemo(out=str(demo), methods=(method,), sigmas=(sigma,), epochs=epochs)
    plan = build_plan(sweep_from_data(methods_sweep_data(cfg), demo / "methods.toml"))
    trained = sorted((j.config.seed, str(j.output)) for j in plan.jobs.values()
                      if j.kind == "train" and j.config.method == method
                      and j.config.sigma == sigma)
    return [path for _, path in trained if Path(path).exists()]


def certify(models: list[str], out: Path, n: int, *extra: str) -> tuple[object, str]:
    """The record of ``models`` (one: alone; several: their ensemble) at n, and the closing
    line ``certify`` printed (kept beside the record, so a resumed benchmark reads it back)."""
    import contextlib
    import io

    said = out.with_suffix(".said")
    if not out.exists() or not said.exists():
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer), contextlib.redirect_stderr(io.StringIO()):
            assert cli(["certify", *models, "--n", str(n), "--no-progress", "--no-compile",
                        "--out", str(out), *extra]) == 0
        said.write_text(buffer.getvalue())
    return read_records(out), said.read_text()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--demo", default="runs/demo_methods", help="a finished demo folder")
    p.add_argument("--methods", nargs="+", default=["gaussian", "consistency", "smoothmix"])
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.25, 0.5])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--epochs", type=int, default=40, help="the demo's --epochs (40)")
    p.add_argument("--work", default="runs/bench_ensembles")
    args = p.parse_args()
    demo, work = Path(args.demo), Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    print(f"16. ensembles of the demo's three seeds ({machine()}), n = {args.n:,}, 449 images")
    print("| method | σ | members' ACR | best member | ensemble | ensemble − best [95%] | "
          "ensemble at n/3 − best | 2-consensus skipped | 2-consensus ACR |")
    print("|---|---|---|---|---|---|---|---|---|")
    for sigma in args.sigmas:
        for method in args.methods:
            models = members_of(demo, method, sigma, args.epochs)
            tag = f"{method}_s{sigma:g}"
            alone = [certify([m], work / f"{tag}_seed{i}.tsv", args.n)[0]
                     for i, m in enumerate(models)]
            acrs = [average_certified_radius(r) for r in alone]
            best = alone[int(np.argmax(acrs))]
            ens, _ = certify(models, work / f"{tag}_ensemble.tsv", args.n)
            third, _ = certify(models, work / f"{tag}_ensemble_third.tsv", args.n // 3)
            cons, line = certify(models, work / f"{tag}_ensemble_k2.tsv", args.n,
                                 "--consensus", "2")
            skipped = line.split("2-consensus skipped ")[1].split(" of")[0]
            diff, (lo, hi) = paired_acr_difference([(ens, best)])
            diff3, (lo3, hi3) = paired_acr_difference([(third, best)])
            print(f"| {method} | {sigma:g} | {', '.join(f'{a:.3f}' for a in acrs)} | "
                  f"{max(acrs):.3f} | {average_certified_radius(ens):.3f} | "
                  f"{diff:+.3f} [{lo:+.3f}, {hi:+.3f}] | {diff3:+.3f} [{lo3:+.3f}, {hi3:+.3f}] | "
                  f"{skipped} | {average_certified_radius(cons):.3f} |", flush=True)


if __name__ == "__main__":
    main()
