"""How long the rest of a sweep will take, from its stages' own forecasts.

Each running stage writes its forecast (:mod:`smoothadv.runtime.forecast`) to
``FOLDER/estimate.json``; a finished stage's time is in the ledger. A stage not yet started
is taken to cost what a **peer** cost or is forecast to cost: a stage of the same kind whose
config agrees in every setting but its floats (σ, learning rates, weights, ε), its seed, its
files and its logging — the costs of this method are set by integers (epochs, batch, n, n0,
attack steps, noise samples) and names (method, architecture, data set). Stages without a
measured peer are left out, and the line says how many. The rest is laid out as the local
engine runs it (``workers`` at once, dependencies first, in plan order) to give the time left;
on SLURM the same, with the array's parallelism and the queue's waits left out.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from dataclasses import fields
from typing import Any

from ..runtime.forecast import SAY_ABOVE, human_seconds
from .jobs import ESTIMATE_NAME
from .plan import Job

MIN_GAP = 30.0  # seconds between two lines at least
CHECK = 2.0  # seconds between two readings of the running stages' forecasts
EVERY = 300.0  # seconds after which the line is said again though nothing new was estimated
IGNORED = frozenset({"seed", "sigma", "out", "log", "progress", "overwrite", "resume", "shard",
                     "device", "compile", "workers", "deterministic", "dist_timeout"})


def cost_key(job: Job) -> str:
    """What a stage's cost depends on (module docstring): its kind and its config without
    floats, seeds, files and how-it-runs settings."""
    config = job.config
    files = {f.name: f.metadata.get("input") for f in fields(config) if f.metadata.get("input")}

    def keep(value: Any, skip: Iterable[str] = ()) -> Any:
        if isinstance(value, dict):
            return {k: keep(v) for k, v in value.items()
                    if not isinstance(v, float) and k not in IGNORED and k not in skip}
        return value

    body = {k: keep(v, files.get(k) or ()) for k, v in config.to_dict().items()
            if k not in IGNORED and files.get(k) is not True and not isinstance(v, float)}
    if job.kind == "certify-shared":
        body["members"] = len(job.members)
    return json.dumps([job.kind, body], sort_keys=True, default=str)


def running_estimate(job: Job, now: float | None = None) -> float | None:
    """Seconds left of a running stage from its forecast (None before it has one)."""
    try:
        estimate = json.loads((job.folder / ESTIMATE_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    now = time.time() if now is None else now
    # the forecast counts from its own start (after loading); what it had left, less the
    # time since it was made
    return max(0.0, float(estimate["left"]) - (now - float(estimate["at"])))


def stage_count(jobs: dict[str, Job], todo: list[str], done: int, where: str) -> str:
    """``sweep: 12 stage(s) to run (8 train, 4 certify), 3 done; 2 worker(s)``."""
    kinds: dict[str, int] = {}
    for key in todo:
        kinds[jobs[key].kind] = kinds.get(jobs[key].kind, 0) + 1
    parts = ", ".join(f"{count} {kind}" for kind, count in kinds.items())
    return f"sweep: {len(todo)} stage(s) to run ({parts}), {done} done; {where}"


class Outlook:
    """The time left of a sweep run with ``workers`` stages at once (the local engine's
    workers; on SLURM the array's parallelism, or every stage: the queue's waits are not
    counted, ``where`` says so in the line)."""

    def __init__(self, jobs: dict[str, Job], workers: int, where: str | None = None) -> None:
        self.jobs, self.workers = jobs, workers
        self.where = where or f"{workers} worker(s)"
        self.said_at, self.said_counted = -float("inf"), 0
        self.checked_at = -float("inf")
        self.measured: dict[str, float] = {}  # cost key → seconds a stage of it took
        self.forecast: dict[str, float] = {}  # cost key → a running stage's forecast

    def finished(self, key: str, seconds: float) -> None:
        """A stage that ran to the end in ``seconds``: its peers' cost."""
        self.measured[cost_key(self.jobs[key])] = seconds

    def cost(self, key: str) -> float | None:
        """A whole stage's seconds, from a finished peer, else a running one's forecast."""
        ck = cost_key(self.jobs[key])
        return self.measured.get(ck, self.forecast.get(ck))

    def left(self, running: dict[str, float], todo: Iterable[str],
             now: float | None = None) -> tuple[float, int, int]:
        """(seconds left, stages counted, stages without an estimate) given the running stages
        (key → the time it started) and those still to run, in plan order."""
        now = time.time() if now is None else now
        free: list[float] = []
        ends: dict[str, float] = {}
        unknown = 0
        for key, started in running.items():
            left = running_estimate(self.jobs[key], now)
            if left is None:
                peer = self.cost(key)
                left = None if peer is None else max(0.0, peer - (now - started))
            else:
                self.forecast[cost_key(self.jobs[key])] = (now - started) + left
            if left is None:
                unknown += 1
                left = 0.0
            ends[key] = left
            free.append(left)
        free += [0.0] * max(0, self.workers - len(free))
        counted = len(running) - unknown
        for key in todo:
            job = self.jobs[key]
            cost = self.cost(key)
            if cost is None:
                unknown += 1
                cost = 0.0
            else:
                counted += 1
            ready = max([ends.get(d, 0.0) for d in job.deps], default=0.0)
            free.sort()
            start = max(free[0], ready)
            free[0] = start + cost
            ends[key] = start + cost
        return max(free, default=0.0), counted, unknown

    def say_now(self, running: dict[str, float], todo: Iterable[str],
                now: float | None = None) -> str | None:
        """The line to say now, if any: when the number of stages estimated has changed (at
        most every :data:`MIN_GAP` s), else every :data:`EVERY` s."""
        now = time.time() if now is None else now
        if now - self.said_at < MIN_GAP or now - self.checked_at < CHECK:
            return None
        self.checked_at = now
        todo = list(todo)
        seconds, counted, unknown = self.left(running, todo, now)
        if counted == 0 or (counted == self.said_counted and now - self.said_at < EVERY):
            return None
        if seconds < SAY_ABOVE:  # nothing worth a line (or too little known yet)
            return None
        self.said_at, self.said_counted = now, counted
        # stages not yet estimated count as nothing: the figure is then a lower bound
        rest = f"; {unknown} not yet estimated, left out" if unknown else ""
        return (f"sweep: {'more than' if unknown else 'about'} {human_seconds(seconds)} left "
                f"({counted} stage(s) estimated from their own or a like stage's time{rest}; "
                f"{self.where})")


__all__ = ["Outlook", "cost_key", "running_estimate", "stage_count"]
