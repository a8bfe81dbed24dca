"""Running figures of a record file as it is written, for TensorBoard, W&B or a CSV file
(``certify … --log tensorboard``; :mod:`smoothadv.runtime.loggers`).

A :class:`RecordWatch` takes each finished batch of rows (prediction, label, radius) with the
noise samples it drew and the seconds it took, and sends the loggers, at most every
``every`` seconds and once at the end, at step = rows written:

- ``rows``: rows in the record (those of an earlier, interrupted run included);
- ``accuracy``: share of rows whose prediction is the label (certified accuracy at radius 0;
  for attack records, the empirical robust accuracy); ``abstain``: share of abstentions;
- certify only: ``certified/r=R`` at the radii ``radii`` (share of rows correct with radius
  ≥ R) and ``acr`` (the mean radius of the correct rows, 0 for the others);
- ``samples_per_second``: noise samples classified per second since the last report (per
  forward: all models of a shared certification count once).

The figures are those of this process's rows (under torchrun: rank 0's share). At the end the
whole record's figures also go to the hyper-parameter views (TensorBoard's HParams).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

import numpy as np

from ..runtime.loggers import Logger

RADII = (0.25, 0.5, 0.75, 1.0)
ABSTAIN = -1


class RecordWatch:
    """Figures of one record for ``logger``; ``kind``: certify, predict or attack."""

    def __init__(self, logger: Logger, kind: str, *, radii: Iterable[float] = RADII,
                 every: float = 10.0, kept: Iterable[tuple[int, int, float]] = (),
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.logger, self.kind, self.every, self.clock = logger, kind, every, clock
        self.radii = tuple(radii) if kind == "certify" else ()
        self.rows = 0
        self.correct = 0
        self.abstain = 0
        self.radius_sum = 0.0
        self.above = np.zeros(len(self.radii), dtype=np.int64)
        self.samples = 0
        self.seconds = 0.0
        self.last = clock()
        self.closed = False
        self._count(list(kept))

    def _count(self, rows: list[tuple[int, int, float]]) -> None:
        for prediction, label, radius in rows:
            self.rows += 1
            self.abstain += prediction == ABSTAIN
            if prediction == label:
                self.correct += 1
                if self.radii:
                    self.radius_sum += radius
                    self.above += np.asarray(self.radii) <= radius

    def add(self, rows: Iterable[tuple[int, int, float]], samples: int, seconds: float) -> None:
        """Rows just written (prediction, label, radius; radius 0 where there is none), the
        noise samples they drew and the seconds they took."""
        self._count(list(rows))
        self.samples += samples
        self.seconds += seconds
        if self.clock() - self.last >= self.every:
            self.report()

    def figures(self) -> dict[str, float]:
        """The record's figures so far (see the module docstring)."""
        n = max(self.rows, 1)
        out = {"rows": float(self.rows), "accuracy": self.correct / n,
               "abstain": self.abstain / n}
        for radius, count in zip(self.radii, self.above):
            out[f"certified/r={radius:g}"] = int(count) / n
        if self.radii:
            out["acr"] = self.radius_sum / n
        return out

    def report(self) -> None:
        """Send the figures now (with the samples per second since the last report)."""
        values = self.figures()
        if self.seconds > 0:
            values["samples_per_second"] = self.samples / self.seconds
        self.samples, self.seconds, self.last = 0, 0.0, self.clock()
        self.logger.scalars(self.rows, values)

    def close(self) -> None:
        """The last report, the record's figures as the run's final ones, and the loggers
        closed."""
        if self.closed:
            return
        self.closed = True
        if self.rows:
            self.report()
        final = {k: v for k, v in self.figures().items() if k != "rows"}
        self.logger.close(final if self.rows else None)


__all__ = ["RADII", "RecordWatch"]
