"""Small networks for 8×8 digits and MNIST, a linear model and torchvision's ResNet-50."""

from __future__ import annotations

import torch.nn as nn
import torchvision

from .registry import register_model


@register_model("linear")
def linear(num_classes: int, *, in_channels: int = 1, image_size: int = 8) -> nn.Module:
    """A linear classifier on flattened pixels (its smoothed classifier is known in closed form)."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size**2, num_classes))


@register_model("mlp")
def mlp(num_classes: int, *, in_channels: int = 1, image_size: int = 8) -> nn.Module:
    """Two hidden layers of 256 ReLU units on flattened pixels."""
    d = in_channels * image_size**2
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(d, 256),
        nn.ReLU(inplace=True),
        nn.Linear(256, 256),
        nn.ReLU(inplace=True),
        nn.Linear(256, num_classes),
    )


@register_model("lenet")
def lenet(num_classes: int, *, in_channels: int = 1, image_size: int = 28) -> nn.Module:
    """LeNet-style CNN: two 3×3 conv + max-pool stages (32, 64 channels), 128 hidden units."""
    side = image_size // 4
    return nn.Sequential(
        nn.Conv2d(in_channels, 32, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * side * side, 128),
        nn.ReLU(inplace=True),
        nn.Linear(128, num_classes),
    )


@register_model("resnet50")
def resnet50(num_classes: int, *, in_channels: int = 3, image_size: int = 224) -> nn.Module:
    """torchvision's ResNet-50 (random initialisation), as in the paper's ImageNet runs."""
    return torchvision.models.resnet50(weights=None, num_classes=num_classes)
