"""ℓ1 recipes: Yang et al. (ICML 2020, "Randomized Smoothing of All Shapes and Sizes"), uniform
noise on CIFAR-10 at σ = 0.25 / 0.5 / 1.0, stability training (their best ℓ1 setting), certified
at ℓ1 with the uniform-noise radius 2λ(p̲_A − ½), λ = √3σ.

Facts from the paper: CIFAR-10, uniform noise parametrised by its per-coordinate standard
deviation σ, stability training, N = 100,000, α = 0.001; their best ℓ1 certified accuracies
(over σ) are 70 / 59 / 51 / 43 / 33 / 27 / 22 / 18 % at r = 0.5 / 1 / 1.5 / 2 / 2.5 / 3 / 3.5 / 4.
No per-image logs of these models are available offline, so ``compare`` has no reference and
the recipes do not claim to reproduce the figures: they train and certify the setting.
Departures, named: the paper trains a Wide ResNet-40-2, which is not registered here; the
recipes train the ResNet-110 and the 150-epoch schedule (lr 0.1 ×0.1 every 50 epochs, batch
256) of the other CIFAR-10 recipes, and stability's λ from its authors' table.
"""

from __future__ import annotations

from functools import lru_cache

GROUP = "l1"
SIGMAS = (0.25, 0.5, 1.0)
PUBLISHED = "70 / 59 / 51 / 43 / 33 / 27 / 22 / 18 % at ℓ1 r = 0.5 / 1 / … / 4 (best over σ)"


@lru_cache(maxsize=1)
def l1_recipes() -> tuple[dict, ...]:
    out = []
    for sigma in SIGMAS:
        out.append({
            "name": f"cifar10-uniform-stability-s{sigma:.2f}", "group": GROUP,
            "dataset": "cifar10", "arch": "cifar_resnet110", "sigma": sigma,
            "method": "stability", "noise": "uniform", "norm": "l1", "attack": None,
            "steps": None, "epsilon": None, "epsilon_paper": None, "m_train": 1,
            "multi_noise": False, "epochs": 150, "lr": 0.1, "lr_step": 50, "lr_gamma": 0.1,
            "batch": 256, "warmup": 0, "lr_delay": 0, "weight_decay": 1e-4,
            "lr_milestones": None, "normalization": "normalize", "pretraining": None,
            "self_training_weight": None, "extra_data": None, "paper_log": None,
            "certification": {"n0": 100, "n": 100_000, "alpha": 0.001, "skip": 1,
                              "images": "all 10,000 CIFAR-10 test images"},
            "log_rows": 0, "wins": [], "hparams": {}, "teacher": None, "same_as": None,
            "notes": (f"Yang et al. 2020's uniform-noise ℓ1 setting at σ = {sigma:g} "
                      f"(λ = √3σ = {3 ** 0.5 * sigma:.3f}): stability training, certified at "
                      f"ℓ1. Published (best over σ): {PUBLISHED}. No logs of these models are "
                      "available offline: nothing to compare with. They trained a Wide "
                      "ResNet-40-2 (not registered here); this recipe trains a ResNet-110."),
        })
    return tuple(out)
