"""Per-channel normalisation as the first layer of every model."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn


class NormalizeLayer(nn.Module):
    """(x - mean) / std per channel, for pixel-space inputs x in [0,1] of shape [B,C,H,W].

    Mean and std are non-persistent buffers: they follow ``.to(device)`` but do not appear in
    the state dict, so our state dicts have exactly the layout of the paper's checkpoints
    (``Sequential(normalize, net)`` with keys ``1.*``). The constants live in checkpoint
    metadata instead.
    """

    def __init__(self, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        if len(mean) != len(std) or any(s <= 0 for s in std):
            raise ValueError("mean and std need one entry per channel and std > 0")
        self.register_buffer("mean", torch.tensor(list(mean)).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(list(std)).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std

    def extra_repr(self) -> str:
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"
