"""Soft targets for CAT-RS: each training image's vote distribution under a teacher.

p_b,i = (counts of f_teacher(x̃_i + δ) over ``num`` draws δ ~ N(0, σ²I)) / ``num``, where x̃_i is
one random crop/flip of training image i (the data set's own augmentation, drawn once), as the
CAT-RS authors prepare it (a σ = 0.25 Gaussian-trained teacher, 10,000 draws, the same
teacher for every training σ). Every image's crop and noise come from seeds derived from
(seed, index), so an interrupted run that resumes writes the same table; progress is saved
atomically every ``chunk`` images.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from ..models.checkpoint import atomic_torch_save
from ..smoothing.smooth import Smooth, make_generator


def _augmented(dataset: Dataset, i: int, seed: int) -> torch.Tensor:
    """Image i with its one crop/flip drawn from a seed of its own."""
    state = np.random.get_state()
    np.random.seed((seed * 1_000_003 + i) % 2**32)
    try:
        return dataset[i][0]
    finally:
        np.random.set_state(state)


@torch.no_grad()
def soft_labels(smooth: Smooth, dataset: Dataset, out: str | os.PathLike, *, num: int = 10_000,
                batch_size: int = 1000, seed: int = 0, chunk: int = 64,
                indices: list[int] | None = None, progress: bool = True) -> Path:
    """Write ``{'soft_targets': float32 [N, K], 'num': num, 'sigma': σ}`` for every image of
    ``dataset`` (or only the rows ``indices``, the others left 0: a training subset) to
    ``out``, resuming a partial file ``out.partial``; returns ``out``."""
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    order = list(range(len(dataset))) if indices is None else sorted(indices)
    total, classes = len(order), smooth.num_classes
    table = torch.zeros(len(dataset), classes)
    done = 0
    if partial.exists():
        saved = torch.load(partial, map_location="cpu", weights_only=True)
        if saved.get("num") == num and saved["soft_targets"].shape == table.shape:
            table, done = saved["soft_targets"], int(saved["done"])
    device = smooth.device
    bar = tqdm(total=total, initial=done, desc="soft labels", unit="image",
               disable=not progress)
    while done < total:
        idx = order[done:done + chunk]
        xs = torch.stack([_augmented(dataset, i, seed) for i in idx]).to(device)
        gens = [make_generator(seed * 1_000_003 + i + 1, device) for i in idx]
        counts = smooth._counts(xs, num, batch_size, gens).cpu()
        table[idx] = counts.float() / num
        done += len(idx)
        atomic_torch_save({"soft_targets": table, "done": done, "num": num}, partial)
        bar.update(len(idx))
    bar.close()
    atomic_torch_save({"soft_targets": table, "num": num, "sigma": smooth.sigma}, out)
    partial.unlink(missing_ok=True)
    return out
