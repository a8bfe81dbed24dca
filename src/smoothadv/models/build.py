"""Building the model a training run starts from: the architecture behind its input layer,
with the normalization constants its weights expect, optionally initialised from a
pre-trained checkpoint (ours or the paper's)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import Dataset

from ..errors import UserError
from .checkpoint import (
    NormalizationChoice,
    checkpoint_normalization,
    create_model,
    infer_shape,
    normalize_state_dict,
    read_checkpoint,
    resolve_normalization,
)
from .normalize import DEFAULT_NORMALIZATION
from .probe import choose_normalization


@dataclass
class BuiltModel:
    """A freshly built model (on the CPU, train mode) and what was decided for it."""

    model: nn.Module
    arch: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    normalization: NormalizationChoice
    image_size: int
    fresh: list[str] = field(default_factory=list)  # weights left at their initialisation


def load_pretrained(model: nn.Module, ckpt: dict[str, Any]) -> list[str]:
    """Copy every weight of a checkpoint dict (ours or the paper's, from ``read_checkpoint``)
    whose name and shape match; return the names left at their initialisation (the new
    head when class counts differ)."""
    state = normalize_state_dict(ckpt["state_dict"])
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise UserError(f"no weight of the pre-trained checkpoint ({ckpt['arch']}) fits "
                        "this architecture")
    model.load_state_dict(usable, strict=False)
    return sorted(k for k in own if k not in usable)


def normalization_constants(train: Dataset, default_mean, default_std,
                            pretrained: dict[str, Any] | None,
                            ) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """The pre-trained checkpoint's constants (its weights expect them); else the data set's
    (``default_mean``/``default_std``); else (a folder whose channel count differs) measured
    on ≤ 2,000 training images [C]."""
    if pretrained is not None:
        mean, std = checkpoint_normalization(pretrained)
        if mean is not None:
            return mean, std
    channels = int(train[0][0].shape[0])
    if len(default_mean) == channels:
        return tuple(default_mean), tuple(default_std)
    sample = torch.stack([train[i][0] for i in range(min(len(train), 2000))])
    mean = sample.mean(dim=(0, 2, 3))
    std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
    return tuple(mean.tolist()), tuple(std.tolist())


def choose_input_layer(requested: str | None, pretrained: dict[str, Any] | None,
                       pretrained_path: str | None, train: Dataset, num_classes: int,
                       sigma: float, seed: int) -> NormalizationChoice:
    """The trained model's input layer: ``requested`` (default ``normalize``); with a
    pre-trained checkpoint, the kind its weights expect, which a contradicting request may not
    override: recorded, asked for, or — for a file that records none — measured on the
    training images as ``certify`` measures (``auto``: refused when too close to call; no
    request: ``normalize`` then), which needs the class counts to agree (else refused with the
    choices)."""
    if pretrained is None:
        return NormalizationChoice(requested or DEFAULT_NORMALIZATION, "flag")
    if requested in (None, "auto") and pretrained.get("normalization") is None:
        _, classes = infer_shape(normalize_state_dict(pretrained["state_dict"]))
        if classes != num_classes:
            raise UserError(f"pre-trained {pretrained_path} records no input layer and has "
                            f"{classes} classes, this data set {num_classes}, so its layer "
                            "cannot be measured here: give --input-normalization "
                            "normalize|center|none")
        return choose_normalization(pretrained, pretrained_path, requested, train, sigma,
                                    seed=seed)
    return resolve_normalization(pretrained, requested, pretrained_path)


def check_fits(model: nn.Module, arch: str, train: Dataset) -> None:
    """Refuse an architecture that cannot take the data set's images (one eval-mode forward of
    one image: no statistics change, no random number is drawn)."""
    x = train[0][0]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(x[None])
    except RuntimeError as err:
        raise UserError(f"architecture {arch} does not fit this data set's "
                        f"{'×'.join(map(str, x.shape))} images: "
                        + str(err).strip().splitlines()[0][:120]) from None
    finally:
        model.train(was)


def build_model(arch: str, num_classes: int, image_size: int, train: Dataset,
                default_mean, default_std, *, pretrained: str | None = None,
                normalization: str | None = None, sigma: float = 0.25, seed: int = 0,
                announce=None) -> BuiltModel:
    """The model a run trains: ``arch`` with ``num_classes`` outputs behind its input layer,
    initialised under ``torch.manual_seed(seed)`` and then from ``pretrained`` where names and
    shapes match. ``announce(line)`` is told the layer of a pre-trained file."""
    ckpt = read_checkpoint(pretrained) if pretrained else None
    mean, std = normalization_constants(train, default_mean, default_std, ckpt)
    choice = choose_input_layer(normalization, ckpt, pretrained, train, num_classes, sigma,
                                seed)
    if ckpt is not None and announce is not None:
        announce(f"smoothadv: pre-trained {choice.describe(pretrained)}")
    torch.manual_seed(seed)
    model = create_model(arch, num_classes, mean=mean, std=std, image_size=image_size,
                         normalization=choice.kind)
    fresh = load_pretrained(model, ckpt) if ckpt is not None else []
    check_fits(model, arch, train)
    return BuiltModel(model, arch, mean, std, choice, image_size, fresh)
