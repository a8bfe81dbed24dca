"""Small networks for 8×8 digits (an MLP, a BatchNorm CNN) and MNIST, a linear model and
torchvision's ResNet-50."""

from __future__ import annotations

import torch.nn as nn
import torchvision

from .registry import register_model


class ContiguousSequential(nn.Sequential):
    """A Sequential that stays in the contiguous memory format: for ``digits_cnn``, channels-last
    (the default for conv nets) was measured 1.5× slower (one input channel, 16 filters)."""

    channels_last = False


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


@register_model("digits_cnn")
def digits_cnn(num_classes: int, *, in_channels: int = 1, image_size: int = 8) -> nn.Module:
    """A small CNN with BatchNorm for 8×8 digits: one 4×4 convolution of stride 2 (16 channels,
    [B,C,8,8] → [B,16,4,4]), BatchNorm, ReLU, a 128-unit hidden layer with BatchNorm, ReLU and
    the classifier. Strided rather than max-pooled and one convolution rather than two, so that
    a CPU certifies it nearly as fast as the ``mlp`` (0.83× its rate in benchmark 13,
    ``bench/bench_digits_networks.py``): certification forwards it 10⁵ times per image."""
    side = image_size // 2
    return ContiguousSequential(
        nn.Conv2d(in_channels, 16, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(16),
        nn.ReLU(inplace=True),
        nn.Flatten(),
        nn.Linear(16 * side * side, 128, bias=False),
        nn.BatchNorm1d(128),
        nn.ReLU(inplace=True),
        nn.Linear(128, num_classes),
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
