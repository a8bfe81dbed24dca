"""The sweep's ledger: one small JSON file per job under ``OUT/ledger``, keyed by the job's
stage and config hash, written atomically. It remembers what engines said (submitted as which
SLURM job, failed with which line, how many attempts); whether a job is *done* is always asked
of its outputs (:func:`smoothadv.sweep.jobs.is_done`), so a ledger that an interruption left
behind is never trusted over the files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

STATES = ("done", "running", "queued", "failed", "blocked", "todo")


def mark_blocked(ledger: Ledger, key: str, deps: list[str], failed: set[str]) -> bool:
    """Record ``key`` as blocked when one of its ``deps`` failed; returns whether it is."""
    bad = [d for d in deps if d in failed]
    if bad:
        ledger.update(key, status="blocked", error="a stage it needs failed: " + ", ".join(bad))
    return bool(bad)


def drop_blocked(ledger: Ledger, todo: list[str], jobs: dict, failed: set[str]) -> None:
    """Take out of ``todo`` (in order) every job a failed stage blocks, marking it blocked in
    the ledger and failed, so that what needs it is blocked in turn."""
    for key in list(todo):
        if mark_blocked(ledger, key, jobs[key].deps, failed):
            todo.remove(key)
            failed.add(key)


class Ledger:
    def __init__(self, out: Path) -> None:
        self.folder = Path(out) / "ledger"

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def get(self, key: str) -> dict[str, Any]:
        try:
            return json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}

    def update(self, key: str, **fields: Any) -> dict[str, Any]:
        """Merge ``fields`` into the job's entry (with the time) and write it atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        entry = {**self.get(key), **fields, "key": key, "updated": time.time()}
        tmp = self.path(key).with_suffix(".tmp")
        tmp.write_text(json.dumps(entry, indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, self.path(key))
        return entry
