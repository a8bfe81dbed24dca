"""``smoothadv demo --methods …``: the seven training methods side by side on digits, fairly.

Every method trains the same small BatchNorm CNN (``digits_cnn``) for the same epochs on
digits' whole training split, with the learning rate and main weight chosen for it on a
validation split (``digits-val``: 337 of the 1,348 training images held out) by
``examples/digits_selection.toml``: :data:`GRIDS` is the grid each was chosen from, the shipped
sweep file :data:`METHODS_FILE` the choice, one run per (method, σ). The demo repeats those runs
for each seed and runs them on the sweep engine (resumable, refusing a changed configuration,
on SLURM with ``--write-sweep``); the models of one (σ, seed) are certified together on shared
noise (``shared_noise``: each record equals the one the model gets alone). The table gives
mean ± standard deviation over the seeds, and each method's ACR difference from Gaussian with
its paired 95% interval (:func:`~smoothadv.analysis.compare.paired_acr_difference`, per image
averaged over the seeds).
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomllib

from .. import analysis as A
from ..analysis.compare import OverSeeds, over_seeds
from ..records.files import read_records
from .main import DemoCertification, run_shipped

ARCH = "digits_cnn"
EPOCHS = 40  # every method, in the selection and in the demo
SEEDS = (0, 1, 2)
SIGMAS = (0.25, 0.5)
ALL = ("gaussian", "smoothadv", "stability", "macer", "consistency", "smoothmix", "catrs")
NAMES = {"gaussian": "Gaussian", "smoothadv": "SmoothAdv-PGD", "stability": "stability",
         "macer": "MACER", "consistency": "consistency", "smoothmix": "SmoothMix",
         "catrs": "CAT-RS"}
RADII = (0.0, 0.25, 0.5, 0.75, 1.0)
METHODS_FILE = Path(__file__).with_name("methods.toml")

# The grid each method's settings were chosen from (examples/digits_selection.toml: a test
# keeps the two equal): its learning rate and its main weight around its authors' values.
GRIDS: dict[str, dict[str, tuple[float, ...]]] = {
    "gaussian": {"lr": (0.05, 0.1, 0.2)},
    "smoothadv": {"lr": (0.05, 0.1, 0.2), "epsilon": (0.25, 0.5, 1.0)},
    "stability": {"lr": (0.05, 0.1, 0.2), "lbd": (0.5, 1.0, 2.0)},
    "macer": {"lr": (0.05, 0.1, 0.2), "lbd": (3.0, 6.0, 12.0)},
    "consistency": {"lr": (0.05, 0.1, 0.2), "lbd": (5.0, 10.0, 20.0)},
    "smoothmix": {"lr": (0.05, 0.1, 0.2), "eta": (2.5, 5.0, 10.0)},
    "catrs": {"lr": (0.05, 0.1, 0.2), "lbd": (0.5, 1.0, 2.0)},
}


@dataclass(frozen=True)
class MethodsDemo(DemoCertification):
    """Options of the seven-method demo (defaults: the documented run)."""

    out: str = "runs/demo_methods"
    methods: tuple[str, ...] = ALL
    sigmas: tuple[float, ...] = SIGMAS
    seeds: tuple[int, ...] = SEEDS
    epochs: int = EPOCHS
    workers: int = 2


def shipped_runs() -> dict[tuple[str, float], dict]:
    """The runs of :data:`METHODS_FILE` by (method, σ)."""
    data = tomllib.loads(METHODS_FILE.read_text(encoding="utf-8"))
    return {(r["train"]["method"], float(r["train"]["sigma"])): r for r in data["runs"]}


def _run_at(runs: dict[tuple[str, float], dict], method: str, sigma: float) -> dict:
    """A copy of ``method``'s run at ``sigma`` (at a σ outside the file, the nearest σ's)."""
    near = min((s for m, s in runs if m == method), key=lambda s: abs(math.log(s / sigma)))
    return copy.deepcopy(runs[method, near])


def settings(method: str, sigma: float) -> tuple[float, dict]:
    """(learning rate, method options) of ``method`` at ``sigma``, as the demo trains it."""
    run = _run_at(shipped_runs(), method, sigma)
    return run["train"]["lr"], dict(run.get("options", {}).get(method, {}))


def methods_sweep_data(cfg: MethodsDemo) -> dict:
    """The demo's sweep: :data:`METHODS_FILE`'s run of each method of ``cfg`` at each σ, for
    each seed (training and certification), with ``cfg``'s epochs (the learning rate decays
    after two thirds of them), n, n0, α, batch, device and progress bars."""
    data = tomllib.loads(METHODS_FILE.read_text(encoding="utf-8"))
    runs = shipped_runs()
    out = []
    for seed in cfg.seeds:
        for sigma in cfg.sigmas:
            for method in cfg.methods:
                run = _run_at(runs, method, sigma)
                run["label"] = f"{method} σ={sigma:g} seed={seed}"
                run["train"].update(sigma=sigma, seed=seed, epochs=cfg.epochs,
                                    lr_step=max(1, cfg.epochs * 2 // 3), device=cfg.device)
                run["certify"].update(n=cfg.n, n0=cfg.n0, alpha=cfg.alpha, batch=cfg.batch,
                                      seed=seed, device=cfg.device, progress=cfg.progress)
                out.append(run)
    return {**data, "out": cfg.out, "runs": out}


def run_methods_demo(cfg: MethodsDemo, write_sweep: str | None = None) -> Path:
    """Train, certify and tabulate every (method, σ, seed) on the sweep engine; returns
    ``report.md``'s path (with ``write_sweep``, the sweep file written there instead)."""
    from ..errors import UserError

    unknown = [m for m in cfg.methods if m not in ALL]
    if unknown:
        raise UserError(f"unknown demo method {unknown[0]!r}; choose from {', '.join(ALL)} "
                        "or all")
    if cfg.workers < 1:
        raise UserError(f"--workers must be at least 1, got {cfg.workers}")
    start = time.perf_counter()
    if not write_sweep:
        print(f"{len(cfg.methods)} methods × σ {', '.join(f'{s:g}' for s in cfg.sigmas)} × seeds "
              f"{', '.join(map(str, cfg.seeds))} on {cfg.workers} worker(s); n = {cfg.n:,}",
              flush=True)
    done = run_shipped(methods_sweep_data(cfg), METHODS_FILE, write_sweep, cfg.workers)
    if done is None:
        return Path(write_sweep)
    plan, ledger = done
    records: dict[tuple[str, float], dict[int, Path]] = {}
    chosen: dict[tuple[str, float], tuple[float, dict]] = {}
    timings: dict[str, float] = {}
    for run in plan.runs:
        c = plan.jobs[run.train_job].config
        records.setdefault((c.method, c.sigma), {})[c.seed] = plan.jobs[run.record_job].output
        chosen[c.method, c.sigma] = (c.lr, c.options)
    for key, job in plan.jobs.items():
        kind = f"train {job.config.method}" if job.kind == "train" else job.kind.split("-")[0]
        timings[kind] = timings.get(kind, 0.0) + float(ledger.get(key).get("seconds", 0.0))
    loaded = {k: [read_records(v[s]) for s in cfg.seeds] for k, v in records.items()}
    report = write_report(cfg, loaded, chosen, time.perf_counter() - start, timings)
    print(report.read_text(encoding="utf-8"))
    return report


