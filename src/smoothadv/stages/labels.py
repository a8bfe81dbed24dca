"""The labelling stages: ``soft-labels`` (CAT-RS's per-image vote distributions p_b under a
teacher) and ``pseudo-label`` (a teacher's labels for self-training)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..configs import StageConfig, setting, stage_config
from ..data.datasets import create_dataset, subset_indices
from ..errors import UserError, check_positive_int, check_sigma
from ..labels.pseudo import pseudo_label
from ..labels.soft import soft_labels
from ..runtime import distributed as D
from ..runtime.precision import at_precision, check_precision
from ..smoothing.smooth import Smooth
from .eval_setup import load_model
from .registry import StageResult, register_stage


@dataclasses.dataclass(frozen=True)
class TeacherRun(StageConfig):
    """What both teacher stages (soft labels, pseudo-labels) take besides their own options:
    the teacher's input layer, the seed, and how to run."""

    input_normalization: str | None = setting(None, kw_only=True)
    seed: int = setting(0, kw_only=True)
    device: str = setting("auto", result=False, kw_only=True)
    deterministic: bool = setting(False, result=False, kw_only=True)  # runtime/backends.py
    progress: bool = setting(True, result=False, kw_only=True)


@stage_config
class SoftLabelsConfig(TeacherRun):
    """p_b of every training image (or of a training subset) under a teacher."""

    stage = "soft-labels"

    teacher: str = setting(input=True)
    dataset: str
    out: str = setting(result=False)
    data_root: str | None = None
    sigma: float = 0.25
    num_noise: int = 10_000
    precision: str = "fp32"  # the teacher's: fp32, bf16 or fp16 autocast
    train_subset: int | None = None
    batch: int = setting(1000, result=False)

    def validate(self) -> None:
        check_sigma(self.sigma)
        check_positive_int(self.num_noise, "--n")
        check_positive_int(self.batch, "--batch")


def run_soft_labels(cfg: SoftLabelsConfig) -> StageResult:
    device = D.setup_device(cfg.device, precision=cfg.precision,
                            deterministic=cfg.deterministic, join=False)
    train = create_dataset(cfg.dataset, "train", cfg.data_root)
    labelled = create_dataset(cfg.dataset, "test", cfg.data_root)
    model, meta = load_model(cfg.teacher, cfg.input_normalization, labelled, cfg.sigma,
                             cfg.seed, device)
    notice = check_precision(cfg.precision, device)
    if notice:
        print(f"smoothadv: {notice}")
    smooth = Smooth(at_precision(model, cfg.precision), meta["num_classes"], cfg.sigma)
    indices = (subset_indices(train, cfg.train_subset, cfg.seed)
               if cfg.train_subset is not None else None)
    path = soft_labels(smooth, train, cfg.out, num=cfg.num_noise, batch_size=cfg.batch,
                       seed=cfg.seed, indices=indices, progress=cfg.progress)
    rows = len(train) if indices is None else len(indices)
    return StageResult(path, f"soft targets of {rows} of {len(train)} images "
                             f"({cfg.num_noise} draws each) written to {path}")


@stage_config
class PseudoLabelConfig(TeacherRun):
    """A teacher's labels for unlabelled images (Carmon et al.'s format)."""

    stage = "pseudo-label"

    teacher: str = setting(input=True)
    out: str = setting(result=False)
    dataset: str = "folder"
    data_root: str | None = None
    split: str = "train"
    batch: int = setting(256, result=False)

    def validate(self) -> None:
        check_positive_int(self.batch, "--batch")
        if self.input_normalization == "auto":
            raise UserError("pseudo-label cannot measure the teacher's input layer (its images "
                            "carry no labels): give --input-normalization normalize|center|none")


def run_pseudo_label(cfg: PseudoLabelConfig) -> StageResult:
    device = D.setup_device(cfg.device, deterministic=cfg.deterministic, join=False)
    teacher, _ = load_model(cfg.teacher, cfg.input_normalization, None, None, cfg.seed, device)
    dataset = create_dataset(cfg.dataset, cfg.split, cfg.data_root)
    path = pseudo_label(teacher, dataset, cfg.out, cfg.batch, cfg.progress)
    return StageResult(Path(path), f"pseudo-labels of {len(dataset)} images written to {path}")


register_stage(SoftLabelsConfig, run_soft_labels)
register_stage(PseudoLabelConfig, run_pseudo_label)
