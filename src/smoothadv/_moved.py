"""The module paths of smoothadv 0.1 that moved when the package took its layout by concept.

``import smoothadv.evaluate`` (and every other path in :data:`MOVED`) still works for one
release: a finder on ``sys.meta_path`` answers the old name with the new module itself (the
same object, so a name patched on one is patched on the other) and warns once with a
:class:`DeprecationWarning` naming the new path. ``smoothadv.certification`` was a package of
four names; it is answered by a module that holds them. The CHANGELOG lists the moves.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
import warnings

MOVED = {  # old path → new path, below "smoothadv."
    "stats": "smoothing.stats",
    "sequences": "smoothing.sequences",
    "certification.sequential": "smoothing.sequential",
    "certification.box": "records.rebox",
    "evaluate": "records.loops",
    "examples": "records.examples",
    "compare": "analysis.compare",
    "backends": "runtime.backends",
    "compile": "runtime.compile",
    "distributed": "runtime.distributed",
    "precision": "runtime.precision",
    "rundir": "runtime.rundir",
    "soft_labels": "labels.soft",
    "train.pseudo_label": "labels.pseudo",
    "constants": "data.constants",
    "demo": "demos.main",
    "demo_l1": "demos.l1",
    "demo_methods": "demos.methods",
}
CERTIFICATION = {"SequentialCertifier": "smoothing.sequential",
                 "SequentialResult": "smoothing.sequential",
                 "piece_size": "smoothing.sequential", "rebox_record": "records.rebox"}


def _certification() -> types.ModuleType:
    """The former package ``smoothadv.certification``: its four names."""
    module = types.ModuleType("smoothadv.certification", "Moved: see smoothadv._moved.")
    module.__path__ = []  # a package, so that its old submodules resolve below it
    for name, where in CERTIFICATION.items():
        setattr(module, name, getattr(importlib.import_module(f"smoothadv.{where}"), name))
    return module


class _Loader(importlib.abc.Loader):
    def __init__(self, old: str) -> None:
        self.old = old

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        short = self.old.removeprefix("smoothadv.")
        new = "the names of smoothadv.smoothing.sequential and smoothadv.records.rebox" \
            if short == "certification" else f"smoothadv.{MOVED[short]}"
        warnings.warn(f"{self.old} moved to {new}; the old path goes in the next release",
                      DeprecationWarning, stacklevel=2)
        if short == "certification":
            return _certification()
        return importlib.import_module(f"smoothadv.{MOVED[short]}")

    def exec_module(self, module: types.ModuleType) -> None:
        """Nothing to run: the module is the new one, already imported."""


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path=None, target=None):
        short = fullname.removeprefix("smoothadv.")
        if fullname.startswith("smoothadv.") and (short in MOVED or short == "certification"):
            return importlib.machinery.ModuleSpec(fullname, _Loader(fullname),
                                                  is_package=short == "certification")
        return None


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
