"""Training methods: each owns the loss of one optimizer step (see :mod:`.base` for the
interface), how a loaded batch splits into steps, and the declarations of its options with
the authors' defaults (:mod:`.registry`); :mod:`smoothadv.train` is the one loop that runs
them.

- ``gaussian``: Gaussian data augmentation (Cohen et al. 2019);
- ``smoothadv``: adversarial training of the smoothed classifier (Salman et al. 2019);
- ``stability``: stability training (Li et al. 2019, as the CAT-RS authors ported it);
- ``macer``: MACER (Zhai et al. 2020);
- ``consistency``: consistency regularisation (Jeong & Shin 2020), with ``--attack pgd`` their
  SmoothAdv + consistency;
- ``smoothmix``: SmoothMix (Jeong et al. 2021);
- ``catrs``: CAT-RS (Jeong, Kim & Shin 2023);
- ``clean``: standard training without noise (for denoised smoothing).

Defaults are the authors' CIFAR-10 settings; σ-dependent ones come from their tables.
"""

from __future__ import annotations

from . import catrs, consistency, gaussian, macer, smoothmix, stability  # noqa: F401
from .base import TrainingMethod, warmup_epsilon
from .registry import (
    METHODS,
    MethodSpec,
    Option,
    create_method,
    list_methods,
    method_spec,
    options_markdown,
    options_table,
    per_sigma,
    register_method,
    unregister_method,
)

__all__ = ["METHODS", "MethodSpec", "Option", "TrainingMethod", "create_method",
           "list_methods", "method_spec", "options_markdown", "options_table", "per_sigma",
           "register_method", "unregister_method", "warmup_epsilon"]
