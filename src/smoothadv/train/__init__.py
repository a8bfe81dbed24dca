"""Training: the config of a run (:mod:`.config`), its data (:mod:`.data`), the one loop
(:mod:`.loop`) and pseudo-labelling for self-training (from :mod:`smoothadv.labels.pseudo`)."""

from ..labels.pseudo import pseudo_label
from .config import TrainConfig
from .data import SoftTargets, TrainData, assemble_data, load_extra_data, load_soft_targets
from .loop import LOG_COLUMNS, Trainer, _scheduler, fit_batch, train

__all__ = ["LOG_COLUMNS", "SoftTargets", "TrainConfig", "TrainData", "Trainer", "_scheduler",
           "assemble_data", "fit_batch", "load_extra_data", "load_soft_targets",
           "pseudo_label", "train"]
