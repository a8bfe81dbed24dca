"""Loading a checkpoint for use: ours and the paper's alike, behind the input layer recorded,
asked for, or measured (:mod:`.probe`)."""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn as nn

from ..errors import UserError
from .checkpoint import (
    NormalizationChoice,
    build_from_checkpoint,
    read_checkpoint,
    resolve_normalization,
)
from .probe import choose_normalization


def load_checkpoint(
    path: str | os.PathLike, device: str | torch.device = "cpu",
    normalization: str | NormalizationChoice | None = None, *, data=None,
    sigma: float | None = None, seed: int = 0,
) -> tuple[nn.Sequential, dict[str, Any]]:
    """Load our checkpoints and the paper's alike.

    Returns ``(model, meta)``: the model with its input layer, on ``device``, in eval mode;
    ``meta`` holds ``arch``, ``epoch`` and the metadata keys (filled in from the
    architecture's defaults for the paper's files, which store none), ``normalization`` (the
    kind used) and ``normalization_choice`` (a :class:`NormalizationChoice`).

    ``normalization``: None (the recorded kind), a kind (an error when it contradicts the
    recorded one), ``auto`` or a :class:`NormalizationChoice` already made. A file that
    records no kind (the paper's) is treated as ``smoothadv certify`` treats it: with labelled
    ``data`` (a data set of (x [C,H,W] in [0,1], label)) and ``sigma`` (default: the file's)
    it is measured (:func:`smoothadv.models.probe.choose_normalization`; ``normalize`` when too
    close to call), and without data it is refused in one line that lists the choices, so that
    no model is used behind a layer it was not trained with unannounced.
    """
    ckpt = read_checkpoint(path)
    if isinstance(normalization, NormalizationChoice):
        choice = normalization
    elif data is not None:
        if sigma is None:
            sigma = ckpt.get("sigma")
        if sigma is None:
            raise UserError("measuring the input layer needs the noise level: give sigma")
        choice = choose_normalization(ckpt, path, normalization, data, float(sigma),
                                      seed=seed, device=device)
    else:
        if ckpt.get("normalization") is None and normalization is None:
            raise UserError(f"checkpoint {path} records no input layer: give "
                            "normalization='normalize' (Cohen et al.'s NormalizeLayer), "
                            "'center' (the SmoothAdv code's InputCenterLayer) or 'none' (raw "
                            "[0,1] inputs), or labelled data= to measure it "
                            "(--input-normalization on the command line)")
        choice = resolve_normalization(ckpt, normalization, path)
    return build_from_checkpoint(ckpt, path, choice, device)
