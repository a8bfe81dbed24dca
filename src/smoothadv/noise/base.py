"""What the float noise sources share (Gaussian, uniform, Laplace, splitting)."""

from __future__ import annotations

from typing import Any

import torch


class FloatNoise:
    """A float source: the input is used as it is (no grid), the sampler sets no α aside, and
    a record keeps no scale beyond σ unless the family has one (``facts``)."""

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        return x

    def alpha_spent(self, samples: int, dims: int) -> float:
        return 0.0

    def facts(self) -> dict[str, Any]:
        return {}
