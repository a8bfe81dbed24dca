"""An index of runs: every training run folder and record file below some folders, with its
stage, its key settings, its state and its headline figures, filtered by any config field.

A training run (or denoiser) folder is one with a ``config.json`` of a stage config; a record is
a file with its ``.config.json`` beside it, and takes its model's training settings (method,
options, architecture) from the run folder of its checkpoint where there is one; its ``seed``
is then its model's training seed, and the seed of its noise is ``certify_seed``. The state
comes from what is on disk: a training run is ``done`` at its last epoch (its log's rows), else
``partial``; a record is ``done`` with a row for every input its config selected, else
``partial`` with the count. Figures: a run's last test accuracy (under noise, as logged), a
record's certified accuracy at a few radii and ACR. No torch is imported for a listing.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError

KEY_SETTINGS = ("dataset", "arch", "method", "sigma", "seed", "epochs", "n", "alpha", "noise",
                "norm", "members", "checkpoint")
RADII = (0.0, 0.25, 0.5, 1.0)


@dataclass
class Entry:
    """One run or record of the index."""

    path: str
    kind: str  # 'run' or 'record'
    stage: str
    state: str
    settings: dict[str, Any]
    figures: dict[str, float] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "kind": self.kind, "stage": self.stage, "state": self.state,
                "settings": self.settings, "figures": self.figures}


def read_document(path: Path) -> dict[str, Any] | None:
    """The config document at ``path`` (a stage's JSON with its config), or None."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(document, dict) and isinstance(document.get("config"), dict)
    return document if ok and "stage" in document else None


def _settings(config: dict[str, Any]) -> dict[str, Any]:
    options = config.get("options") or {}
    out = {k: config[k] for k in KEY_SETTINGS if config.get(k) not in (None, "", [], ())}
    for name in ("lbd", "epsilon", "eta"):
        if name in options:
            out[name] = options[name]
    return out


def _run_entry(folder: Path, document: dict[str, Any]) -> Entry:
    config = document["config"]
    rows: list[list[str]] = []
    log = folder / "log.tsv"
    if log.exists():
        lines = log.read_text(encoding="utf-8").splitlines()
        header = lines[0].split("\t") if lines else []
        rows = [ln.split("\t") for ln in lines[1:] if ln.strip()]
    done = len(rows)
    epochs = int(config.get("epochs") or 0)
    state = "done" if epochs and done >= epochs else f"partial ({done}/{epochs} epochs)"
    figures: dict[str, float] = {}
    if rows and "test_acc" in header:
        figures["test_acc"] = float(rows[-1][header.index("test_acc")])
    return Entry(str(folder), "run", document["stage"], state, _settings(config), figures, config)


def _with_model(config: dict[str, Any]) -> dict[str, Any]:
    """A record's config with its model's training settings (method, options, architecture,
    the training seed) underneath, where its checkpoint's run folder has them."""
    trained = read_document(Path(config["checkpoint"]).parent / "config.json") \
        if config.get("checkpoint") else None
    if trained is None:
        return dict(config)
    return {**{k: v for k, v in trained["config"].items() if k not in ("out",)},
            **{k: v for k, v in config.items() if v is not None and k != "seed"},
            "seed": trained["config"].get("seed", config.get("seed")),
            "certify_seed": config.get("seed")}


def _record_entry(path: Path, document: dict[str, Any]) -> Entry:
    from ..records.files import read_records
    from .metrics import average_certified_radius, certified_accuracy

    config = _with_model(document["config"])
    try:
        rec = read_records(path)
    except (UserError, ValueError, OSError):
        return Entry(str(path), "record", document["stage"], "unreadable", _settings(config),
                     config=config)
    wanted = document.get("num_inputs")
    state = ("done" if wanted is not None and len(rec) >= int(wanted) else
             f"partial ({len(rec)}/{wanted if wanted is not None else '?'} rows)")
    figures: dict[str, float] = {}
    if len(rec) and document["stage"] == "certify" and "radius" in rec.columns:
        for r, acc in zip(RADII, certified_accuracy(rec, list(RADII))):
            figures[f"r={r:g}"] = float(acc)
        figures["ACR"] = float(average_certified_radius(rec))
    elif len(rec) and "correct" in rec.columns:
        figures["accuracy"] = float(rec["correct"].mean())
    return Entry(str(path), "record", document["stage"], state, _settings(config), figures,
                 config)


def find_runs(folders: list[str | Path]) -> list[Entry]:
    """Every run folder and record file below ``folders`` (sorted by path)."""
    entries: list[Entry] = []
    for folder in map(Path, folders):
        if not folder.exists():
            raise UserError(f"no such folder: {folder}")
        for conf in sorted(folder.rglob("*config.json")):
            document = read_document(conf)
            if document is None:
                continue
            if conf.name == "config.json":
                entries.append(_run_entry(conf.parent, document))
            elif conf.name.endswith(".config.json"):
                record = conf.with_name(conf.name[: -len(".config.json")])
                if record.exists():
                    entries.append(_record_entry(record, document))
    return sorted(entries, key=lambda e: e.path)


def _matches(value: Any, wanted: str) -> bool:
    if isinstance(value, (list, tuple)):
        return any(_matches(v, wanted) for v in value)
    if isinstance(value, bool) or value is None:
        return str(value).lower() == wanted.lower()
    if isinstance(value, (int, float)):
        try:
            return math.isclose(float(value), float(wanted))
        except ValueError:
            return False
    return str(value) == wanted


def where(entries: list[Entry], conditions: list[str]) -> list[Entry]:
    """The entries whose config (or method options, stage, state) match every ``KEY=VALUE``
    of ``conditions`` (numbers compared as numbers)."""
    parsed = []
    for condition in conditions:
        key, sep, value = condition.partition("=")
        if not sep or not key:
            raise UserError(f"--where takes KEY=VALUE, got {condition!r}")
        parsed.append((key, value))
    out = []
    for entry in entries:
        fields = {**(entry.config.get("options") or {}), **entry.config,
                  "stage": entry.stage, "kind": entry.kind,
                  "state": entry.state.split(" ")[0]}
        if all(key in fields and _matches(fields[key], value) for key, value in parsed):
            out.append(entry)
    return out


def render_index(entries: list[Entry]) -> str:
    """The index as a text table: path, stage, state, key settings, figures."""
    if not entries:
        return "no run or record found"
    lines = []
    for e in entries:
        settings = " ".join(f"{k}={v}" for k, v in e.settings.items() if k != "checkpoint")
        figures = " ".join(f"{k} {v:.3f}" for k, v in e.figures.items())
        lines.append(f"{e.path}\n    {e.stage}, {e.state}; {settings}"
                     + (f"\n    {figures}" if figures else ""))
    return "\n".join(lines) + f"\n{len(entries)} found"


__all__ = ["Entry", "find_runs", "render_index", "where"]
