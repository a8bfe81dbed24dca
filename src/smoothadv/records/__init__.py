"""Record files: writing and reading them, and the loops that fill them.

- :mod:`.files`: the tab-separated formats, their configs and threat models, writers that append
  and flush per row, readers (no torch).
- :mod:`.loops`: the certification, prediction and attack loops over a data set, resumable.
- :mod:`.rebox`: the box-constrained ℓ1 radius applied to a finished record.
- :mod:`.examples`: image grids of attacked inputs.

May import: errors, noise, data, smoothing, attacks, runtime. ``from smoothadv.records import
read_records`` reads the names of :mod:`.files`, as before this became a package.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

from .files import CERTIFY_COLUMNS, PREDICT_COLUMNS, Records, RecordWriter, read_records

__all__ = ["CERTIFY_COLUMNS", "PREDICT_COLUMNS", "RecordWriter", "Records", "read_records"]


def __getattr__(name: str) -> Any:
    """Any other name of the former module ``smoothadv.records`` (now :mod:`.files`)."""
    return getattr(import_module(".files", __name__), name)
