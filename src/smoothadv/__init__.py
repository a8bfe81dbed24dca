"""smoothadv: provably l2-robust classifiers by randomized smoothing, and SmoothAdv.

Public surface::

    from smoothadv import Smooth, Certificate, Prediction, ABSTAIN
    from smoothadv.models import create_model, load_checkpoint, save_checkpoint
    from smoothadv.data import create_dataset
    from smoothadv.stages import CertifyConfig, TrainConfig, run_stage
    from smoothadv.smoothing import stats
    from smoothadv import attacks, analysis

The layout (docs/architecture.md): ``smoothing`` (the smoother and its certificates),
``noise``, ``attacks``, ``records``, ``analysis``, ``runtime``, ``models``, ``data``,
``methods``, ``train``, ``labels``, ``denoise``, ``stages``, ``recipes``, ``sweep``, ``demos``,
``cli``. Module paths of 0.1 that moved still import for one release (:mod:`._moved`).

The names below are imported on first use, so that ``import smoothadv`` (and the command
line's ``--help``) does not load torch until something needs it.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import _moved
from .errors import UserError

_moved.install()

__version__ = "0.1.0"
__all__ = ["ABSTAIN", "Certificate", "Prediction", "Smooth", "UserError", "input_seed"]
_FROM_SMOOTHING = {"ABSTAIN", "Certificate", "Prediction", "Smooth", "input_seed"}


def __getattr__(name: str) -> Any:
    if name in _FROM_SMOOTHING:
        return getattr(importlib.import_module(".smoothing", __name__), name)
    raise AttributeError(f"module 'smoothadv' has no attribute {name!r}")
