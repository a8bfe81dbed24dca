"""Normalization constants of the paper's code, shared by datasets and checkpoint loading."""

from __future__ import annotations

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
# Digits: measured on the whole 8×8 data set scaled to [0,1].
DIGITS_MEAN = (0.3053,)
DIGITS_STD = (0.3760,)

# What the paper's checkpoints (which store no constants) were trained with, by architecture.
ARCH_DEFAULTS: dict[str, dict] = {
    "cifar_resnet20": dict(dataset="cifar10", mean=CIFAR10_MEAN, std=CIFAR10_STD, image_size=32),
    "cifar_resnet56": dict(dataset="cifar10", mean=CIFAR10_MEAN, std=CIFAR10_STD, image_size=32),
    "cifar_resnet110": dict(dataset="cifar10", mean=CIFAR10_MEAN, std=CIFAR10_STD, image_size=32),
    "imagenet32_resnet110": dict(
        dataset="imagenet32", mean=CIFAR10_MEAN, std=CIFAR10_STD, image_size=32
    ),
    "resnet50": dict(dataset="imagenet", mean=IMAGENET_MEAN, std=IMAGENET_STD, image_size=224),
}
