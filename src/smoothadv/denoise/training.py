"""Training a DnCNN denoiser for denoised smoothing (Salman et al., NeurIPS 2020).

Objectives, with δ = σ·ε and the classifier f frozen (eval mode, no parameter gradient):
- ``mse``: mean (D(x + δ) − x)²;
- ``stab``: CE(f(D(x + δ)), argmax f(x)), the *hard* label of the clean input;
- ``clf``: CE(f(D(x + δ)), y).
"Stab+MSE" is an MSE-trained denoiser fine-tuned with ``stab`` (``init``). Query access:
``stab`` against surrogate classifiers taken round-robin, one per mini-batch (step i uses
surrogate i mod K), never the certified one. Adam, lr 1e−3, weight decay 1e−4, batch 256, 90
epochs, lr ×0.1 every 30 (the authors' "AdamThenSGD" option never switches to SGD because of a
typo in their code; here Adam is Adam and nothing switches). A run directory holds
``config.json``, ``log.tsv`` and ``denoiser.pth.tar`` (written atomically every epoch);
``resume`` continues from it, bit for bit.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..configs import StageConfig, config_document, setting, stage_config
from ..data.datasets import class_balanced_subset, create_dataset
from ..errors import UserError, check_positive_int, check_sigma
from ..models import atomic_torch_save
from ..runtime import distributed as D
from ..runtime.rundir import RunFolder
from .dncnn import DnCNN, load_dncnn, read_checkpoint_dncnn  # noqa: F401

OBJECTIVES = ("mse", "stab", "clf")
CHECKPOINT = "denoiser.pth.tar"
DEFAULT_DEPTH, DEFAULT_WIDTH = 17, 64
LOG_COLUMNS = ("epoch", "seconds", "lr", "train_loss", "test_mse", "test_mse_noisy")


@stage_config
class DenoiserConfig(StageConfig):
    """Everything a denoiser training run depends on (kept in ``config.json``)."""

    stage = "train-denoiser"
    extendable = ("epochs",)

    dataset: str
    out: str = setting(result=False)
    objective: str = "mse"
    sigma: float = 0.25
    classifier: str | None = setting(None, input=True)  # stab / clf: the classifier
    surrogates: tuple[str, ...] = setting((), input=True)  # stab with query access
    init: str | None = setting(None, input=True)  # start from this denoiser (Stab+MSE)
    data_root: str | None = None
    depth: int | None = None  # None: the --init denoiser's, else 17
    width: int | None = None  # None: the --init denoiser's, else 64
    epochs: int = 90
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    lr_step: int = 30
    lr_gamma: float = 0.1
    train_subset: int | None = None
    seed: int = 0
    resume: bool = setting(False, result=False)  # continue a run that records no config
    overwrite: bool = setting(False, result=False)  # discard a run of another configuration
    device: str = setting("auto", result=False)
    deterministic: bool = setting(False, result=False)  # cuDNN/cuBLAS (runtime/backends.py)
    progress: bool = setting(True, result=False)

    def validate(self) -> None:
        check_sigma(self.sigma)
        if self.objective not in OBJECTIVES:
            raise UserError(f"unknown objective {self.objective!r}; choose "
                            f"{', '.join(OBJECTIVES)}")
        for name in ("depth", "width", "epochs", "batch", "lr_step"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), f"--{name.replace('_', '-')}")
        if self.objective == "mse" and (self.classifier or self.surrogates):
            raise UserError("the mse objective uses no classifier")
        if self.objective != "mse" and not (self.classifier or self.surrogates):
            raise UserError(f"objective {self.objective} needs --classifier (or --surrogates)")
        if self.classifier and self.surrogates:
            raise UserError("give --classifier (white-box) or --surrogates (query access), "
                            "not both")
        if self.surrogates and self.objective != "stab":
            raise UserError("query access (--surrogates) trains with the stab objective")


def _frozen(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


def denoiser_loss(objective: str, denoiser: nn.Module, classifier: nn.Module | None,
                  x: torch.Tensor, y: torch.Tensor, delta: torch.Tensor) -> torch.Tensor:
    """The loss of one step (module docstring); ``classifier`` maps pixel images to logits
    and is frozen; ``delta`` is the σ-scaled noise [B,C,H,W]."""
    z = denoiser(x + delta)
    if objective == "mse":
        return F.mse_loss(z, x)
    if objective == "stab":
        with torch.no_grad():
            target = classifier(x).argmax(1)  # the clean input's hard label
        return F.cross_entropy(classifier(z), target)
    return F.cross_entropy(classifier(z), y)


def train_denoiser(cfg: DenoiserConfig) -> Path:
    """Train as configured; returns the checkpoint's path."""
    from .compose import compose, load_classifier

    device = D.setup_device(cfg.device, deterministic=cfg.deterministic, join=False)
    folder = RunFolder(cfg.out, CHECKPOINT, LOG_COLUMNS)
    same_run = folder.claim(cfg, overwrite=cfg.overwrite, resume=cfg.resume)
    train = create_dataset(cfg.dataset, "train", cfg.data_root)
    test = create_dataset(cfg.dataset, "test", cfg.data_root)
    if cfg.train_subset is not None:
        train = class_balanced_subset(train, cfg.train_subset, cfg.seed)
    channels = int(train[0][0].shape[0])
    classifiers = [_frozen(compose(load_classifier(spec, device), None))
                   for spec in ([cfg.classifier] if cfg.classifier else cfg.surrogates)]
    start = read_checkpoint_dncnn(cfg.init) if cfg.init else None
    shape = start["config"] if start else {"depth": DEFAULT_DEPTH, "width": DEFAULT_WIDTH}
    depth, width = cfg.depth or shape["depth"], cfg.width or shape["width"]
    torch.manual_seed(cfg.seed)
    denoiser = DnCNN(channels, depth, width)
    if start is not None:
        if start["config"] != denoiser.config():
            raise UserError(f"--init {cfg.init} is a DnCNN of another shape: {start['config']}")
        denoiser.load_state_dict(start["state_dict"])
    denoiser = denoiser.to(device)
    opt = torch.optim.Adam(denoiser.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, cfg.lr_step, cfg.lr_gamma)
    path = folder.checkpoint
    first = 0
    if same_run:
        ckpt = read_checkpoint_dncnn(path)
        denoiser.load_state_dict(ckpt["state_dict"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        first = int(ckpt["epoch"])
    folder.start(config_document(cfg, device=str(device)), first if first else None)
    loader = DataLoader(train, batch_size=cfg.batch, shuffle=True,
                        generator=torch.Generator().manual_seed(cfg.seed))
    step = 0
    for epoch in range(first, cfg.epochs):
        t0 = time.perf_counter()
        torch.manual_seed(cfg.seed * 1000 + epoch)
        loader.generator.manual_seed(cfg.seed * 1000 + epoch)
        step = epoch * len(loader)
        denoiser.train()
        total = torch.zeros((), dtype=torch.float64, device=device)  # read once per epoch
        count = 0
        lr = opt.param_groups[0]["lr"]
        for x, y in tqdm(loader, desc=f"denoiser epoch {epoch + 1}/{cfg.epochs}",
                         disable=not cfg.progress, leave=False):
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            delta = cfg.sigma * torch.randn_like(x)
            clf = classifiers[step % len(classifiers)] if classifiers else None
            loss = denoiser_loss(cfg.objective, denoiser, clf, x, y, delta)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += loss.detach().double() * x.shape[0]
            count += x.shape[0]
            step += 1
        sched.step()
        mse, noisy = test_mse(denoiser, test, cfg.sigma, device)
        folder.append((epoch + 1, f"{time.perf_counter() - t0:.2f}", f"{lr:.6g}",
                       f"{float(total) / count:.6f}", f"{mse:.6f}", f"{noisy:.6f}"))
        atomic_torch_save({"kind": "dncnn", "config": denoiser.config(),
                           "state_dict": denoiser.state_dict(), "optimizer": opt.state_dict(),
                           "scheduler": sched.state_dict(), "epoch": epoch + 1,
                           "sigma": cfg.sigma, "objective": cfg.objective,
                           "dataset": cfg.dataset}, path)
        if cfg.progress:
            tqdm.write(f"denoiser epoch {epoch + 1}: loss {total / count:.4f}, test MSE "
                       f"{mse:.5f} (noisy input clipped: {noisy:.5f})")
    return path


@torch.no_grad()
def test_mse(denoiser: nn.Module, test, sigma: float, device, limit: int = 512,
             seed: int = 1) -> tuple[float, float]:
    """(MSE of D(x + δ), MSE of clip(x + δ, 0, 1)) against x on ≤ ``limit`` test images."""
    was = denoiser.training
    denoiser.eval()
    x = torch.stack([test[i][0] for i in range(min(limit, len(test)))]).to(device)
    g = torch.Generator(device=x.device).manual_seed(seed)
    y = x + sigma * torch.randn(x.shape, generator=g, device=x.device)
    out = torch.cat([denoiser(chunk) for chunk in y.split(256)])
    denoiser.train(was)
    return float(F.mse_loss(out, x)), float(F.mse_loss(y.clamp(0, 1), x))
