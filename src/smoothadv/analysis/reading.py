"""Reading record files for analysis: folders expanded to their record files, header-only
files reported and skipped, labels shortened to what tells the files apart."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..records.files import (
    CERTIFY_COLUMNS,
    PREDICT_COLUMNS,
    Records,
    read_records,
)
from .metrics import EmpiricalSummary, Summary, summarize
from .settings import config_value


def record_kind(path: Path) -> str | None:
    """'certify' or 'predict' (prediction and attack records) from a file's header, else None."""
    try:
        with open(path, encoding="utf-8") as f:
            first = tuple(f.readline().rstrip("\n").split("\t"))
    except (OSError, UnicodeDecodeError):
        return None
    if first[:5] == CERTIFY_COLUMNS[:5]:
        return "certify"
    if first[:5] == PREDICT_COLUMNS[:5]:
        return "predict"
    return None


def expand_paths(paths: Iterable[str | os.PathLike],
                 kinds: Sequence[str] = ("certify",)) -> list[Path]:
    """Files as given; a directory means every record file of ``kinds`` below it (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and record_kind(f) in kinds)
            if not found:
                names = {"certify": "certification", "predict": "prediction"}
                raise UserError(f"no {' or '.join(names[k] for k in kinds)} record files "
                                f"below {p}")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise UserError(f"record file not found: {p}")
    return out


def _read_nonempty(
    files: Sequence[Path], required: Sequence[str], labels: Sequence[str] | None,
    warn: Callable[[str], None],
) -> Iterator[tuple[Records, str]]:
    """(records, label) of each file with rows; header-only files are reported and skipped."""
    if labels is not None and len(labels) != len(files):
        raise UserError(f"{len(labels)} labels for {len(files)} record files")
    short = short_labels([str(f) for f in files])
    for i, f in enumerate(files):
        rec = read_records(f, required=required)
        if rec.is_empty:
            warn(f"skipping {f}: header only, no rows")
            continue
        yield rec, labels[i] if labels else short[str(f)]


def load_empirical(files: Sequence[Path], labels: Sequence[str] | None = None,
                   warn: Callable[[str], None] = print) -> list[EmpiricalSummary]:
    """Summaries of prediction/attack record files; header-only files are reported, skipped."""
    out = []
    for rec, label in _read_nonempty(list(files), PREDICT_COLUMNS[:5], labels, warn):
        cols = rec.columns
        out.append(EmpiricalSummary(
            label=label,
            path=str(rec.path),
            rows=len(rec),
            accuracy=float(np.mean(cols["correct"] == 1)),
            abstain=float(np.mean(cols["predict"] == -1)),
            clean=float(np.mean(cols["cleanPredict"] == cols["label"]))
            if "cleanPredict" in cols else None,
            mean_l2=float(np.mean(cols["l2"])) if "l2" in cols else None,
            epsilon=config_value(rec.path, "epsilon"),
        ))
    return out


def load_summaries(
    paths: Sequence[str | os.PathLike],
    radii: Sequence[float],
    labels: Sequence[str] | None = None,
    alpha: float | None = None,
    confidence: float = 0.001,
    warn: Callable[[str], None] = print,
    as_written: bool = False,
) -> list[Summary]:
    """Summaries of every file under ``paths``; header-only files are reported and skipped."""
    out = [summarize(rec, radii, label, alpha, confidence, as_written)
           for rec, label in _read_nonempty(expand_paths(paths), CERTIFY_COLUMNS[:5], labels,
                                            warn)]
    if not out:
        raise UserError("every record file given is empty")
    return out


def short_labels(paths: list[str]) -> dict[str, str]:
    """Short, distinct names: each path relative to the files' common folder (a path that is
    the common folder itself, or on another drive, is kept whole)."""
    try:
        common = os.path.commonpath([os.path.abspath(p) for p in paths])
    except ValueError:
        return {p: p for p in paths}
    if os.path.dirname(common) == common:  # nothing shared but the root: keep paths whole
        return {p: p for p in paths}
    out = {}
    for p in paths:
        rel = os.path.relpath(os.path.abspath(p), common)
        out[p] = p if rel == "." else rel
    return out
