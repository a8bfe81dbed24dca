"""Training methods: each owns the loss of one optimizer step (see :mod:`.base` for the
interface) and how a loaded batch splits into steps; :mod:`smoothadv.train` is the one loop
that runs them.

- ``gaussian``: Gaussian data augmentation (Cohen et al. 2019);
- ``smoothadv``: adversarial training of the smoothed classifier (Salman et al. 2019);
- ``stability``: stability training (Li et al. 2019, as the CAT-RS authors ported it);
- ``macer``: MACER (Zhai et al. 2020);
- ``consistency``: consistency regularisation (Jeong & Shin 2020), with ``--attack pgd`` their
  SmoothAdv + consistency;
- ``smoothmix``: SmoothMix (Jeong et al. 2021);
- ``catrs``: CAT-RS (Jeong, Kim & Shin 2023).

Defaults are the authors' CIFAR-10 settings; σ-dependent ones come from their tables.
"""

from __future__ import annotations

from collections.abc import Callable

from ..registry import Registry
from .base import TrainingMethod, warmup_epsilon

METHODS: Registry[Callable[..., TrainingMethod]] = Registry("method")


def register(name: str):
    """Decorator: register ``fn(*, sigma, **hyper-parameters) -> TrainingMethod``."""
    return METHODS.register(name)


def list_methods() -> list[str]:
    return METHODS.names()


def create_method(name: str, **kwargs) -> TrainingMethod:
    """Build a registered training method: ``create_method("macer", sigma=0.25, lbd=12)``.
    Unknown keywords are ignored (the trainer passes every option it has); None means the
    authors' default."""
    return METHODS.get(name)(**{k: v for k, v in kwargs.items() if v is not None})


from . import catrs, consistency, gaussian, macer, smoothmix, stability  # noqa: E402,F401

__all__ = ["METHODS", "TrainingMethod", "create_method", "list_methods", "register",
           "warmup_epsilon"]
