"""Shared fixtures: paths to ../shared/data and tiny closed-form models."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"


def shared_path(*parts: str) -> Path:
    """A path under ../shared/data, or skip the test with a clear reason when absent."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not available: {path}")
    return path


class LinearBinary(nn.Module):
    """f(x) = 1 if w·x + b > 0 else 0, as logits [0, w·x + b] on flattened inputs.

    Its smoothed classifier is known in closed form: P(f(x+δ) = 1) = Φ((w·x + b)/(σ‖w‖)),
    and g's true robust radius at x is |w·x + b| / ‖w‖.
    """

    def __init__(self, w: torch.Tensor, b: float) -> None:
        super().__init__()
        self.w = nn.Parameter(w.flatten().clone(), requires_grad=False)
        self.b = nn.Parameter(torch.tensor(float(b)), requires_grad=False)

    def margin(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1) @ self.w + self.b

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.margin(x)
        return torch.stack([torch.zeros_like(z), z], dim=1)

    def true_radius(self, x: torch.Tensor) -> torch.Tensor:
        return self.margin(x).abs() / self.w.norm()

    def point_with_pa(self, pa: float, sigma: float) -> torch.Tensor:
        """An image [1,4,4] in [0,1] on the positive side where P(f(x+δ)=1) = pa."""
        from scipy.stats import norm

        wn = self.w.norm()
        centre = torch.full_like(self.w, 0.5)  # margin 0 by construction of b
        x = centre + float(norm.ppf(pa)) * sigma * self.w / wn
        assert 0 <= x.min() and x.max() <= 1
        return x.view(1, 4, 4)

    def true_pa(self, x: torch.Tensor, sigma: float) -> torch.Tensor:
        z = self.margin(x).abs() / (sigma * self.w.norm())
        return 0.5 * (1 + torch.erf(z / math.sqrt(2)))


@pytest.fixture
def linear_model() -> LinearBinary:
    g = torch.Generator().manual_seed(0)
    w = torch.randn(16, generator=g)
    return LinearBinary(w, b=-float(w.sum()) / 2)  # boundary through the image centre 0.5


@pytest.fixture
def digits_ckpt(tmp_path):
    """An untrained digits MLP checkpoint (ours: it records its layer, dataset and σ)."""
    from smoothadv.data.datasets import get_dataset_spec
    from smoothadv.models import create_model, save_checkpoint

    spec = get_dataset_spec("digits")
    torch.manual_seed(0)
    model = create_model("mlp", 10, mean=spec.mean, std=spec.std, image_size=8)
    path = tmp_path / "mlp.pth.tar"
    save_checkpoint(path, model, arch="mlp", epoch=0,
                    meta=dict(dataset="digits", num_classes=10, in_channels=1, image_size=8,
                              mean=spec.mean, std=spec.std, sigma=0.25))
    return path


def _cuda_present() -> bool:
    return torch.cuda.is_available() and torch.cuda.device_count() > 0


@pytest.fixture(params=["cpu", "cuda"])
def device(request) -> torch.device:
    """Each device-sensitive test once per device type; the CUDA variant is skipped, with one
    line, where no GPU exists (``make gpu-check`` runs them where one does)."""
    if request.param == "cuda" and not _cuda_present():
        pytest.skip("no CUDA device here: the CUDA variant runs where a GPU exists")
    return torch.device(request.param, 0) if request.param == "cuda" else torch.device("cpu")
