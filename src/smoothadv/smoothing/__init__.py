"""The smoother and everything that certifies with it.

- :mod:`.smooth`: :class:`Smooth` (PREDICT, fixed-n CERTIFY, sound and derandomized
  certification, the soft classifier G), per-input noise streams.
- :mod:`.sequential` with :mod:`.sequences`: anytime-valid certification at given radii.
- :mod:`.stats`: the statistics (Clopper–Pearson bounds, radii), pure functions.

May import: errors, registry, data, noise. The names of :mod:`.smooth` are also read from here
(``from smoothadv.smoothing import Smooth``), as before this became a package.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .smooth import ABSTAIN, Certificate, Prediction, Smooth, input_seed

__all__ = ["ABSTAIN", "Certificate", "Prediction", "Smooth", "input_seed"]


def __getattr__(name: str) -> Any:
    """Any other name of the former module ``smoothadv.smoothing`` (now :mod:`.smooth`)."""
    return getattr(import_module(".smooth", __name__), name)
