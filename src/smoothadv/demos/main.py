"""The main job: the paper's central comparison at small scale, on scikit-learn's digits.

Two models of the same architecture (the digits MLP) get the same training budget, one with
Gaussian data augmentation (Cohen et al.) and one with SmoothAdv-PGD (Salman et al.); both are
certified on the whole test split and compared by certified accuracy and ACR. Nothing is
downloaded. The seven training methods side by side are another demo
(:mod:`smoothadv.demos.methods`: a BatchNorm CNN, per-method settings chosen on a validation
split, three seeds).

SmoothAdv settings for 8×8 digits (pixel values in [0,1], image norms ≈ 3): ε = 0.5 (about
a sixth of an image's norm, like the paper's ε = 0.5 on CIFAR-10's ≈ 30), T = 4 steps,
m_train = 2 noise draws with multi-noise training, and a warm-up over the first fifth of the
epochs. These were chosen by trying ε ∈ {0.5, 0.75, 1.0}, T ∈ {2, 4, 6}, m ∈ {2, 4} at
σ = 0.25 with n = 10,000 (see the README's demo section).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tomllib

from .. import analysis as A
from ..sweep import Ledger, adopt_earlier_names, build_plan, run_local, sweep_from_data, to_toml
from ..sweep.plan import describe

RADII = (0.0, 0.25, 0.5, 0.75, 1.0)


def show(summaries: list[A.Summary], plot: Path, **plot_options) -> A.Table:
    """Print the demo's table of ``summaries`` and draw their curves into ``plot``; returns
    the table (for the report)."""
    table = A.summary_table(summaries)
    print()
    print(A.render(table, "text"))
    A.plot_curves(summaries, plot, **plot_options)
    return table


def publish(out: Path, stem: str, heading: str, about: list[str], summaries: list[A.Summary],
            start: float, **plot_options) -> Path:
    """Print the table, draw ``{stem}curves.png`` and write ``{stem}report.md`` (the heading,
    the ``about`` lines, the table, the curves, the time since ``start``) into ``out``;
    returns the report's path."""
    curves = f"{stem}curves.png"
    table = show(summaries, out / curves, **plot_options)
    elapsed = time.perf_counter() - start
    path = out / f"{stem}report.md"
    path.write_text("\n".join([heading, "", *about, "", A.render(table, "markdown"), "",
                               f"![certified accuracy against radius]({curves})", "",
                               f"Elapsed: {elapsed:.1f} s.", ""]), encoding="utf-8")
    print(f"records, {curves} and {path.name} in {out}; elapsed {elapsed:.1f} s")
    return path


@dataclass(frozen=True)
class DemoCertification:
    """What every demo certifies with: CERTIFY's n0, n and α (the paper's), noisy samples per
    forward, the device and the progress bars."""

    n0: int = 100
    n: int = 100_000
    alpha: float = 0.001
    batch: int = 1_000
    device: str = "auto"
    progress: bool = True


@dataclass(frozen=True)
class DemoConfig(DemoCertification):
    """Options of ``smoothadv demo`` (defaults: the documented main job)."""

    out: str = "runs/demo"
    sigmas: tuple[float, ...] = (0.25,)
    epochs: int = 60
    epsilon: float = 0.5
    steps: int = 4
    m_train: int = 2
    quick: bool = False
    seed: int = 0
    methods: tuple[str, ...] = ("gaussian", "smoothadv")


