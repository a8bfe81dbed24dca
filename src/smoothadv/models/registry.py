"""Model registry: ``@register_model`` builders, ``create_model`` and ``list_models``."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from ..errors import UserError

ModelBuilder = Callable[..., nn.Module]
_MODELS: dict[str, ModelBuilder] = {}


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: register ``fn(num_classes, *, in_channels, image_size) -> nn.Module``."""

    def wrap(fn: ModelBuilder) -> ModelBuilder:
        if name in _MODELS:
            raise KeyError(f"model {name!r} registered twice")
        _MODELS[name] = fn
        return fn

    return wrap


def list_models() -> list[str]:
    """Names accepted by :func:`create_network` and :func:`create_model`, sorted."""
    return sorted(_MODELS)


def create_network(
    name: str, num_classes: int, *, in_channels: int = 3, image_size: int = 32
) -> nn.Module:
    """The bare network (no normalisation layer), mapping normalised [B,C,H,W] to [B,K] logits."""
    if name not in _MODELS:
        raise UserError(f"unknown architecture {name!r}; choose one of: {', '.join(list_models())}")
    return _MODELS[name](num_classes, in_channels=in_channels, image_size=image_size)
