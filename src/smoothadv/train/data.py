"""Assembling a training run's data: the training and test sets (class-balanced subsets),
CAT-RS's per-image soft targets, pseudo-labelled extra data, and their loaders (a distributed
sampler under ``torchrun``; shuffling seeded per epoch by the loop)."""

from __future__ import annotations

import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler

from ..data.datasets import (
    DatasetSpec,
    InMemoryDataset,
    class_balanced_subset,
    create_dataset,
    get_dataset_spec,
    num_classes_of,
)
from ..errors import UserError
from ..runtime import distributed as D
from .config import TrainConfig


def load_extra_data(path: str | os.PathLike) -> InMemoryDataset:
    """Pseudo-labelled images: our ``pseudo-label`` output (.pt) or Carmon et al.'s pickle.

    Both hold ``data`` (uint8 [N,H,W,C]) and ``extrapolated_targets`` ([N]). The pickle
    format can run code when loaded: load only files from a source you trust.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"extra data not found: {path}")
    try:
        if path.suffix in (".pt", ".pth"):
            blob = torch.load(path, map_location="cpu", weights_only=True)
        else:
            with open(path, "rb") as f:
                blob = pickle.load(f)
    except Exception as err:  # noqa: BLE001 — any unreadable file is the user's to fix
        raise UserError(f"cannot read extra data {path}: {err}") from None
    if not isinstance(blob, dict) or "data" not in blob or "extrapolated_targets" not in blob:
        raise UserError(f"{path} needs keys 'data' and 'extrapolated_targets'")
    data = torch.as_tensor(np.asarray(blob["data"], dtype=np.uint8))
    if data.dim() == 3:
        data = data.unsqueeze(-1)
    images = data.permute(0, 3, 1, 2).contiguous()
    labels = torch.as_tensor(np.asarray(blob["extrapolated_targets"]), dtype=torch.long)
    return InMemoryDataset(images, labels, augment=images.shape[-1] == 32)


MAX_CUDA_WORKERS = 8


def loader_workers(requested: int | None, device: torch.device) -> int:
    """Data-loader processes: as ``requested``; by default none on a CPU (the model needs
    the cores) and min(8, the task's CPU cores per local rank − 1) on CUDA, where decoding
    and augmenting on the main process would starve the GPU (the task's cores: SLURM's
    ``SLURM_CPUS_PER_TASK`` or the process's affinity, not the node's)."""
    if requested is not None:
        if requested < 0:
            raise UserError(f"--workers must be ≥ 0, got {requested}")
        return requested
    if device.type != "cuda":
        return 0
    per_rank = D.available_cpus() // max(int(os.environ.get("LOCAL_WORLD_SIZE", "1")), 1)
    return max(0, min(MAX_CUDA_WORKERS, per_rank - 1))


def rank_batches(size: int, batch: int, world: int | None = None,
                 rank: int | None = None) -> list[list[int]]:
    """This rank's test batches: batches i = rank, rank + W, … of the split cut in order into
    batches of ``batch`` (batch i holds inputs i·batch …). The evaluation numbers its noise by
    i, so its figures do not depend on W, and no rank loads another's batches."""
    world = D.world_size() if world is None else world
    rank = D.rank() if rank is None else rank
    count = -(-size // batch)
    return [list(range(i * batch, min(size, (i + 1) * batch))) for i in range(rank, count, world)]


def _loader(ds: Dataset, batch: int, shuffle: bool, workers: int, seed: int,
            pin: bool, drop_last: bool = False) -> DataLoader:
    """A training loader. Its workers are started anew each epoch (not persistent): each takes
    its random state (crop-and-flip) from the loader's generator, which the trainer reseeds per
    epoch, so a resumed run draws the augmentation of the uninterrupted one; persistent workers
    kept the state they were seeded with at start-up, which a resumed run seeds anew."""
    sampler = None
    if D.world_size() > 1:
        sampler = DistributedSampler(ds, shuffle=shuffle, seed=seed, drop_last=drop_last)
    return DataLoader(
        ds, batch_size=batch, shuffle=shuffle and sampler is None, sampler=sampler,
        num_workers=workers, drop_last=drop_last, persistent_workers=False,
        generator=torch.Generator().manual_seed(seed), pin_memory=pin,
    )


class SoftTargets(Dataset):
    """(x, y, p_b[i]) for a training set (or a ``Subset`` of it) and its per-image soft
    targets ``table`` [N, K] indexed like the full set."""

    def __init__(self, dataset: Dataset, table: torch.Tensor) -> None:
        self.dataset = dataset
        self.table = table
        self.targets = getattr(dataset, "targets", None)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int):
        x, y = self.dataset[i]
        base = self.dataset.indices[i] if isinstance(self.dataset, Subset) else i
        return x, y, self.table[base]


def load_soft_targets(path: str | os.PathLike, size: int, num_classes: int) -> torch.Tensor:
    """The ``soft_targets`` [N, K] of a ``smoothadv soft-labels`` file, checked against the
    training set's size and class count."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"soft targets not found: {path}")
    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 — one line for any unreadable file
        raise UserError(f"cannot read soft targets {path}: {type(err).__name__}") from None
    table = blob.get("soft_targets") if isinstance(blob, dict) else None
    if table is None or table.shape != (size, num_classes):
        raise UserError(f"{path} must hold 'soft_targets' of shape [{size}, {num_classes}] "
                        "(one row per training image)")
    return table.float()


@dataclass
class TrainData:
    """What a run trains and evaluates on: ``train`` (the whole training split, for shapes and
    statistics), the selected ``train_set``/``test_set``, and the loaders: ``labelled`` (with
    soft targets when the method needs them), ``extra`` (pseudo-labelled, or None) and
    ``test``."""

    spec: DatasetSpec
    train: Dataset
    train_set: Dataset
    test_set: Dataset
    num_classes: int
    image_size: int
    labelled: DataLoader
    extra: DataLoader | None
    test: DataLoader


def assemble_data(cfg: TrainConfig, device: torch.device | None = None) -> TrainData:
    """The data sets and loaders of ``cfg`` for a run on ``device`` (the CPU when None):
    subsets drawn from ``cfg.seed``; images decoded once, before loader workers fork; pinned
    host memory for CUDA, so that batches are copied without blocking."""
    device = torch.device("cpu") if device is None else device
    workers, pin = loader_workers(cfg.workers, device), device.type == "cuda"
    spec = get_dataset_spec(cfg.dataset)
    train = create_dataset(cfg.dataset, "train", cfg.data_root)
    test = create_dataset(cfg.dataset, "test", cfg.data_root)
    num_classes = num_classes_of(train, spec)
    for flag, size, ds in (("--train-subset", cfg.train_subset, train),
                           ("--test-subset", cfg.test_subset, test)):
        if size is not None and size > len(ds):
            raise UserError(f"{flag} {size:,} exceeds the {len(ds):,} images of {cfg.dataset}'s "
                            f"{'training' if ds is train else 'test'} split: give at most "
                            f"{len(ds):,}, or leave it out for all of them")
    train_set = class_balanced_subset(train, cfg.train_subset, cfg.seed)
    test_set = class_balanced_subset(test, cfg.test_subset, cfg.seed + 1)
    for ds in (train_set, test_set):
        base = ds.dataset if isinstance(ds, Subset) else ds
        if hasattr(base, "preload"):
            base.preload(list(ds.indices) if isinstance(ds, Subset) else None)
    extra_set = load_extra_data(cfg.extra_data) if cfg.extra_data else None
    train_source = train_set
    if cfg.soft_targets is not None:
        if extra_set is not None:
            raise UserError(f"--method {cfg.method} has no soft targets for --extra-data images")
        table = load_soft_targets(cfg.soft_targets, len(train), num_classes)
        train_source = SoftTargets(train_set, table)
    # loaders live for the whole run (workers persist); each epoch reseeds their shuffling
    if cfg.drop_last and len(train_source) < cfg.batch:
        raise UserError(f"--drop-last with --batch {cfg.batch} leaves no batch of the "
                        f"{len(train_source)} training images")
    labelled = _loader(train_source, cfg.batch, True, workers, cfg.seed, pin,
                       drop_last=cfg.drop_last)
    extra = (None if extra_set is None else
             _loader(extra_set, cfg.batch, True, workers, cfg.seed + 1, pin))
    # the test split in order, each rank loading only its own batches (see rank_batches)
    test_loader = DataLoader(test_set, batch_sampler=rank_batches(len(test_set), cfg.batch),
                             num_workers=workers, persistent_workers=workers > 0,
                             pin_memory=pin)
    image_size = spec.image_size or int(train[0][0].shape[-1])
    return TrainData(spec, train, train_set, test_set, num_classes, image_size, labelled,
                     extra, test_loader)