METHODS = {  # name, the method's options given (the others: its authors' defaults)
    "gaussian": ("Gaussian", lambda c: {}),
    "smoothadv": ("SmoothAdv-PGD", lambda c: dict(
        attack="pgd", epsilon=c.epsilon, steps=c.steps, num_noise=c.m_train,
        multi_noise=True, warmup=max(1, c.epochs // 5))),
}


def budget(cfg: DemoConfig) -> tuple[int, int]:
    """(n, epochs) of a run: the config's, or with ``quick`` n = 10,000 and half the epochs."""
    if cfg.quick:
        return 10_000, max(1, cfg.epochs // 2)
    return cfg.n, cfg.epochs


SWEEP_FILE = Path(__file__).with_name("main.toml")


def shipped_sweep(path: Path, cfg: DemoConfig) -> dict:
    """The contents of a demo's sweep file shipped with the package, with ``cfg``'s options
    applied to every run: σ, epochs (the learning rate decays after two thirds of them), the
    seed, n, n0, α, the batch, the device and the progress bars."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    n, epochs = budget(cfg)
    for run in data["runs"]:
        run["train"].update(epochs=epochs, lr_step=max(1, epochs * 2 // 3), seed=cfg.seed,
                            device=cfg.device)
        run["grid"]["sigma"] = list(cfg.sigmas)
        run["certify"].update(n=n, n0=cfg.n0, alpha=cfg.alpha, batch=cfg.batch, seed=cfg.seed,
                              device=cfg.device, progress=cfg.progress)
    data["out"] = cfg.out
    return data


def demo_sweep_data(cfg: DemoConfig) -> dict:
    """The main demo's sweep: :data:`SWEEP_FILE` with ``cfg``'s options, its methods and
    SmoothAdv's settings (the warm-up a fifth of the epochs)."""
    data = shipped_sweep(SWEEP_FILE, cfg)
    run = data["runs"][0]
    run["grid"]["method"] = list(cfg.methods)
    run["options"]["smoothadv"].update(epsilon=cfg.epsilon, steps=cfg.steps,
                                       num_noise=cfg.m_train,
                                       warmup=max(1, budget(cfg)[1] // 5))
    return data


def _check_sweep_target(path: Path) -> None:
    """Refuse, untouched, a ``--write-sweep`` target that exists and is not a sweep file (a
    checkpoint, notes, a record): only a file with ``[[runs]]`` is replaced."""
    if not path.exists():
        return
    from ..errors import UserError

    try:
        ours = path.is_file() and "runs" in tomllib.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError):
        ours = False
    if not ours:
        raise UserError(f"--write-sweep {path} exists and is not a sweep file: name a new file "
                        "(nothing was written)")


def run_shipped(data: dict, path: Path, write_sweep: str | None = None, workers: int = 1):
    """Run a demo's sweep ``data`` (from the shipped file ``path``) on the local engine,
    ``workers`` stages at a time, each named as ``sweep status`` names it; returns (plan,
    ledger), or None after writing the sweep to ``write_sweep`` instead."""
    from ..errors import UserError

    if write_sweep:
        _check_sweep_target(Path(write_sweep))
        Path(write_sweep).write_text(to_toml(data), encoding="utf-8")
        print(f"the demo's sweep: {write_sweep}; run it with smoothadv sweep run {write_sweep}")
        return None
    sweep = sweep_from_data(data, path)
    plan = build_plan(sweep)
    adopt_earlier_names(plan, sweep.out)
    ledger = Ledger(sweep.out)
    names = {key: describe(job) for key, job in plan.jobs.items()}

    def say(line: str) -> None:
        key, _, rest = line.partition(": ")
        print(f"{names[key]}: {rest}" if key in names else line, flush=True)

    if not run_local(plan, ledger, workers=workers, say=say):
        raise UserError(f"a stage of the demo failed (its line above; smoothadv sweep status "
                        f"FILE with the file of --write-sweep FILE lists them); finished "
                        f"stages in {sweep.out} are kept")
    return plan, ledger


def run_demo(cfg: DemoConfig, write_sweep: str | None = None) -> Path:
    """Train, certify and compare on the sweep engine (resumable: a finished stage is not run
    again; changed options are new stages beside the old); returns the path of ``report.md``.
    With ``write_sweep``, only write the demo's sweep file there (for ``smoothadv sweep run
    FILE --engine slurm``) and return its path."""
    unknown = [m for m in cfg.methods if m not in METHODS]
    if unknown:
        from ..errors import UserError

        raise UserError(f"the main demo compares {' and '.join(METHODS)}, not "
                        f"{unknown[0]!r} (the seven methods: smoothadv.demos.methods)")
    start = time.perf_counter()
    done = run_shipped(demo_sweep_data(cfg), SWEEP_FILE, write_sweep)
    if done is None:
        return Path(write_sweep)
    plan, ledger = done
    n, epochs = budget(cfg)
    records, labels = [], []
    train_seconds: dict[str, float] = {}
    for run in plan.runs:
        method = plan.jobs[run.train_job].config.method
        label = f"{METHODS[method][0]} σ={run.sigma:g}"
        records.append(plan.jobs[run.record_job].output)
        labels.append(label)
        train_seconds[label] = float(ledger.get(run.train_job).get("seconds", float("nan")))
    out = Path(cfg.out)
    summaries = A.load_summaries(records, RADII, labels)
    table = show(summaries, out / "curves.png", max_radius=1.25,
                 title=f"digits, MLP, n={n:,}, α={cfg.alpha}")
    elapsed = time.perf_counter() - start
    report = _report(cfg, summaries, table, n, epochs, elapsed, train_seconds)
    (out / "report.md").write_text(report, encoding="utf-8")
    print(f"\n{_verdict(summaries)}")
    print(f"records (stages/), curves.png and report.md in {out}; elapsed {elapsed:.1f} s")
    return out / "report.md"


def _verdict(summaries: list[A.Summary]) -> str:
    """Which method wins, per σ, as measured (ACR and certified accuracy at r ≥ 0.5)."""
    lines = []
    by_sigma: dict[float | None, list[A.Summary]] = {}
    for s in summaries:
        by_sigma.setdefault(s.sigma, []).append(s)
    for sigma, group in by_sigma.items():
        j = RADII.index(0.5)
        if len(group) == 2:
            gauss, adv = group
            winner = adv.label.split(" ")[0] if adv.acr > gauss.acr else \
                gauss.label.split(" ")[0]
            lines.append(
                f"σ={sigma:g}: {winner} has the larger ACR ({adv.acr:.3f} {_name(adv)} vs "
                f"{gauss.acr:.3f} {_name(gauss)}); certified accuracy at r=0.5: "
                f"{adv.certified[j]:.3f} vs {gauss.certified[j]:.3f}; clean accuracy of g: "
                f"{adv.clean:.3f} vs {gauss.clean:.3f}.")
            continue
        ranked = sorted(group, key=lambda s: -s.acr)
        lines.append(f"σ={sigma:g}, by ACR: " + ", ".join(
            f"{_name(s)} {s.acr:.3f} (r=0.5: {s.certified[j]:.3f})" for s in ranked) + ".")
    return "\n".join(lines)


def _name(summary: A.Summary) -> str:
    return summary.label.rsplit(" σ=", 1)[0]


def _report(cfg: DemoConfig, summaries, table, n: int, epochs: int, elapsed: float,
            train_seconds: dict[str, float]) -> str:
    rows = [f"- {k}: {v:.1f} s" for k, v in train_seconds.items()]
    best = int(np.argmax([s.acr for s in summaries]))
    return "\n".join([
        "# smoothadv demo: Gaussian augmentation against SmoothAdv on digits",
        "",
        f"Data: scikit-learn's 8×8 digits, {summaries[0].rows} test images. Model: the "
        f"`mlp` (64-256-256-10), {epochs} epochs, batch 64, SGD lr 0.1 (×0.1 after "
        f"{max(1, epochs * 2 // 3)} epochs) for both methods.",
        f"SmoothAdv-PGD: ε = {cfg.epsilon}, T = {cfg.steps} steps, m_train = {cfg.m_train} "
        f"with multi-noise, warm-up {max(1, epochs // 5)} epochs.",
        f"Certification: n0 = {cfg.n0}, n = {n:,}, α = {cfg.alpha}, seed {cfg.seed}.",
        "",
        A.render(table, "markdown"),
        "",
        _verdict(summaries),
        f"Largest ACR: {summaries[best].label}.",
        "",
        "![certified accuracy against radius](curves.png)",
        "",
        "Training time:",
        *rows,
        "",
        "Records:",
        *[f"- {s.label}: `{s.path}`" for s in summaries],
        "",
        f"Elapsed: {elapsed:.1f} s.",
        "",
    ])


# ---------------------------------------------------------------- denoised smoothing



DENOISED_FILE = Path(__file__).with_name("denoised.toml")


def denoised_sweep_data(cfg: DemoConfig) -> dict:
    """The denoised demo's sweep: :data:`DENOISED_FILE`'s runs repeated at each σ of ``cfg``
    (the certification's σ, the denoisers' and the Gaussian model's; the noise-free classifier
    keeps one σ, so it is trained once), with the demo's budget: the denoisers train for a
    third of the epochs (at least 2), Stab for half of that; n = 10,000 (1,000 with quick)."""
    import copy

    template = tomllib.loads(DENOISED_FILE.read_text(encoding="utf-8"))
    epochs = budget(cfg)[1]
    dn_epochs = max(2, epochs // 3)
    n = 1_000 if cfg.quick else 10_000
    runs = []
    for sigma in cfg.sigmas:
        for run in copy.deepcopy(template["runs"]):
            run["train"].update(epochs=epochs, lr_step=max(1, epochs * 2 // 3), seed=cfg.seed,
                                device=cfg.device)
            if run["train"]["method"] != "clean":
                run["train"]["sigma"] = sigma
            run["certify"].update(sigma=sigma, n=n, n0=cfg.n0, alpha=cfg.alpha, batch=cfg.batch,
                                  seed=cfg.seed, device=cfg.device, progress=cfg.progress)
            denoiser = run.get("denoiser")
            while denoiser is not None:
                first = "init" not in denoiser  # the MSE stage; Stab continues it
                denoiser.update(epochs=dn_epochs if first else max(1, dn_epochs // 2),
                                lr_step=max(1, dn_epochs * 2 // 3), seed=cfg.seed,
                                device=cfg.device)
                denoiser = denoiser.get("init")
            runs.append(run)
    return {**template, "out": cfg.out, "runs": runs}


def run_denoised_demo(cfg: DemoConfig, write_sweep: str | None = None) -> Path:
    """The pattern of Salman et al. (2020)'s tables on digits (:data:`DENOISED_FILE`), on the
    sweep engine: a classifier trained without noise, certified alone, behind an MSE-trained
    DnCNN and behind Stab+MSE, beside a Gaussian-trained model, at each σ. Writes
    ``denoised_curves.png`` and ``denoised_report.md``; returns the report (with
    ``write_sweep``, the sweep file written instead)."""
    start = time.perf_counter()
    done = run_shipped(denoised_sweep_data(cfg), DENOISED_FILE, write_sweep)
    if done is None:
        return Path(write_sweep)
    plan, _ = done
    epochs = budget(cfg)[1]
    dn_epochs = max(2, epochs // 3)
    n = 1_000 if cfg.quick else 10_000
    out = Path(cfg.out)
    records = [plan.jobs[r.record_job].output for r in plan.runs]
    labels = [f"{r.group} σ={plan.jobs[r.record_job].config.sigma:g}" for r in plan.runs]
    mse = next(j.config for j in plan.jobs.values() if j.kind == "train-denoiser")
    summaries = A.load_summaries(records, RADII, labels)
    return publish(out, "denoised_", "# smoothadv demo --denoised: certifying a classifier "
                   "trained without noise", [
                       f"Classifier: the digits `mlp`, {epochs} epochs without noise. Denoisers: "
                       f"DnCNN depth {mse.depth}, width {mse.width}; "
                       f"MSE for {dn_epochs} epochs, then Stab (against the classifier) for "
                       f"{max(1, dn_epochs // 2)}. Certification: n0 = {cfg.n0}, n = {n:,}, "
                       f"α = {cfg.alpha}."],
                   summaries, start, max_radius=1.25,
                   title=f"digits: a noise-free classifier behind denoisers, n={n:,}")
