"""Measuring which input layer a checkpoint that records none was trained behind.

The three input layers have no parameters, so the paper's files cannot say which one their
weights expect (the SmoothAdv authors trained most released models behind ``center``, Cohen et
al. behind ``normalize``, MACER behind ``none``), and the wrong one gives a different, much
weaker classifier. ``auto`` classifies a fixed, seeded handful of labelled images under the
run's noise with each layer and keeps the most accurate one when the difference is
significant: an exact one-sided sign test on the images where the best and the runner-up
disagree in correctness, at level :data:`PROBE_LEVEL`. Otherwise it is "too close to call".

The probe only chooses which classifier is certified; it never touches a certificate's
statistics (certification draws its own, independent noise afterwards).
"""

from __future__ import annotations

import os
from typing import Any

import torch
from scipy.stats import binomtest

from ..errors import UserError
from .checkpoint import NormalizationChoice, build_from_checkpoint, resolve_normalization
from .normalize import DEFAULT_NORMALIZATION, list_normalizations

PROBE_SIZE = 128
PROBE_LEVEL = 0.01


@torch.no_grad()
def measure_normalizations(ckpt: dict[str, Any], path: str | os.PathLike, dataset, sigma: float,
                           *, size: int = PROBE_SIZE, seed: int = 0,
                           device: str | torch.device = "cpu",
                           ) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """Accuracy of the checkpoint's base classifier behind each input layer on ``size``
    images of ``dataset`` (chosen by a permutation seeded with ``seed``), each with one draw of
    N(0, σ²I) noise shared by all layers. Returns ({kind: accuracy}, {kind: bool [size]})."""
    gen = torch.Generator().manual_seed(seed)
    picks = torch.randperm(len(dataset), generator=gen)[: min(size, len(dataset))].tolist()
    x = torch.stack([dataset[i][0] for i in picks])
    y = torch.as_tensor([int(dataset[i][1]) for i in picks])
    noisy = (x + sigma * torch.randn(x.shape, generator=gen)).to(device)
    right: dict[str, torch.Tensor] = {}
    for kind in list_normalizations():
        model, _ = build_from_checkpoint(ckpt, path, NormalizationChoice(kind, "auto"), device)
        preds = torch.cat([model(chunk).argmax(1).cpu() for chunk in noisy.split(256)])
        right[kind] = preds == y
    return {k: float(v.float().mean()) for k, v in right.items()}, right


def decisive(right: dict[str, torch.Tensor]) -> tuple[str, bool]:
    """(the most accurate kind, whether it beats the runner-up significantly): one-sided
    exact sign test on the discordant images, at level :data:`PROBE_LEVEL`."""
    order = sorted(right, key=lambda k: (-int(right[k].sum()), k))
    best, second = right[order[0]], right[order[1]]
    wins = int((best & ~second).sum())
    losses = int((~best & second).sum())
    if wins + losses == 0:
        return order[0], False
    p = binomtest(wins, wins + losses, 0.5, alternative="greater").pvalue
    return order[0], p < PROBE_LEVEL


def choose_normalization(ckpt: dict[str, Any], path: str | os.PathLike,
                         requested: str | None, dataset, sigma: float, *, seed: int = 0,
                         device: str | torch.device = "cpu") -> NormalizationChoice:
    """The input layer for a checkpoint dict, measuring where the file records none.

    ``requested``: a kind (used as given, an error when it contradicts a recorded one),
    ``auto`` (measure; a :class:`UserError` when too close to call) or None, the CLI's default
    (the recorded kind; for a file without one, measure and fall back to ``normalize`` when
    too close to call).
    """
    if ckpt.get("normalization") is not None or requested not in (None, "auto"):
        return resolve_normalization(ckpt, requested, path)
    accuracies, right = measure_normalizations(ckpt, path, dataset, sigma, seed=seed,
                                               device=device)
    best, clear = decisive(right)
    if clear:
        return NormalizationChoice(best, "auto", accuracies)
    if requested == "auto":
        shown = ", ".join(f"{k} {v:.3f}" for k, v in sorted(accuracies.items()))
        raise UserError(f"checkpoint {path} records no input layer and the measurement is too "
                        f"close to call ({shown} on {len(right[best])} noisy images): choose "
                        "one with --input-normalization normalize|center|none")
    return NormalizationChoice(DEFAULT_NORMALIZATION, "default", accuracies)
