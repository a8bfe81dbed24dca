"""The main job on the embedded default data (scikit-learn's digits, no download)."""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .data import create_dataset, get_dataset_spec
from .evaluate import run_records, select_indices
from .models import create_model, save_checkpoint
from .records import read_records
from .smoothing import Smooth


def run_demo(out: str | Path = "runs/demo", sigma: float = 0.25, epochs: int = 30,
             n: int = 10_000, seed: int = 0, progress: bool = True) -> Path:
    """Fit an MLP on digits under Gaussian noise σ, certify the test split; returns the records."""
    start = time.perf_counter()
    torch.manual_seed(seed)
    out = Path(out)
    spec = get_dataset_spec("digits")
    train, test = create_dataset("digits", "train"), create_dataset("digits", "test")
    model = create_model("mlp", 10, mean=spec.mean, std=spec.std, image_size=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    x_all, y_all = train.images, train.targets
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(y_all)).split(64):
            x = x_all[idx] + sigma * torch.randn_like(x_all[idx])
            loss = F.cross_entropy(model(x), y_all[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    save_checkpoint(out / "checkpoint.pth.tar", model, arch="mlp", epoch=epochs,
                    meta=dict(dataset="digits", num_classes=10, in_channels=1, image_size=8,
                              mean=spec.mean, std=spec.std, sigma=sigma, method="gaussian"))
    cert = out / f"certify_sigma{sigma}.tsv"
    cert.unlink(missing_ok=True)
    run_records("certify", Smooth(model.eval(), 10, sigma), test,
                select_indices(len(test)), cert, n0=100, n=n, alpha=0.001,
                batch_size=10_000, seed=seed, progress=progress)
    rec = read_records(cert)
    for r in (0.0, 0.25, 0.5, 0.75, 1.0):
        acc = ((rec["correct"] == 1) & (rec["radius"] >= r)).mean()
        print(f"certified accuracy at radius {r:.2f}: {acc:.3f}")
    print(f"elapsed {time.perf_counter() - start:.1f} s; records in {cert}")
    return cert
