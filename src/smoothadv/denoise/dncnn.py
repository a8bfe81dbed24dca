"""DnCNN (Zhang et al. 2017) as Salman et al. (2020) use it for denoised smoothing.

conv3×3 + ReLU, then depth − 2 × [conv3×3 without bias + BatchNorm (eps 1e−4, momentum 0.95) +
ReLU], then conv3×3 without bias; the output is the residual y − net(y). Orthogonal init of the
convolutions, the last one zero, so a new DnCNN is the identity. Depth 17, width 64: 558,400
parameters for 3 channels. It works in [0,1] pixel space, before the classifier's own
normalization: y = x + δ in, an estimate of x out ([B,C,H,W] → [B,C,H,W]).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..errors import UserError


class DnCNN(nn.Module):
    def __init__(self, channels: int = 3, depth: int = 17, width: int = 64) -> None:
        super().__init__()
        if depth < 2:
            raise ValueError("DnCNN needs depth ≥ 2")
        self.channels, self.depth, self.width = int(channels), int(depth), int(width)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        for _ in range(depth - 2):
            layers += [nn.Conv2d(width, width, 3, padding=1, bias=False),
                       nn.BatchNorm2d(width, eps=1e-4, momentum=0.95), nn.ReLU(inplace=True)]
        layers.append(nn.Conv2d(width, channels, 3, padding=1, bias=False))
        self.net = nn.Sequential(*layers)
        convs = [m for m in self.modules() if isinstance(m, nn.Conv2d)]
        for conv in convs:
            nn.init.orthogonal_(conv.weight)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
        nn.init.zeros_(convs[-1].weight)  # starts as the identity: y − 0

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return y - self.net(y)

    def config(self) -> dict[str, int]:
        return {"channels": self.channels, "depth": self.depth, "width": self.width}


def load_dncnn(path: str | Path, device: str | torch.device = "cpu") -> tuple[DnCNN, dict]:
    """A trained DnCNN (eval mode) and its checkpoint's metadata."""
    ckpt = read_checkpoint_dncnn(path)
    model = DnCNN(**ckpt["config"])
    model.load_state_dict(ckpt["state_dict"])
    return model.to(device).eval(), {k: v for k, v in ckpt.items()
                                     if k not in ("state_dict", "optimizer", "scheduler")}


def read_checkpoint_dncnn(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"denoiser checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 — any unreadable file gets one line
        raise UserError(f"{path} is not a readable denoiser checkpoint") from None
    if not isinstance(ckpt, dict) or ckpt.get("kind") != "dncnn":
        raise UserError(f"{path} is not a DnCNN checkpoint (smoothadv train-denoiser)")
    return ckpt
