"""The pieces the methods' eval-mode attacks and multi-draw forwards share: frozen eval
mode (the bare module under DDP), the noisy rows of an input's draws, their one forward, the
soft classifier's loss and the normalized ascent step."""

from __future__ import annotations

import torch
import torch.nn as nn

from ..smoothing.smooth import frozen_eval  # noqa: F401  (the methods' frozen passes)


def soft_nll(probs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """−log max(p_{i,y_i}, 1e−20) per input: probs [B, K], y [B] → [B]."""
    return -probs.gather(1, y.view(-1, 1)).squeeze(1).clamp_min(1e-20).log()


def unit_step(grad: torch.Tensor) -> torch.Tensor:
    """grad / (‖grad‖₂ + 1e−8) per row (the consistency, SmoothMix and CAT-RS attacks' step
    direction; a zero gradient stays zero): [N, ...] → [N, ...]."""
    norms = grad.flatten(1).norm(p=2, dim=1).view(-1, *([1] * (grad.dim() - 1)))
    return grad / (norms + 1e-8)


def noisy_rows(x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """x [B,C,H,W] plus each of its draws δ [B, m, C, H, W]: [B·m, C, H, W], input-major."""
    return (x.unsqueeze(1) + delta).flatten(0, 1)


def forward_draws(model: nn.Module, x: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """One forward of the B·m noisy rows: logits [B, m, K]."""
    b, m = delta.shape[:2]
    return model(noisy_rows(x, delta)).view(b, m, -1)
