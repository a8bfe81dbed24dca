"""The CIFAR ResNet of He et al. (2016) as used by Cohen et al. and Salman et al.

depth = 6n + 2: a 3×3 stem conv to 16 channels, three stages of n BasicBlocks with 16, 32
and 64 channels (stride 2 at the start of stages 2 and 3), an 8×8 average pool and a linear
head. Parameter names (``conv1, bn1, layer{1,2,3}.{i}.{conv1,bn1,conv2,bn2,downsample.0,
downsample.1}, fc``) match the paper's checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from .registry import register_model


class BasicBlock(nn.Module):
    """Two 3×3 conv-BN layers with an identity (or 1×1 conv + BN) shortcut."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + shortcut)


class CifarResNet(nn.Module):
    """CIFAR ResNet for [B, in_channels, 32, 32] inputs; returns [B, num_classes] logits."""

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError("depth must be 6n + 2")
        n = (depth - 2) // 6
        self.conv1 = nn.Conv2d(in_channels, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = self._stage(16, 16, n, 1)
        self.layer2 = self._stage(16, 32, n, 2)
        self.layer3 = self._stage(32, 64, n, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)  # = AvgPool2d(8) on 32×32 inputs
        self.fc = nn.Linear(64, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @staticmethod
    def _stage(in_planes: int, planes: int, blocks: int, stride: int) -> nn.Sequential:
        layers = [BasicBlock(in_planes, planes, stride)]
        layers += [BasicBlock(planes, planes) for _ in range(blocks - 1)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def _cifar_builder(depth: int):
    def build(num_classes: int, *, in_channels: int = 3, image_size: int = 32) -> nn.Module:
        return CifarResNet(depth, num_classes, in_channels)

    return build


for _depth in (20, 56, 110):
    register_model(f"cifar_resnet{_depth}")(_cifar_builder(_depth))
# Downsampled-ImageNet pre-training model of the paper: the CIFAR ResNet-110, 1000 classes.
register_model("imagenet32_resnet110")(_cifar_builder(110))
