"""The training stages: ``train`` (a base classifier, :mod:`smoothadv.train`) and
``train-denoiser`` (a DnCNN, :mod:`smoothadv.denoise.training`)."""

from __future__ import annotations

from ..denoise.training import DenoiserConfig, train_denoiser
from ..train import TrainConfig, train
from .registry import StageResult, register_stage


def run_train(cfg: TrainConfig) -> StageResult:
    """Train a base classifier as configured (resumable: see ``resume``)."""
    path = train(cfg)
    return StageResult(path, f"checkpoint: {path}")


def run_train_denoiser(cfg: DenoiserConfig) -> StageResult:
    """Train a DnCNN denoiser as configured."""
    path = train_denoiser(cfg)
    return StageResult(path, f"denoiser: {path}")


register_stage(TrainConfig, run_train)
register_stage(DenoiserConfig, run_train_denoiser)
