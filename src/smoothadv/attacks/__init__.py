"""Attacks on the smoothed classifier: SmoothAdv's PGD and DDN (:mod:`.smoothadv`).

May import: errors, registry, smoothing. ``from smoothadv.attacks import create_attack`` reads
the names of :mod:`.smoothadv`, as before this became a package.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any


def __getattr__(name: str) -> Any:
    """The names of the former module ``smoothadv.attacks`` (now :mod:`.smoothadv`)."""
    return getattr(import_module(".smoothadv", __name__), name)
