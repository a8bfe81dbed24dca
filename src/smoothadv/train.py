"""One training loop for every method (:mod:`smoothadv.methods`: Gaussian augmentation,
SmoothAdv, stability, MACER, consistency, SmoothMix, CAT-RS), optional pre-training,
self-training on pseudo-labelled data, resume, and DDP under ``torchrun``.

Each loaded batch is split into the method's mini-batches; each gets its standard-normal
noise [b, m, C, H, W] from the run's generator, the method's loss and one optimizer step.
Defaults follow the paper: SGD with momentum 0.9, weight decay 1e-4, lr 0.1 decayed ×0.1
every ``lr_step`` epochs, batch 256 (``lr_delay`` = 1 reproduces the CAT-RS, consistency and
SmoothMix code, which steps its scheduler with ``step(epoch)`` after each epoch, so that
each lr lasts one epoch longer: 0–50, 51–100, …). A run directory holds ``config.json``,
``log.tsv`` (one row per epoch) and ``checkpoint.pth.tar`` (written atomically after every
epoch).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import pickle
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset, Subset
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from . import distributed as D
from .attacks import DDN_TRAIN_GAMMA, attack_from_options
from .data import (
    InMemoryDataset,
    class_balanced_subset,
    create_dataset,
    get_dataset_spec,
    num_classes_of,
)
from .errors import UserError, check_epsilon, check_positive_int, check_sigma
from .methods import TrainingMethod, create_method
from .models import (
    NormalizationChoice,
    checkpoint_normalisation,
    choose_normalization,
    create_model,
    has_conv,
    list_normalizations,
    normalize_state_dict,
    read_checkpoint,
    resolve_normalization,
    save_checkpoint,
    to_channels_last,
)
from .models.checkpoint import atomic_torch_save, infer_shape
from .models.normalize import DEFAULT_NORMALIZATION
from .smoothing import Smooth, make_generator

COMPILE_MIN_STEPS = 500

LOG_COLUMNS = ("epoch", "seconds", "lr", "train_loss", "train_acc", "test_loss", "test_acc",
               "test_adv_acc", "epsilon")


@dataclass
class TrainConfig:
    """Everything a training run depends on (written to ``config.json``)."""

    dataset: str
    out: str
    arch: str | None = None
    data_root: str | None = None
    method: str = "gaussian"
    sigma: float = 0.25
    epochs: int = 90
    batch: int = 256
    lr: float = 0.1
    lr_step: int = 30
    lr_gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    attack: str | None = None  # smoothadv: pgd (default) or ddn; consistency: pgd or None
    epsilon: float | None = None  # None: the method's default (SmoothAdv 0.25)
    steps: int | None = None  # None: the method's default (SmoothAdv 10)
    m_train: int | None = None  # None: the method's default (1; MACER 16, CAT-RS 4, …)
    multi_noise: bool = False
    warmup: int | None = None  # None: the method's default (SmoothAdv 0; SmoothMix 10)
    lbd: float | None = None  # λ of stability, MACER, consistency, CAT-RS (None: authors')
    eta: float | None = None  # η of consistency (0.5) and SmoothMix (5)
    gamma: float | None = None  # MACER's hinge γ (8)
    beta: float | None = None  # MACER's inverse temperature β (16)
    alpha: float | None = None  # SmoothMix's step size α (2σ)
    mix_step: int | None = None  # SmoothMix's mix step (0 at σ = 0.25, else 1)
    deferred: int | None = None  # MACER: first epochs with λ = 0 (None: 51 at σ = 1, else 0)
    soft_targets: str | None = None  # CAT-RS: per-image p_b from `smoothadv soft-labels`
    lr_delay: int = 0  # epochs by which each lr drop comes later (1: step(epoch) code)
    lr_milestones: tuple[int, ...] | None = None  # drops at these epochs instead of lr_step
    estimator: str = "grad"
    ddn_gamma: float | None = DDN_TRAIN_GAMMA
    ddn_init_norm: float | None = None  # None: the epoch's ε, as the paper's training loop
    ddn_decision: str = "vote"
    ddn_strict_epsilon: bool = False
    pretrained: str | None = None
    # the input layer (normalize / center / none; auto measures a pre-trained file that
    # records none); None: a pre-trained checkpoint's recorded kind, else normalize
    input_normalization: str | None = None
    extra_data: str | None = None
    extra_weight: float = 1.0
    resume: bool = False
    workers: int = 0
    channels_last: bool = True
    compile: str = "auto"  # torch.compile steps and attack: "on", "off", or "auto" (see README)
    amp: bool = False
    train_subset: int | None = None
    test_subset: int | None = None
    eval_adv_max: int = 500
    seed: int = 0
    device: str = "auto"
    progress: bool = True
    extra: dict[str, Any] = field(default_factory=dict)

    def validate(self) -> None:
        check_sigma(self.sigma)
        if self.epsilon is not None:
            check_epsilon(self.epsilon)
        for name in ("epochs", "batch", "lr_step", "steps", "m_train"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), f"--{name.replace('_', '-')}")
        if self.method == "catrs" and self.soft_targets is None:
            raise UserError("--method catrs needs --soft-targets FILE: the vote distribution "
                            "of a σ = 0.25 Gaussian teacher per training image (write it with "
                            "`smoothadv soft-labels`)")
        if self.soft_targets is not None and self.method != "catrs":
            raise UserError("--soft-targets goes with --method catrs")
        if self.lr_delay < 0:
            raise UserError("--lr-delay must be ≥ 0")
        if self.lr <= 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if not 0 < self.lr_gamma <= 1:
            raise UserError(f"--lr-gamma must lie in (0, 1], got {self.lr_gamma}")
        if self.warmup is not None and self.warmup < 0:
            raise UserError("--warmup must be ≥ 0")
        if self.extra_weight < 0:
            raise UserError("--extra-weight must be ≥ 0")
        if self.compile not in ("auto", "on", "off"):
            raise UserError(f"compile must be auto, on or off, got {self.compile!r}")
        if self.input_normalization not in (None, "auto", *list_normalizations()):
            raise UserError(f"unknown input normalization {self.input_normalization!r}; "
                            f"choose one of {', '.join(list_normalizations())}, auto")
        if self.input_normalization == "auto" and self.pretrained is None:
            raise UserError("--input-normalization auto measures a pre-trained checkpoint's "
                            "layer: it needs --pretrained (a fresh model takes normalize, "
                            "center or none)")
        if self.m_train is not None and self.m_train > self.batch:
            raise UserError(f"--m-train ({self.m_train}) cannot exceed --batch ({self.batch})")


# ------------------------------------------------------------------------------- data


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


def _loader(ds: Dataset, batch: int, shuffle: bool, workers: int, seed: int,
            drop_last: bool = False) -> DataLoader:
    sampler = None
    if D.world_size() > 1:
        sampler = DistributedSampler(ds, shuffle=shuffle, seed=seed, drop_last=drop_last)
    return DataLoader(
        ds, batch_size=batch, shuffle=shuffle and sampler is None, sampler=sampler,
        num_workers=workers, drop_last=drop_last, persistent_workers=workers > 0,
        generator=torch.Generator().manual_seed(seed), pin_memory=torch.cuda.is_available(),
    )


# ----------------------------------------------------------------------------- models


def load_pretrained(model: nn.Module, ckpt: dict[str, Any]) -> list[str]:
    """Copy every weight of a checkpoint dict (ours or the paper's, from ``read_checkpoint``)
    whose name and shape match; return the names left at their initialisation (the new
    head when class counts differ)."""
    state = normalize_state_dict(ckpt["state_dict"])
    own = model.state_dict()
    usable = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise UserError(f"no weight of the pre-trained checkpoint ({ckpt['arch']}) fits "
                        "this architecture")
    model.load_state_dict(usable, strict=False)
    return sorted(k for k in own if k not in usable)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    """The generators' states at the end of an epoch, stored in the checkpoint for the record.
    Resuming does not need them: every epoch reseeds from (seed, epoch, rank) first."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(),
                             "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
                             "python": repr(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


# ------------------------------------------------------------------------------- loop


def fit_batch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    method: TrainingMethod,
    smooth: Smooth,
    x: torch.Tensor,
    y: torch.Tensor,
    epoch: int,
    weight: float = 1.0,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    soft_targets: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[float, float, int]:
    """Every optimizer step one loaded batch gives under ``method``.

    ``model`` is what is trained (maybe DDP-wrapped or compiled); ``smooth.base_classifier``
    is the model the method's eval-mode passes (attacks) run on. The batch is split into the
    method's mini-batches; each draws standard-normal noise [b, m, C, H, W] from
    ``generator`` (the default generator when None), computes ``method.loss`` and takes one
    step. ``soft_targets`` [B, K] are split alongside (CAT-RS). Returns (summed loss, number
    correct, number of trained samples).
    """
    loss_sum = correct = 0.0
    count = 0
    tensors = (x, y) if soft_targets is None else (x, y, soft_targets)
    draws_per_image = method.draws_at(epoch)
    for part in method.minibatches(*tensors):
        xb, yb = part[0], part[1]
        draws = {"soft_targets": part[2]} if soft_targets is not None else {}
        noise = torch.randn((xb.shape[0], draws_per_image, *xb.shape[1:]), generator=generator,
                            device=xb.device, dtype=xb.dtype)
        model.train()
        with autocast():
            loss, logs = method.loss(model, xb, yb, noise, epoch,
                                     attack_model=smooth.base_classifier, generator=generator,
                                     **draws)
        optimizer.zero_grad(set_to_none=True)
        (weight * loss).backward()
        optimizer.step()
        loss_sum += logs["loss"] * logs["count"]
        correct += logs["correct"]
        count += logs["count"]
    return loss_sum, correct, count


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


class Trainer:
    """Builds data, model, optimizer and method from a :class:`TrainConfig` and runs epochs."""

    def __init__(self, cfg: TrainConfig) -> None:
        cfg.validate()
        self.cfg = cfg
        self.device = D.resolve_device(cfg.device)
        self.distributed = D.init_process_group(self.device)
        self.out = Path(cfg.out)
        spec = get_dataset_spec(cfg.dataset)
        self.spec = spec
        train = create_dataset(cfg.dataset, "train", cfg.data_root)
        test = create_dataset(cfg.dataset, "test", cfg.data_root)
        self.num_classes = num_classes_of(train, spec)
        self.train_set = class_balanced_subset(train, cfg.train_subset, cfg.seed)
        self.test_set = class_balanced_subset(test, cfg.test_subset, cfg.seed + 1)
        train_source = self.train_set
        for ds in (self.train_set, self.test_set):  # decode once, before workers fork
            base = ds.dataset if isinstance(ds, Subset) else ds
            if hasattr(base, "preload"):
                base.preload(list(ds.indices) if isinstance(ds, Subset) else None)
        self.extra_set = load_extra_data(cfg.extra_data) if cfg.extra_data else None
        if cfg.soft_targets is not None:
            if self.extra_set is not None:
                raise UserError("--method catrs has no soft targets for --extra-data images")
            table = load_soft_targets(cfg.soft_targets, len(train), self.num_classes)
            train_source = SoftTargets(self.train_set, table)
        # loaders live for the whole run (workers persist); each epoch reseeds their shuffling
        self.labelled = _loader(train_source, cfg.batch, True, cfg.workers, cfg.seed)
        self.extra = (None if self.extra_set is None else
                      _loader(self.extra_set, cfg.batch, True, cfg.workers, cfg.seed + 1))
        self.test_loader = DataLoader(self.test_set, batch_size=cfg.batch, shuffle=False,
                                      num_workers=cfg.workers, persistent_workers=cfg.workers > 0)
        self.arch = cfg.arch or spec.default_arch
        image_size = spec.image_size or int(train[0][0].shape[-1])
        self.image_size = image_size
        pretrained = read_checkpoint(cfg.pretrained) if cfg.pretrained else None
        self.mean, self.std = self._normalisation(train, pretrained)
        self.normalization = self._input_layer(train, pretrained)
        torch.manual_seed(cfg.seed)
        model = create_model(self.arch, self.num_classes, mean=self.mean, std=self.std,
                             image_size=image_size, normalization=self.normalization.kind)
        self.fresh: list[str] = load_pretrained(model, pretrained) if pretrained else []
        model = model.to(self.device)
        self.channels_last = cfg.channels_last and has_conv(model)
        if self.channels_last:
            model = to_channels_last(model)
        self.model = model
        self.ddp = model
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        self.scheduler = _scheduler(self.optimizer, cfg)
        self.method = self._make_method()
        self.start_epoch = 0
        self.resumed = False
        if cfg.resume:
            self._resume()
        self.step_model, attacked = self.ddp, model
        self.compiled = self._compile_decision()
        if self.compiled:
            # measured (bench 8): compiling the training steps alone is slower than eager on
            # the CPU; compiling them together with the attack's passes is 1.2× faster
            from .compile import compile_for_training

            self.step_model, failure = compile_for_training(self.ddp)
            if failure is None:
                attacked, _ = compile_for_training(model)
        self.smooth = Smooth(attacked, self.num_classes, cfg.sigma)

    def _compile_decision(self) -> bool:
        """``compile``: on, off, or auto = on for conv nets whose run has at least
        :data:`COMPILE_MIN_STEPS` optimizer steps (long enough to repay a compile of 15–30 s)."""
        cfg = self.cfg
        if cfg.compile != "auto":
            return cfg.compile == "on"
        steps = (cfg.epochs - self.start_epoch) * len(self.labelled)
        return has_conv(self.model) and steps >= COMPILE_MIN_STEPS

    def _normalisation(self, train: Dataset, pretrained: dict[str, Any] | None,
                       ) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """The pre-trained checkpoint's constants (its weights expect them); else the
        dataset's; else (a folder whose channel count differs) measured on ≤ 2,000 images."""
        if pretrained is not None:
            mean, std = checkpoint_normalisation(pretrained)
            if mean is not None:
                return mean, std
        channels = int(train[0][0].shape[0])
        if len(self.spec.mean) == channels:
            return tuple(self.spec.mean), tuple(self.spec.std)
        sample = torch.stack([train[i][0] for i in range(min(len(train), 2000))])
        mean = sample.mean(dim=(0, 2, 3))
        std = sample.std(dim=(0, 2, 3)).clamp_min(1e-3)
        return tuple(mean.tolist()), tuple(std.tolist())

    def _input_layer(self, train: Dataset, pretrained: dict[str, Any] | None,
                     ) -> NormalizationChoice:
        """The trained model's input layer: ``input_normalization`` (default ``normalize``);
        with ``--pretrained``, the kind its weights expect (recorded, or measured with
        ``auto`` on the training images when the class counts agree), which a contradicting
        flag may not override. Announced in one line when a pre-trained file records none."""
        cfg = self.cfg
        if pretrained is None:
            return NormalizationChoice(cfg.input_normalization or DEFAULT_NORMALIZATION, "flag")
        if cfg.input_normalization == "auto" and pretrained.get("normalization") is None:
            _, classes = infer_shape(normalize_state_dict(pretrained["state_dict"]))
            if classes != self.num_classes:
                raise UserError(f"--input-normalization auto: the pre-trained model has "
                                f"{classes} classes, this data set {self.num_classes}, so its "
                                "accuracy cannot be measured here; choose normalize, center "
                                "or none")
        if cfg.input_normalization == "auto":
            choice = choose_normalization(pretrained, cfg.pretrained, "auto", train, cfg.sigma,
                                          seed=cfg.seed)
        else:
            choice = resolve_normalization(pretrained, cfg.input_normalization, cfg.pretrained)
        if D.is_main():
            print(f"smoothadv: pre-trained {choice.describe(cfg.pretrained)}")
        return choice

    def _make_method(self) -> TrainingMethod:
        cfg = self.cfg
        attack = None
        if cfg.method == "smoothadv":
            attack = attack_from_options(cfg.attack or "pgd", epsilon=self._epsilon(),
                                         steps=cfg.steps or 10,
                                         num_noise_vectors=cfg.m_train or 1,
                                         estimator=cfg.estimator, ddn_gamma=cfg.ddn_gamma,
                                         ddn_init_norm=cfg.ddn_init_norm,
                                         ddn_decision=cfg.ddn_decision,
                                         strict_epsilon=cfg.ddn_strict_epsilon)
        elif cfg.attack is not None and cfg.method != "consistency":
            raise UserError(f"--attack goes with --method smoothadv or consistency, not "
                            f"{cfg.method}")
        epsilon = self._epsilon() if cfg.method == "smoothadv" else cfg.epsilon
        return create_method(cfg.method, sigma=cfg.sigma, num_noise=cfg.m_train,
                             multi_noise=cfg.multi_noise, attack=attack, epsilon=epsilon,
                             warmup=cfg.warmup, steps=cfg.steps, lbd=cfg.lbd, eta=cfg.eta,
                             gamma=cfg.gamma, beta=cfg.beta, alpha=cfg.alpha,
                             mix_step=cfg.mix_step, deferred=cfg.deferred,
                             consistency_attack=cfg.attack if cfg.method == "consistency"
                             else None)

    def _epsilon(self) -> float:
        return 0.25 if self.cfg.epsilon is None else self.cfg.epsilon

    @property
    def checkpoint_path(self) -> Path:
        return self.out / "checkpoint.pth.tar"

    def _resume(self) -> None:
        """Continue from the run's checkpoint; with none yet (a run killed before its first
        epoch ended) start from scratch, so that re-running the same command always works."""
        if not self.checkpoint_path.exists():
            if D.is_main():
                print(f"--resume: no checkpoint at {self.checkpoint_path} yet; starting the run")
            return
        self.resumed = True
        ckpt = read_checkpoint(self.checkpoint_path)
        self.model.load_state_dict(normalize_state_dict(ckpt["state_dict"]))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scheduler"):
            self.scheduler.load_state_dict(ckpt["scheduler"])
        self.start_epoch = int(ckpt["epoch"])

    def _autocast(self):
        if self.cfg.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # ----------------------------------------------------------------------- one epoch

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the labelled data (alternating with extra batches); returns the
        mean loss and accuracy over every trained sample."""
        cfg = self.cfg
        seed = cfg.seed * 1000 + epoch
        _seed_everything(seed + 7919 * D.rank())
        sources = self._batches(epoch, seed)
        total_loss = total_correct = total = 0.0
        total_batches = len(self.labelled)
        if self.extra is not None:
            total_batches += min(len(self.labelled), len(self.extra))
        bar = tqdm(sources, total=total_batches, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   unit="batch",
                   disable=not cfg.progress or not D.is_main(), dynamic_ncols=True,
                   mininterval=0.5)
        for kind, batch in bar:
            x, y = self._to_device(batch[0]), batch[1].to(self.device)
            soft = batch[2].to(self.device, x.dtype) if len(batch) > 2 else None
            weight = cfg.extra_weight if kind == "extra" else 1.0
            loss_sum, correct, count = fit_batch(self.step_model, self.optimizer, self.method,
                                                 self.smooth, x, y, epoch, weight,
                                                 self._autocast, soft_targets=soft)
            total_loss += loss_sum
            total_correct += correct
            total += count
            bar.set_postfix(loss=f"{total_loss / max(total, 1):.3f}",
                            acc=f"{total_correct / max(total, 1):.3f}", refresh=False)
        return total_loss / max(total, 1), total_correct / max(total, 1)

    def _batches(self, epoch: int, seed: int):
        """This epoch's batches, read lazily: ("labelled", (x, y)), alternating with
        ("extra", (x, y)) while pseudo-labelled batches last. Shuffling is seeded per epoch,
        so a resumed run sees the same order as an uninterrupted one."""
        self.labelled.generator.manual_seed(seed)
        if isinstance(self.labelled.sampler, DistributedSampler):
            self.labelled.sampler.set_epoch(epoch)
        extra = None
        if self.extra is not None:
            self.extra.generator.manual_seed(seed + 1)
            if isinstance(self.extra.sampler, DistributedSampler):
                self.extra.sampler.set_epoch(epoch)
            extra = iter(self.extra)
        for batch in self.labelled:
            yield "labelled", batch
            if extra is not None:
                more = next(extra, None)
                if more is not None:
                    yield "extra", more

    @torch.no_grad()
    def evaluate(self, epoch: int) -> tuple[float, float, float]:
        """(loss, accuracy) of f under noise σ on the test split, and, for SmoothAdv, the
        accuracy of f on x′ + δ with x′ attacked at this epoch's ε (first ``eval_adv_max``
        test inputs; NaN otherwise). Rank 0 evaluates alone."""
        cfg = self.cfg
        model = self.model
        model.eval()
        g = make_generator(cfg.seed + 17, self.device)
        loss_sum = correct = total = 0.0
        adv_correct = adv_total = 0.0
        eps = self.method.epsilon_at(epoch)
        attack = self.method.attack
        for x, y in self.test_loader:
            x, y = self._to_device(x), y.to(self.device)
            noisy = x + cfg.sigma * torch.randn(x.shape, generator=g, device=self.device)
            with self._autocast():
                logits = model(noisy).float()
            loss_sum += float(F.cross_entropy(logits, y, reduction="sum"))
            correct += float((logits.argmax(1) == y).sum())
            total += y.shape[0]
            if attack is not None and eps > 0 and adv_total < cfg.eval_adv_max:
                keep = int(min(y.shape[0], cfg.eval_adv_max - adv_total))
                xk, yk = x[:keep], y[:keep]
                noise = self.smooth.sample_noise(xk, self.method.draws_at(epoch), g)
                x_adv = attack(self.smooth, xk, yk, noise=noise, generator=g, epsilon=eps)
                with self._autocast():
                    logits = model(x_adv + noise[:, 0]).float()
                adv_correct += float((logits.argmax(1) == yk).sum())
                adv_total += keep
        adv_acc = adv_correct / adv_total if adv_total else float("nan")
        return loss_sum / total, correct / total, adv_acc

    # ----------------------------------------------------------------------- whole run

    def metadata(self) -> dict[str, Any]:
        cfg = self.cfg
        hparams = {k: v for k, v in asdict(cfg).items()
                   if k not in ("out", "progress", "device", "extra", "resume")}
        return dict(dataset=cfg.dataset, num_classes=self.num_classes,
                    in_channels=len(self.mean), image_size=self.image_size,
                    normalization=self.normalization.kind,
                    mean=self.mean, std=self.std, sigma=cfg.sigma,
                    method=cfg.method, hparams=hparams)

    def run(self) -> Path:
        """Train from ``start_epoch`` to ``epochs``; rank 0 logs and checkpoints each epoch."""
        cfg = self.cfg
        main = D.is_main()
        log_path = self.out / "log.tsv"
        if main:
            self.out.mkdir(parents=True, exist_ok=True)
            (self.out / "config.json").write_text(
                json.dumps(asdict(cfg) | {"arch": self.arch, "device": str(self.device),
                                          "world_size": D.world_size(),
                                          "input_layer": self.normalization.kind,
                                          "fresh_weights": self.fresh}, indent=2) + "\n")
            if not (self.resumed and log_path.exists()):
                log_path.write_text("\t".join(LOG_COLUMNS) + "\n")
            else:
                self._truncate_log(log_path)
        for epoch in range(self.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, train_acc = self.train_epoch(epoch)
            self.scheduler.step()
            if main:
                test_loss, test_acc, adv_acc = self.evaluate(epoch)
                seconds = time.perf_counter() - t0
                row = (epoch + 1, f"{seconds:.2f}", f"{lr:.6g}", f"{train_loss:.4f}",
                       f"{train_acc:.4f}", f"{test_loss:.4f}", f"{test_acc:.4f}",
                       f"{adv_acc:.4f}", f"{self.method.epsilon_at(epoch):.4f}")
                with open(log_path, "a", encoding="utf-8") as f:
                    f.write("\t".join(map(str, row)) + "\n")
                save_checkpoint(self.checkpoint_path, self.model, arch=self.arch,
                                epoch=epoch + 1, meta=self.metadata(),
                                optimizer=self.optimizer,
                                extra={"scheduler": self.scheduler.state_dict(),
                                       "rng": _rng_state()})
                if cfg.progress:
                    tqdm.write(f"epoch {epoch + 1}: train loss {train_loss:.3f} acc "
                               f"{train_acc:.3f} | test (noise σ={cfg.sigma:g}) loss "
                               f"{test_loss:.3f} acc {test_acc:.3f}"
                               + ("" if math.isnan(adv_acc) else f" | attacked {adv_acc:.3f}"))
            D.barrier()
        return self.checkpoint_path

    def _truncate_log(self, log_path: Path) -> None:
        """Keep the log rows up to the checkpoint's epoch (a run killed between the row and
        the checkpoint would otherwise repeat one)."""
        lines = log_path.read_text().splitlines()
        kept = [lines[0]] + [ln for ln in lines[1:] if ln and int(ln.split("\t")[0])
                             <= self.start_epoch]
        log_path.write_text("\n".join(kept) + "\n")


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    """StepLR (×γ every ``lr_step`` epochs); with ``lr_delay`` = d each drop comes d epochs
    later: lr at epoch e = lr·γ^⌊max(e − d, 0)/lr_step⌋ (d = 1: the step(epoch) code)."""
    if cfg.lr_milestones:
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, [v + cfg.lr_delay for v in cfg.lr_milestones], cfg.lr_gamma)
    if cfg.lr_delay == 0:
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step, cfg.lr_gamma)
    step, gamma, delay = cfg.lr_step, cfg.lr_gamma, cfg.lr_delay
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: gamma ** (max(e - delay, 0) // step))


def train(cfg: TrainConfig) -> Path:
    """Run a whole training as configured; returns the checkpoint path."""
    trainer = Trainer(cfg)
    try:
        return trainer.run()
    finally:
        D.destroy_process_group()


# ------------------------------------------------------------------------- pseudo-label


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
