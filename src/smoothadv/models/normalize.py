"""The model's input layer, the first module of every model: three kinds, one registry.

- ``normalize``: (x − mean)/std per channel, Cohen et al.'s NormalizeLayer;
- ``center``: x − mean, the SmoothAdv code's InputCenterLayer (no division by the std), which
  trained most of that paper's released CIFAR-10 models and all its ImageNet models;
- ``none``: the identity (MACER's original models take raw [0,1] images).

None has parameters or persistent buffers, so the state dict of ``Sequential(layer, net)`` has
the paper's layout (keys ``1.*``) whatever the kind, and a state dict cannot tell the kinds
apart: checkpoints record the kind (``normalization``) and its constants (``mean``, ``std``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn as nn

from ..registry import Registry

INPUT_LAYERS: Registry[Callable[[Sequence[float], Sequence[float]], nn.Module]] = Registry(
    "input normalization")
DEFAULT_NORMALIZATION = "normalize"


def _constant(values: Sequence[float]) -> torch.Tensor:
    return torch.tensor(list(values)).view(1, -1, 1, 1)


class NormalizeLayer(nn.Module):
    """(x - mean) / std per channel, for pixel-space inputs x in [0,1] of shape [B,C,H,W].

    Mean and std are non-persistent buffers: they follow ``.to(device)`` but do not appear in
    the state dict, so our state dicts have exactly the layout of the paper's checkpoints
    (``Sequential(normalize, net)`` with keys ``1.*``). The constants live in checkpoint
    metadata instead.
    """

    kind = "normalize"

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError("mean and std need one entry per channel and std > 0")
        self.register_buffer("mean", _constant(mean), persistent=False)
        self.register_buffer("std", _constant(std), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class InputCenterLayer(nn.Module):
    """x − mean per channel ([B,C,H,W] → [B,C,H,W]), no division: the SmoothAdv code's layer."""

    kind = "center"

    def __init__(self, mean: Sequence[float]) -> None:
        super().__init__()
        self.register_buffer("mean", _constant(mean), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - self.mean

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}"


class IdentityInput(nn.Identity):
    """The network sees the raw pixel-space image in [0,1] (MACER's original models)."""

    kind = "none"


INPUT_LAYERS.register("normalize")(lambda mean, std: NormalizeLayer(mean, std))
INPUT_LAYERS.register("center")(lambda mean, std: InputCenterLayer(mean))
INPUT_LAYERS.register("none")(lambda mean, std: IdentityInput())


def list_normalizations() -> list[str]:
    """The input-layer kinds: ``center``, ``none``, ``normalize``."""
    return INPUT_LAYERS.names()


def create_input_layer(kind: str, mean: Sequence[float], std: Sequence[float]) -> nn.Module:
    """The input layer of ``kind`` with the given per-channel constants (``std`` is unused by
    ``center`` and both by ``none``; they are still recorded in checkpoints)."""
    return INPUT_LAYERS.get(kind)(mean, std)


def input_layer_kind(model: nn.Module) -> str | None:
    """The kind of a ``Sequential(input layer, net)``'s first module, None for other models."""
    first = model[0] if isinstance(model, nn.Sequential) and len(model) else None
    return getattr(first, "kind", None)
