"""Analysis of record files: metrics, tables, plots and comparison.

- :mod:`.summaries`: certified accuracy, ACR, envelopes, record settings, table formats, plots.
- :mod:`.compare`: differences against a reference with paired intervals.

May import: errors, registry, noise, records, smoothing (its statistics). ``from
smoothadv.analysis import summarize`` reads the names of :mod:`.summaries`, as before this
became a package.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any


def __getattr__(name: str) -> Any:
    """The names of the former module ``smoothadv.analysis`` (now :mod:`.summaries`)."""
    return getattr(import_module(".summaries", __name__), name)
