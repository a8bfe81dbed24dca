"""``smoothadv demo --norm l1``: ℓ1 certificates on scikit-learn's digits.

At each σ (the per-coordinate standard deviation of the noise; 0.5 and 1.0 by default) three
digits MLPs get the demo's training budget: Gaussian augmentation, uniform-noise augmentation
(Yang et al. 2020's ℓ1 noise) and splitting-noise augmentation (Levine & Feizi 2021). The
splitting model is certified on the test images rounded to the 8-bit grid three ways: with
randomized splitting (2λ(p̲_A − ½), sampled), with the deterministic certificate and Levine &
Feizi's offset template (exact, closed radius ⌊(n_A − n_B − 1)/2⌋/255 on the grid), and with the
deterministic certificate and a zero template (one offset for every pixel) to show what the
template is for. Stability training with uniform noise, their best
CIFAR-10 setting, is left out: at its authors' λ = 2 it collapses to one class on this MLP
without BatchNorm, as it does with Gaussian noise (docs/certification.md). Both are certified
at ℓ1 on the whole test split: the Gaussian model through its ℓ2 radius (an ℓ1 ball of radius R
lies inside the ℓ2 ball of radius R), the uniform models with the uniform radius 2λ(p̲_A − ½)
(λ = √3σ) and, post hoc from the same counts (:func:`~smoothadv.records.rebox.rebox_record`),
with the box-constrained radius (perturbed images stay in [0,1]^64).
The grid is a sweep file shipped beside this module (``l1.toml``), run by the sweep engine: one
training stage per model, shared by its certifications, and a rebox stage for the box radii.
Writes ``l1_curves.png`` and ``l1_report.md``; the records are in the stage folders.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import analysis as A
from .main import DemoConfig, budget, publish, run_shipped, shipped_sweep

L1_RADII = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
SWEEP_FILE = Path(__file__).with_name("l1.toml")


def run_l1_demo(cfg: DemoConfig, write_sweep: str | None = None) -> Path:
    """Train, certify at ℓ1 and compare on the sweep engine (the grid of :data:`SWEEP_FILE`
    with ``cfg``'s options); returns the path of ``l1_report.md`` (with ``write_sweep``, of
    the sweep file written instead)."""
    start = time.perf_counter()
    done = run_shipped(shipped_sweep(SWEEP_FILE, cfg), SWEEP_FILE, write_sweep)
    if done is None:
        return Path(write_sweep)
    plan, _ = done
    n, epochs = budget(cfg)
    runs = sorted(plan.runs, key=lambda r: r.sigma)  # by σ, each σ's runs in the file's order
    records = [plan.jobs[r.record_job].output for r in runs]
    labels = [f"{r.group} σ={r.sigma:g}" for r in runs]
    summaries = A.load_summaries(records, L1_RADII, labels)
    return publish(Path(cfg.out), "l1_", "# smoothadv demo --norm l1: ℓ1 certificates on digits", [
        f"Data: scikit-learn's 8×8 digits, {summaries[0].rows} test images. Model: the `mlp`, "
        f"{epochs} epochs, batch 64, SGD lr 0.1 for every model. σ is each noise's "
        "per-coordinate standard deviation (uniform: λ = √3σ).",
        f"Certification: n0 = {cfg.n0}, n = {n:,}, α = {cfg.alpha}, seed {cfg.seed}; ℓ1 radii "
        "(the Gaussian model: its ℓ2 radius). Threat models: the closed ℓ1 ball in ℝ^d; "
        "'+ box' within [0,1]^d; 'deterministic' on the 8-bit grid (images rounded to it).",
        "", "Records:", *[f"- {s.label}: `{s.path}`" for s in summaries]],
        summaries, start, norm="l1", title=f"digits, MLP, ℓ1, n={n:,}, α={cfg.alpha}")