@dataclass
class Cell:
    """One (method, σ): figures over the seeds."""

    method: str
    sigma: float
    certified: np.ndarray  # [seeds, radii]
    acr: np.ndarray  # [seeds]
    acr_difference: float | None = None  # against Gaussian, mean over seeds
    interval: tuple[float, float] | None = None  # its paired 95% interval


def cells(cfg: MethodsDemo, records: dict[tuple[str, float], list]) -> list[Cell]:
    """Every (method, σ)'s figures from ``records`` ({(method, σ): the record of each seed}),
    with the paired ACR interval against Gaussian where Gaussian was run."""
    out = []
    for sigma in cfg.sigmas:
        recs = {m: records[m, sigma] for m in cfg.methods}
        for m in cfg.methods:
            reference = recs["gaussian"] if "gaussian" in recs and m != "gaussian" else None
            seeds = over_seeds(recs[m], list(RADII), reference)
            out.append(Cell(m, sigma, seeds.certified, seeds.acr, seeds.difference,
                            seeds.interval))
    return out


_pm = OverSeeds.spread


def verdicts(group: list[Cell]) -> dict[str, str]:
    """The published pattern, per method at one σ: ✓ or ✗ with the figure it rests on."""
    gauss = next((c for c in group if c.method == "gaussian"), None)
    if gauss is None:
        return {}
    clean_g = gauss.certified[:, 0].mean()
    out = {}
    for c in group:
        if c.method == "gaussian":
            continue
        low, high = c.interval
        clean_ok = c.certified[:, 0].mean() >= 0.8 * clean_g
        if c.method == "stability":
            acr_ok = c.acr_difference >= -(high - low) / 2
            rule = "ACR ≥ Gaussian − half-width"
        else:
            acr_ok = low > 0
            rule = "ACR interval above 0"
        out[c.method] = (f"{'✓' if acr_ok else '✗'} {rule}; "
                         f"{'✓' if clean_ok else '✗'} clean ≥ 0.8 × Gaussian's")
    return out


