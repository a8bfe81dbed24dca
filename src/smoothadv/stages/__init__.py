"""Stages as data: every stage of smoothadv is a typed, hashable config
(:class:`~smoothadv.configs.StageConfig`) and one library function that runs it.

=================  =================================  ======================================
stage              config                             runs
=================  =================================  ======================================
``train``          :class:`~smoothadv.train.TrainConfig`        :func:`.training.run_train`
``train-denoiser`` :class:`~smoothadv.denoise.training.DenoiserConfig`  ``run_train_denoiser``
``certify``        :class:`.evaluation.CertifyConfig`  :func:`.evaluation.run_evaluation`
``predict``        :class:`.evaluation.PredictConfig`  :func:`.evaluation.run_evaluation`
``attack``         :class:`.evaluation.AttackConfig`   :func:`.evaluation.run_evaluation`
``soft-labels``    :class:`.labels.SoftLabelsConfig`   :func:`.labels.run_soft_labels`
``pseudo-label``   :class:`.labels.PseudoLabelConfig`  :func:`.labels.run_pseudo_label`
``analyze``        :class:`.reports.AnalyzeConfig`     :func:`.reports.run_analyze`
``compare``        :class:`.reports.CompareConfig`     :func:`.reports.run_compare`
=================  =================================  ======================================

``run_stage(config)`` runs any of them; ``load_config(path)`` reads one back from the JSON a
run keeps (or any file ``{"stage": NAME, "config": {...}}``), which is what
``smoothadv run FILE.json`` does.
"""

from ..denoise.training import DenoiserConfig
from ..train import TrainConfig
from .evaluation import AttackConfig, CertifyConfig, EvalConfig, PredictConfig
from .labels import PseudoLabelConfig, SoftLabelsConfig
from .registry import (
    STAGES,
    StageResult,
    config_from_document,
    list_stages,
    load_config,
    run_stage,
)
from .reports import AnalyzeConfig, CompareConfig
from .training import run_train, run_train_denoiser  # noqa: F401  (registers the stages)

__all__ = ["STAGES", "AnalyzeConfig", "AttackConfig", "CertifyConfig", "CompareConfig",
           "DenoiserConfig", "EvalConfig", "PredictConfig", "PseudoLabelConfig",
           "SoftLabelsConfig", "StageResult", "TrainConfig", "config_from_document",
           "list_stages", "load_config", "run_stage"]
