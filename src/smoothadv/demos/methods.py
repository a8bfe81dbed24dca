"""``smoothadv demo --methods …``: the seven training methods side by side on digits, fairly.

Every method trains the same small BatchNorm CNN (``digits_cnn``) for the same epochs on
digits' whole training split, with the learning rate and main weight chosen for it on a
validation split (``digits-val``: 337 of the 1,348 training images held out) by
``examples/digits_selection.toml``: :data:`GRIDS` is the grid each was chosen from and
:data:`CHOSEN` the choice, per σ. Each (σ, seed) trains its models, then certifies all of them
on the whole test split on the *same* noisy samples (:func:`~smoothadv.records.loops.
run_shared_records`: each record equals the one the model would get alone with that seed; the
noise is drawn once instead of once per model). ``workers`` processes run the (σ, seed) units
side by side, each with its share of the cores. The table gives mean ± standard deviation over
the seeds, and each method's ACR difference from Gaussian with its paired 95% interval
(:func:`~smoothadv.analysis.compare.paired_acr_difference`, per image averaged over the seeds).
"""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import analysis as A
from ..analysis.compare import paired_acr_difference
from ..records.files import read_records
from .main import DemoCertification

ARCH = "digits_cnn"
EPOCHS = 40  # every method, in the selection and in the demo
SEEDS = (0, 1, 2)
SIGMAS = (0.25, 0.5)
ALL = ("gaussian", "smoothadv", "stability", "macer", "consistency", "smoothmix", "catrs")
NAMES = {"gaussian": "Gaussian", "smoothadv": "SmoothAdv-PGD", "stability": "stability",
         "macer": "MACER", "consistency": "consistency", "smoothmix": "SmoothMix",
         "catrs": "CAT-RS"}
