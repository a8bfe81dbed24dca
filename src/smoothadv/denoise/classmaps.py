"""Class maps: using a classifier with another label set (an ImageNet head) on a data set's
classes (CIFAR-10), as an explicit, documented choice.

A map assigns each class k of the data set a set S_k of the classifier's classes; the mapped
classifier's logit for k is log Σ_{c ∈ S_k} exp z_c, the log of the (unnormalized) probability
mass the classifier puts on S_k, and classes in no set are ignored. The mapped network is one
deterministic function of its input, so certification of it is exact like any other base
classifier's; what it certifies is that mapped classifier, not the original head.

Built in: ``imagenet-cifar10``, the ImageNet-1k synsets of each CIFAR-10 class, named by
torchvision's ImageNet category list (and resolved to indices through it): airplane (airliner,
warplane, wing); automobile (beach wagon, cab, convertible, jeep, limousine, minivan, Model T,
racer, sports car); bird (the 59 bird classes 7–24, 80–100, 127–146); cat (the five domestic
cats 281–285); deer (hartebeest, impala, gazelle: ImageNet has no deer); dog (the 118 dog
breeds 151–268); frog (bullfrog, tree frog, tailed frog); horse (sorrel); ship (catamaran,
container ship, fireboat, gondola, lifeboat, liner, pirate, schooner, speedboat, submarine,
trimaran, yawl); truck (fire engine, garbage truck, moving van, police van, tow truck, trailer
truck). A file ``--class-map FILE.json`` holds ``[[indices of class 0], [indices of class 1],
…]``.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from ..errors import UserError

_BY_NAME = {
    "airplane": ["airliner", "warplane", "wing"],
    "automobile": ["beach wagon", "cab", "convertible", "jeep", "limousine", "minivan",
                   "Model T", "racer", "sports car"],
    "bird": [(7, 24), (80, 100), (127, 146)],
    "cat": [(281, 285)],
    "deer": ["hartebeest", "impala", "gazelle"],
    "dog": [(151, 268)],
    "frog": ["bullfrog", "tree frog", "tailed frog"],
    "horse": ["sorrel"],
    "ship": ["catamaran", "container ship", "fireboat", "gondola", "lifeboat", "liner",
             "pirate", "schooner", "speedboat", "submarine", "trimaran", "yawl"],
    "truck": ["fire engine", "garbage truck", "moving van", "police van", "tow truck",
              "trailer truck"],
}


def imagenet_categories() -> list[str]:
    """The 1,000 ImageNet-1k class names in index order (torchvision's list; no download)."""
    from torchvision.models import ResNet18_Weights

    return list(ResNet18_Weights.IMAGENET1K_V1.meta["categories"])


def imagenet_to_cifar10() -> list[list[int]]:
    """The built-in map: for each CIFAR-10 class in label order, its ImageNet indices."""
    names = imagenet_categories()
    index = {n: i for i, n in enumerate(names)}
    groups = []
    for parts in _BY_NAME.values():
        ids: list[int] = []
        for part in parts:
            if isinstance(part, tuple):
                ids += list(range(part[0], part[1] + 1))
            else:
                ids.append(index[part])
        groups.append(sorted(ids))
    return groups


BUILT_IN = {"imagenet-cifar10": imagenet_to_cifar10}


def load_class_map(spec: str, num_outputs: int) -> list[list[int]]:
    """The groups of a built-in map name or a JSON file, checked against the classifier's
    ``num_outputs`` (indices in range, no index in two groups, no empty group)."""
    if spec in BUILT_IN:
        groups = BUILT_IN[spec]()
    else:
        path = Path(spec)
        if not path.is_file():
            raise UserError(f"unknown class map {spec!r}: give {', '.join(BUILT_IN)} or a JSON "
                            "file [[indices of class 0], [indices of class 1], …]")
        try:
            groups = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise UserError(f"class map {path} is not JSON: {err}") from None
    if not isinstance(groups, list) or not groups or not all(
            isinstance(g, list) and g and all(isinstance(i, int) for i in g) for g in groups):
        raise UserError(f"class map {spec}: a list of non-empty lists of class indices")
    flat = [i for g in groups for i in g]
    if len(flat) != len(set(flat)):
        raise UserError(f"class map {spec}: a class of the classifier is in two groups")
    if min(flat) < 0 or max(flat) >= num_outputs:
        raise UserError(f"class map {spec}: indices must lie in [0, {num_outputs}) for this "
                        "classifier")
    return groups


class ClassMapped(nn.Module):
    """``module``'s logits [B, C] → [B, K]: logsumexp over each group of classes."""

    def __init__(self, module: nn.Module, groups: list[list[int]]) -> None:
        super().__init__()
        self.module = module
        self.groups = [torch.tensor(g, dtype=torch.long) for g in groups]
        for k, g in enumerate(self.groups):
            self.register_buffer(f"group{k}", g, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.module(x)
        return torch.stack([z.index_select(1, getattr(self, f"group{k}")).logsumexp(1)
                            for k in range(len(self.groups))], dim=1)
