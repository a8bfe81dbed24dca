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
Writes the records, ``l1_curves.png`` and ``l1_report.md``.
"""

from __future__ import annotations

import time
from pathlib import Path

from .. import analysis as A
from ..data.datasets import create_dataset
from ..models import load_checkpoint
from ..noise import GridRounded
from ..records.rebox import rebox_record
from ..runtime.distributed import resolve_device
from ..train import TrainConfig, train
from .main import DemoConfig, budget, certify_digits, digits_training, publish

L1_RADII = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
# (label, method, training noise, certificate label, certification noise)
L1_MODELS = (
    ("Gaussian", "gaussian", "gaussian", "ℓ2 radius", "gaussian"),
    ("Uniform", "gaussian", "uniform", "uniform", "uniform"),
    ("Splitting", "gaussian", "splitting", "splitting", "splitting"),
)
# the deterministic certificate of the splitting model: Levine & Feizi's template, and the
# zero template (one offset for every pixel) to show what the template is for
TEMPLATES = (("seed0", "deterministic"), ("zero", "deterministic, zero template"))


def run_l1_demo(cfg: DemoConfig) -> Path:
    """Train, certify at ℓ1 and compare; returns the path of ``l1_report.md``."""
    start = time.perf_counter()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    n, epochs = budget(cfg)
    test = create_dataset("digits", "test")
    device = resolve_device(cfg.device)
    records, labels = [], []
    for sigma in cfg.sigmas:
        for name, method, noise, cert_label, cert_noise in L1_MODELS:
            tag = f"{method}_{noise}_sigma{sigma:g}"
            print(f"training {name} ({noise} noise) at σ={sigma:g} for {epochs} epochs …",
                  flush=True)
            ckpt = train(TrainConfig(out=str(out / tag), sigma=sigma, noise=noise,
                                     method=method, **digits_training(cfg, epochs)))
            model, _ = load_checkpoint(ckpt, device=device)
            # splitting: both certificates on the images rounded to the 8-bit grid (the
            # deterministic one needs them there), so they certify the same inputs
            data = GridRounded(test) if cert_noise == "splitting" else test
            record = certify_digits(model, sigma, out / tag / "certify_l1.tsv", data, cfg, n,
                                    noise=cert_noise, norm="l1")
            records.append(record)
            labels.append(f"{name}, {cert_label} σ={sigma:g}")
            if cert_noise == "splitting":
                for template, what in TEMPLATES:
                    print(f"deterministic certificate ({template} template) at σ={sigma:g} …",
                          flush=True)
                    records.append(certify_digits(
                        model, sigma, out / tag / f"certify_l1_derandomized_{template}.tsv",
                        data, cfg, n, noise="splitting", norm="l1", template=template))
                    labels.append(f"{name}, {what} (8-bit grid) σ={sigma:g}")
            if cert_noise == "uniform":  # the box radius of the same counts, post hoc
                boxed = rebox_record(record, test, sigma, "uniform",
                                     record.with_name("certify_l1_box.tsv"))
                records.append(boxed)
                labels.append(f"{name}, uniform + box σ={sigma:g}")
    summaries = A.load_summaries(records, L1_RADII, labels)
    return publish(out, "l1_", "# smoothadv demo --norm l1: ℓ1 certificates on digits", [
        f"Data: scikit-learn's 8×8 digits, {summaries[0].rows} test images. Model: the `mlp`, "
        f"{epochs} epochs, batch 64, SGD lr 0.1 for every model. σ is each noise's "
        "per-coordinate standard deviation (uniform: λ = √3σ).",
        f"Certification: n0 = {cfg.n0}, n = {n:,}, α = {cfg.alpha}, seed {cfg.seed}; ℓ1 radii "
        "(the Gaussian model: its ℓ2 radius). Threat models: the closed ℓ1 ball in ℝ^d; "
        "'+ box' within [0,1]^d; 'deterministic' on the 8-bit grid (images rounded to it)."],
        summaries, start, norm="l1", title=f"digits, MLP, ℓ1, n={n:,}, α={cfg.alpha}")