RADII = (0.0, 0.25, 0.5, 0.75, 1.0)
TEACHER_SIGMA = 0.25
TEACHER_DRAWS = 1000

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
# Options held fixed in the search (the others are the authors' defaults): SmoothAdv as the
# MLP demo runs it on 8×8 digits (T = 4, m = 2 multi-noise, warm-up over a fifth of training).
FIXED: dict[str, dict] = {
    "smoothadv": dict(steps=4, num_noise=2, multi_noise=True, warmup=EPOCHS // 5),
}
# The choice: the grid point of the highest validation ACR (seed 0, n = 10,000, α = 0.001; ties
# to the first in the file's order), per method and σ: the "Best of each run" table of
# runs/digits_selection/report.md after `smoothadv sweep report` (docs/training.md has it).
CHOSEN: dict[str, dict[float, dict[str, float]]] = {
    "gaussian": {0.25: {"lr": 0.1}, 0.5: {"lr": 0.2}},
    "smoothadv": {0.25: {"lr": 0.05, "epsilon": 0.5}, 0.5: {"lr": 0.1, "epsilon": 1.0}},
    "stability": {0.25: {"lr": 0.1, "lbd": 2.0}, 0.5: {"lr": 0.1, "lbd": 2.0}},
    "macer": {0.25: {"lr": 0.05, "lbd": 3.0}, 0.5: {"lr": 0.05, "lbd": 3.0}},
    "consistency": {0.25: {"lr": 0.05, "lbd": 10.0}, 0.5: {"lr": 0.05, "lbd": 5.0}},
    "smoothmix": {0.25: {"lr": 0.1, "eta": 5.0}, 0.5: {"lr": 0.05, "eta": 2.5}},
    "catrs": {0.25: {"lr": 0.05, "lbd": 0.5}, 0.5: {"lr": 0.05, "lbd": 0.5}},
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


def settings(method: str, sigma: float) -> tuple[float, dict]:
    """(learning rate, method options) of ``method`` at ``sigma``: the chosen grid point (at a
    σ outside the selection, that of the nearest σ selected) with the fixed options."""
    chosen = CHOSEN[method]
    near = min(chosen, key=lambda s: abs(math.log(s / sigma)))
    values = dict(chosen[near])
    lr = values.pop("lr")
    return lr, {**FIXED.get(method, {}), **values}


def train_config(cfg: MethodsDemo, method: str, sigma: float, seed: int, **extra):
    """The TrainConfig of one model of the demo (digits' whole training split). Each epoch's
    last, short batch is dropped: 1,348 images at batch 64 leave 4, and a 4-image step through
    BatchNorm stalled consistency training on all three seeds (the selection's 1,011 images
    leave 51, which trains normally)."""
    from ..train import TrainConfig

    lr, options = settings(method, sigma)
    return TrainConfig(
        out=str(Path(cfg.out) / f"{method}_sigma{sigma:g}_seed{seed}"), dataset="digits",
        arch=ARCH, method=method, sigma=sigma, options={**options, **extra},
        epochs=cfg.epochs, batch=64, drop_last=True, lr=lr,
        lr_step=max(1, cfg.epochs * 2 // 3), channels_last=False, seed=seed,
        device=cfg.device, progress=False)


def record_path(cfg: MethodsDemo, method: str, sigma: float, seed: int) -> Path:
    return Path(cfg.out) / f"{method}_sigma{sigma:g}_seed{seed}.tsv"


def _soft_targets(cfg: MethodsDemo, seed: int) -> Path:
    """CAT-RS's p_b for ``seed``: a σ = 0.25 Gaussian teacher (the demo's own Gaussian model of
    that seed and σ, trained here if not yet) voting 1,000 times on every training image."""
    from ..data.datasets import create_dataset
    from ..labels.soft import soft_labels
    from ..models import load_checkpoint
    from ..runtime.distributed import resolve_device
    from ..smoothing.smooth import Smooth
    from ..train import train

    # the teacher's folder refuses another configuration, so its p_b is never a stale one
    ckpt = train(train_config(cfg, "gaussian", TEACHER_SIGMA, seed))
    path = Path(cfg.out) / f"catrs_soft_targets_seed{seed}.pt"
    if path.exists():
        return path
    model, _ = load_checkpoint(ckpt, device=resolve_device(cfg.device))
    return soft_labels(Smooth(model, 10, TEACHER_SIGMA), create_dataset("digits", "train"),
                       path, num=TEACHER_DRAWS, seed=seed, progress=False)


def run_unit(cfg: MethodsDemo, sigma: float, seed: int) -> dict[str, float]:
    """Train every method at (σ, seed) and certify them together; returns seconds per step."""
    from ..data.datasets import create_dataset
    from ..models import load_checkpoint
    from ..records.loops import run_shared_records, select_indices
    from ..runtime.distributed import resolve_device
    from ..smoothing.smooth import Smooth
    from ..train import train

    device = resolve_device(cfg.device)
    seconds: dict[str, float] = {}
    models, outs = [], []
    for method in cfg.methods:
        t0 = time.perf_counter()
        extra = ({"soft_targets": str(_soft_targets(cfg, seed))} if method == "catrs" else {})
        ckpt = train(train_config(cfg, method, sigma, seed, **extra))
        seconds[f"train {method}"] = time.perf_counter() - t0
        models.append(load_checkpoint(ckpt, device=device)[0])
        outs.append(_claim_record(cfg, method, sigma, seed, ckpt))
    t0 = time.perf_counter()
    test = create_dataset("digits", "test")
    run_shared_records(Smooth(models[0], 10, sigma), models, test, select_indices(len(test)),
                       outs, n0=cfg.n0, n=cfg.n, alpha=cfg.alpha, batch_size=cfg.batch,
                       seed=seed, progress=cfg.progress and cfg.workers == 1)
    seconds["certify"] = time.perf_counter() - t0
    return seconds


def _claim_record(cfg: MethodsDemo, method: str, sigma: float, seed: int, ckpt: Path) -> Path:
    """The record path of one model, claimed as ``smoothadv certify`` claims its records: the
    same CertifyConfig and checkpoint content resume it, another is refused in one line; its
    config document is written beside it."""
    from ..configs import config_document
    from ..stages import CertifyConfig
    from ..stages.evaluation import claim_record, config_path, file_fingerprint

    out = record_path(cfg, method, sigma, seed)
    rec = CertifyConfig(checkpoint=str(ckpt), dataset="digits", sigma=sigma, n=cfg.n,
                        n0=cfg.n0, alpha=cfg.alpha, seed=seed, batch=cfg.batch, out=str(out),
                        device=cfg.device, progress=False)
    fingerprint = file_fingerprint(str(ckpt))
    claim_record(rec, fingerprint)
    document = config_document(rec, sigma=sigma, checkpoint_sha256=fingerprint,
                               radius_rounding="down", certified_with=list(cfg.methods))
    config_path(out).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return out


def run_methods_demo(cfg: MethodsDemo) -> Path:
    """Train, certify and tabulate every (method, σ, seed); returns ``report.md``'s path."""
    from ..errors import UserError
    from ..sweep.local import init_worker

    unknown = [m for m in cfg.methods if m not in CHOSEN]
    if unknown:
        raise UserError(f"unknown demo method {unknown[0]!r}; choose from {', '.join(ALL)} "
                        "or all")
    if cfg.workers < 1:
        raise UserError(f"--workers must be at least 1, got {cfg.workers}")
    start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    units = [(sigma, seed) for seed in cfg.seeds for sigma in cfg.sigmas]
    threads = max(1, (os.cpu_count() or 1) // cfg.workers)
    print(f"{len(cfg.methods)} methods × σ {', '.join(f'{s:g}' for s in cfg.sigmas)} × seeds "
          f"{', '.join(map(str, cfg.seeds))}: {len(units)} units on {cfg.workers} worker(s) "
          f"of {threads} thread(s); n = {cfg.n:,}", flush=True)
    timings: dict[str, float] = {}
    context = multiprocessing.get_context("spawn")
    # the sweep's worker set-up: each dies with this process (so a killed demo leaves no
    # worker writing records that a resumed one also writes) and takes its share of threads
    with ProcessPoolExecutor(cfg.workers, mp_context=context, initializer=init_worker,
                             initargs=(threads, None)) as pool:
        if "catrs" in cfg.methods:  # the teachers first: units of one seed share them
            for seed, _ in zip(cfg.seeds, pool.map(_soft_targets, [cfg] * len(cfg.seeds),
                                                   cfg.seeds)):
                print(f"CAT-RS teacher and soft labels of seed {seed} ready", flush=True)
        futures = {pool.submit(run_unit, cfg, sigma, seed): (sigma, seed)
                   for sigma, seed in units}
        for future, (sigma, seed) in futures.items():
            secs = future.result()
            for key, value in secs.items():
                timings[key] = timings.get(key, 0.0) + value
            print(f"σ={sigma:g} seed {seed}: trained and certified "
                  f"({sum(secs.values()):.0f} s)", flush=True)
    elapsed = time.perf_counter() - start
    report = write_report(cfg, elapsed, timings)
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


def load_all(cfg: MethodsDemo) -> dict[tuple[str, float], list]:
    """Every record of the demo, read once: {(method, σ): [records of each seed]}."""
    return {(m, sigma): [read_records(record_path(cfg, m, sigma, s)) for s in cfg.seeds]
            for sigma in cfg.sigmas for m in cfg.methods}


def cells(cfg: MethodsDemo, records: dict[tuple[str, float], list]) -> list[Cell]:
    """Every (method, σ)'s figures from ``records`` (:func:`load_all`), with the paired ACR
    interval against Gaussian where Gaussian was run."""
    out = []
    for sigma in cfg.sigmas:
        recs = {m: records[m, sigma] for m in cfg.methods}
        for m in cfg.methods:
            cert = np.array([A.certified_accuracy(r, RADII) for r in recs[m]])
            acr = np.array([A.average_certified_radius(r) for r in recs[m]])
            cell = Cell(m, sigma, cert, acr)
            if "gaussian" in recs and m != "gaussian":
                diff, interval = paired_acr_difference(list(zip(recs[m], recs["gaussian"])))
                cell.acr_difference, cell.interval = diff, interval
            out.append(cell)
    return out


def _pm(values: np.ndarray) -> str:
    spread = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return f"{values.mean():.3f} ± {spread:.3f}"


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


def table(group: list[Cell]) -> str:
    """The markdown table of one σ."""
    checks = verdicts(group)
    head = ["method", "lr, weight"] + [f"r={r:g}" for r in RADII] + [
        "ACR", "ACR − Gaussian [95%]", "pattern"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in group:
        lr, options = settings(c.method, c.sigma)
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


def write_report(cfg: MethodsDemo, elapsed: float, timings: dict[str, float]) -> Path:
    """``report.md`` and ``curves.png`` in ``cfg.out`` from the records."""
    out = Path(cfg.out)
    records = load_all(cfg)
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
        lines += [f"## σ = {sigma:g}", "", table([c for c in all_cells if c.sigma == sigma]),
                  ""]
    lines += ["![certified accuracy against radius](curves.png)", "",
              "Time (summed over workers): " + ", ".join(
                  f"{k} {v:.0f} s" for k, v in sorted(timings.items())) + ".",
              f"Elapsed: {elapsed:.0f} s.", ""]
    path = out / "report.md"
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
