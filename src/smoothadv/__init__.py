"""smoothadv: provably l2-robust classifiers by randomized smoothing, and SmoothAdv.

Public surface::

    from smoothadv import Smooth, Certificate, Prediction, ABSTAIN
    from smoothadv.models import create_model, load_checkpoint, save_checkpoint
    from smoothadv.data import create_dataset
    from smoothadv.stages import CertifyConfig, TrainConfig, run_stage
    from smoothadv import stats, attacks, analysis

The names below are imported on first use, so that ``import smoothadv`` (and the command
line's ``--help``) does not load torch until something needs it.
"""

from __future__ import annotations

import importlib
from typing import Any

from .errors import UserError

__version__ = "0.1.0"
__all__ = ["ABSTAIN", "Certificate", "Prediction", "Smooth", "UserError", "input_seed"]
_FROM_SMOOTHING = {"ABSTAIN", "Certificate", "Prediction", "Smooth", "input_seed"}


def __getattr__(name: str) -> Any:
    if name in _FROM_SMOOTHING:
        return getattr(importlib.import_module(".smoothing", __name__), name)
    raise AttributeError(f"module 'smoothadv' has no attribute {name!r}")
