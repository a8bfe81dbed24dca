"""How long a run will take, from a short measurement of its own first units of work.

A :class:`Forecast` is told, as a run goes, how many of its units (inputs of a certification,
training steps, epochs) are done. The first ``warmup`` units are not measured (one-off costs:
allocation, cuDNN's choice of algorithms, a compiled graph); once the units after them have
taken ``min_seconds`` (or the run is half done), it says one line (where at least
:data:`SAY_ABOVE` seconds are left), e.g.
``certify: 500 inputs will take about 14 min 10 s (measured on inputs 9–40, 1.7 s each);
done around 15:42``, and keeps the estimate (:attr:`Forecast.total_seconds`, from the start of
the forecast) for whoever asks. The units are assumed to cost alike: a certification's inputs
do (fixed n), a sequential certification's do not (the line says so), training steps do.

The measurement is the run itself: nothing is run twice, no random state is touched, so a
forecast run equals one without it. Where ``SMOOTHADV_ESTIMATE_FILE`` names a file (the sweep
engine sets it per stage), each estimate is also written there as JSON (``seconds``: the whole
run's, ``left``, ``at``: the Unix time it was made, ``what``), replaced atomically.
"""

from __future__ import annotations

import datetime
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

ESTIMATE_FILE = "SMOOTHADV_ESTIMATE_FILE"
SAY_ABOVE = 10.0  # seconds left below which no line is said (a short run needs no forecast)


def human_seconds(seconds: float) -> str:
    """``3 d 11 h``, ``3 h 04 min``, ``14 min 10 s``, ``42 s``, ``2.5 s`` or ``31 ms``: a
    duration for people."""
    if seconds < 1:
        return f"{seconds * 1e3:.3g} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours >= 48:
        return f"{hours // 24} d {hours % 24:02d} h"
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def publish(what: str, seconds: float, left: float) -> None:
    """Write an estimate to the file ``SMOOTHADV_ESTIMATE_FILE`` names (nothing if unset)."""
    target = os.environ.get(ESTIMATE_FILE)
    if not target:
        return
    path = Path(target)
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps({"what": what, "seconds": seconds, "left": left,
                                   "at": time.time()}) + "\n", encoding="utf-8")
        os.replace(tmp, path)
    except OSError:  # an estimate is never worth failing a run for
        pass


class Forecast:
    """Estimate of a run of ``total`` units from the time its units after the first
    ``warmup`` took; :meth:`done` is called with the count of units finished so far (0 …
    ``total``), :attr:`total_seconds` is the estimate once made (None before)."""

    def __init__(self, what: str, total: int, unit: str, *, warmup: int = 1,
                 min_seconds: float = 3.0, say: Callable[[str], None] | None = None,
                 varies: bool = False, clock: Callable[[], float] = time.perf_counter) -> None:
        self.what, self.total, self.unit = what, int(total), unit
        self.warmup, self.min_seconds, self.varies = max(0, warmup), min_seconds, varies
        self.say, self.clock = say, clock
        self.started = clock()
        # (units, time) at the end of the warm-up
        self.mark: tuple[int, float] | None = (0, self.started) if self.warmup == 0 else None
        self.total_seconds: float | None = None

    def done(self, units: int) -> float | None:
        """``units`` finished so far; returns the estimate of the whole run's seconds when this
        call made it (said and published once), else None."""
        if self.total_seconds is not None or self.total <= 0:
            return None
        now = self.clock()
        if self.mark is None:
            if units >= min(self.warmup, self.total) and units < self.total:
                self.mark = (units, now)
            return None
        measured = units - self.mark[0]
        spent = now - self.mark[1]
        if measured <= 0 or units >= self.total or (spent < self.min_seconds
                                                    and 2 * units < self.total):
            return None
        each = spent / measured
        left = (self.total - units) * each
        self.total_seconds = (now - self.started) + left
        publish(self.what, self.total_seconds, left)
        if self.say is not None and left >= SAY_ABOVE:
            self.say(self.line(units, each, left))
        return self.total_seconds

    def line(self, units: int, each: float, left: float) -> str:
        first = self.mark[0] + 1 if self.mark else 1
        now = datetime.datetime.now()
        finish = now + datetime.timedelta(seconds=left)
        when = f"{finish:%H:%M}" if finish.date() == now.date() else f"{finish:%a %d %b %H:%M}"
        span = f"{self.unit} {first}" if first == units else f"{self.unit}s {first}–{units}"
        return (f"{self.what}: {self.total:,} {self.unit}s will take about "
                f"{human_seconds(self.total_seconds or 0.0)} (measured on {span}, "
                f"{human_seconds(each)} each"
                + ("; they vary, so this is rough" if self.varies else "")
                + f"); done around {when}")


__all__ = ["ESTIMATE_FILE", "Forecast", "human_seconds", "publish"]