def table(group: list[Cell], chosen: dict[tuple[str, float], tuple[float, dict]]) -> str:
    """The markdown table of one σ; ``chosen``: each (method, σ)'s (lr, method options)."""
    checks = verdicts(group)
    head = ["method", "lr, weight"] + [f"r={r:g}" for r in RADII] + [
        "ACR", "ACR − Gaussian [95%]", "pattern"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in group:
        lr, options = chosen[c.method, c.sigma]
        weight = ", ".join(f"{k} {options[k]:g}" for k in GRIDS[c.method] if k != "lr")
        diff = ("" if c.acr_difference is None else
                f"{c.acr_difference:+.3f} [{c.interval[0]:+.3f}, {c.interval[1]:+.3f}]")
        lines.append("| " + " | ".join(
            [NAMES[c.method], f"{lr:g}" + (f", {weight}" if weight else "")]
            + [_pm(c.certified[:, j]) for j in range(len(RADII))]
            + [_pm(c.acr), diff, checks.get(c.method, "")]) + " |")
    return "\n".join(lines)


def plot(cfg: MethodsDemo, records: dict[tuple[str, float], list], path: Path) -> Path:
    """Certified accuracy against radius: one panel per σ, each method's mean curve over the
    seeds with the band between the seeds' lowest and highest."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(cfg.sigmas), figsize=(5.2 * len(cfg.sigmas), 4.0),
                             dpi=150, squeeze=False)
    for ax, sigma in zip(axes[0], cfg.sigmas):
        grid = np.linspace(0, 4 * sigma, 300)
        for m in cfg.methods:
            curves = np.array([A.certified_accuracy(r, grid) for r in records[m, sigma]])
            line, = ax.plot(grid, curves.mean(0), label=NAMES[m], linewidth=1.5)
            ax.fill_between(grid, curves.min(0), curves.max(0), color=line.get_color(),
                            alpha=0.15, linewidth=0)
        ax.set_title(f"σ = {sigma:g}")
        ax.set_xlabel("ℓ2 radius (pixel space, images in [0,1])")
        ax.set_ylabel("certified accuracy")
        ax.set_ylim(0, 1)
        ax.set_xlim(0, grid[-1])
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="upper right")
    fig.suptitle(f"digits, {ARCH}, {len(cfg.seeds)} seeds (mean, min–max band), "
                 f"n = {cfg.n:,}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def write_report(cfg: MethodsDemo, records: dict[tuple[str, float], list],
                 chosen: dict[tuple[str, float], tuple[float, dict]], elapsed: float,
                 timings: dict[str, float]) -> Path:
    """``report.md`` and ``curves.png`` in ``cfg.out`` from the records ({(method, σ): records
    of each seed}); ``chosen``: each (method, σ)'s (lr, method options); ``timings``: seconds
    per kind of stage, summed over the runs that did them."""
    out = Path(cfg.out)
    all_cells = cells(cfg, records)
    plot(cfg, records, out / "curves.png")
    lines = [
        "# smoothadv demo --methods: the training methods side by side on digits", "",
        f"Network `{ARCH}`, {cfg.epochs} epochs, batch 64, SGD (lr ×0.1 after "
        f"{max(1, cfg.epochs * 2 // 3)} epochs), per-method lr and weight chosen on the "
        "validation split (`examples/digits_selection.toml`). Certification: all "
        f"{len(next(iter(records.values()))[0])} "
        f"test images, n0 = {cfg.n0}, n = {cfg.n:,}, α = {cfg.alpha}; seeds "
        f"{', '.join(map(str, cfg.seeds))} (mean ± standard deviation over the seeds).", ""]
    for sigma in cfg.sigmas:
        lines += [f"## σ = {sigma:g}", "",
                  table([c for c in all_cells if c.sigma == sigma], chosen), ""]
    lines += ["![certified accuracy against radius](curves.png)", "",
              "Time of the stages (summed over the workers): " + ", ".join(
                  f"{k} {v:.0f} s" for k, v in sorted(timings.items())) + ".",
              f"Elapsed: {elapsed:.0f} s.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
