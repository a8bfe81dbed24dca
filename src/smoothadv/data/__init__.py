"""Data sets as ``(image in [0,1]^{C×H×W}, label)`` pairs, and their normalization constants.

- :mod:`.datasets`: the registry of data sets (digits, MNIST, CIFAR-10, ImageNet, folders).
- :mod:`.constants`: the means and deviations the paper's checkpoints were trained with.

May import: errors, registry. ``from smoothadv.data import create_dataset`` reads the names of
:mod:`.datasets`, as before this became a package.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any


def __getattr__(name: str) -> Any:
    """The names of the former module ``smoothadv.data`` (now :mod:`.datasets`)."""
    return getattr(import_module(".datasets", __name__), name)
