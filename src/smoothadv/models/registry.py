"""Model registry: ``@register_model`` builders, ``create_network`` and ``list_models``."""

from __future__ import annotations

from collections.abc import Callable

import torch.nn as nn

from ..registry import Registry

ModelBuilder = Callable[..., nn.Module]
MODELS: Registry[ModelBuilder] = Registry("architecture")


def register_model(name: str) -> Callable[[ModelBuilder], ModelBuilder]:
    """Decorator: register ``fn(num_classes, *, in_channels, image_size) -> nn.Module``."""
    return MODELS.register(name)


def list_models() -> list[str]:
    """Names accepted by :func:`create_network` and :func:`create_model`, sorted."""
    return MODELS.names()


def create_network(
    name: str, num_classes: int, *, in_channels: int = 3, image_size: int = 32
) -> nn.Module:
    """The bare network (no normalization layer), mapping normalized [B,C,H,W] to [B,K] logits."""
    return MODELS.get(name)(num_classes, in_channels=in_channels, image_size=image_size)
