"""Pseudo-labels for self-training: a teacher's predictions on unlabelled images, in
Carmon et al.'s format."""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn as nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from ..models.checkpoint import atomic_torch_save


@torch.no_grad()
def pseudo_label(teacher: nn.Module, dataset: Dataset, out: str | os.PathLike,
                 batch: int = 256, progress: bool = True) -> Path:
    """Label every image of ``dataset`` with the teacher's prediction and save
    ``{'data': uint8 [N,H,W,C], 'extrapolated_targets': int64 [N]}`` (Carmon et al.'s keys)."""
    device = next(teacher.parameters()).device
    teacher.eval()
    images, labels = [], []
    loader = DataLoader(dataset, batch_size=batch, shuffle=False)
    for x, _ in tqdm(loader, desc="pseudo-label", disable=not progress):
        labels.append(teacher(x.to(device)).argmax(1).cpu())
        images.append((x * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1))
    path = Path(out)
    atomic_torch_save({"data": torch.cat(images), "extrapolated_targets": torch.cat(labels)},
                      path)
    return path
