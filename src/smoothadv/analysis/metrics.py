"""What a record file's rows give: certified accuracy, ACR, lower bounds, envelopes.

Approximate certified accuracy at radius r (Cohen et al.): the fraction of rows with
``correct`` = 1 and a radius ≥ r. The radius compared is :attr:`Records.radius_lower`, never
above the certified one: for files whose radii were rounded to nearest (the paper's logs) the
written value less half a unit in its last digit, so a row written 0.500 is not counted at
r = 0.5 (its true radius may be 0.4996). ``as_written=True`` compares the written numbers as the
paper's own analysis did, which reproduces its tables exactly.

The envelope over several models takes, at each radius, the best model and reports its clean
accuracy (accuracy at radius 0) beside it: this is how the SmoothAdv paper's tables are made.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import binom

from ..errors import UserError, check_alpha
from ..records.files import (
    Records,
)
from ..smoothing.stats import lower_confidence_bound
from .settings import sigma_from_path


@dataclass
class Summary:
    """Figures of one certification record file at the given radii."""

    label: str
    path: str
    rows: int
    radii: list[float]
    certified: list[float]  # approximate certified accuracy at each radius
    clean: float  # accuracy of g (certified accuracy at radius 0)
    abstain: float  # fraction of abstentions
    acr: float  # average certified radius: mean of radius × correct
    sigma: float | None = None
    lower: list[float] | None = field(default=None)  # high-probability lower bounds
    samples: tuple[float, float, float] | None = None  # sequential: mean, median, p90
    records: Records | None = field(default=None, repr=False)  # the rows, for plotting


def counted_radius(records: Records, as_written: bool = False) -> np.ndarray:
    """The radius each row is counted with: never above the certified one
    (``records.radius_lower``, clipped at 0 so a correct row always counts at r = 0), or the
    written value with ``as_written``."""
    return records["radius"] if as_written else records.counted_radius


def certified_accuracy(records: Records, radii: Sequence[float],
                       as_written: bool = False) -> np.ndarray:
    """Fraction of rows with correct = 1 and radius ≥ r, for each r: array [len(radii)].

    The radius is ``records.radius_lower`` (never above the certified radius; a correct row
    always counts at r = 0), or the written value with ``as_written``.
    """
    if records.is_empty:
        return np.full(len(radii), np.nan)
    certified = np.sort(counted_radius(records, as_written)[records["correct"] == 1])
    below = np.searchsorted(certified, np.asarray(radii, dtype=np.float64), side="left")
    return (len(certified) - below) / len(records)


def samples_per_input(records: Records) -> tuple[float, float, float] | None:
    """(mean, median, 90th percentile) of the noise samples per input of a sequential record
    file (its ``samples`` column); None for fixed-n files."""
    if "samples" not in records.columns or records.is_empty:
        return None
    s = records["samples"].astype(np.float64)
    return float(s.mean()), float(np.median(s)), float(np.percentile(s, 90))


def average_certified_radius(records: Records, as_written: bool = False) -> float:
    """ACR: the mean over rows of radius × correct (abstentions and errors count 0), with the
    radius every table counts (:attr:`Records.counted_radius`), or the written one with
    ``as_written``."""
    if records.is_empty:
        return float("nan")
    return float(np.mean(counted_radius(records, as_written) * (records["correct"] == 1)))


def certified_accuracy_lower_bound(
    records: Records, radii: Sequence[float], alpha: float = 0.001, confidence: float = 0.001,
    as_written: bool = False,
) -> np.ndarray:
    """High-probability lower bound on the certified accuracy of the *population*.

    Each of the m certificates is wrong with probability at most ``alpha``, so the number of
    wrong ones is stochastically below Binomial(m, alpha); with probability ≥ 1 − γ/2 it is
    at most q = its (1 − γ/2) quantile. Of the k rows counted at radius r, at least k − q are
    then truly certified, and a one-sided Clopper–Pearson bound at level γ/2 carries
    (k − q)/m from the test set to the distribution it was drawn from. Together: with
    probability ≥ 1 − γ (γ = ``confidence``) the true certified accuracy at r is at least
    the returned value.
    """
    alpha = check_alpha(alpha)
    confidence = check_alpha(confidence)
    m = len(records)
    if m == 0:
        return np.full(len(radii), np.nan)
    q = binom.ppf(1 - confidence / 2, m, alpha)
    k = np.round(certified_accuracy(records, radii, as_written) * m)
    return lower_confidence_bound(np.clip(k - q, 0, m), m, confidence / 2)


def summarize(
    records: Records,
    radii: Sequence[float],
    label: str | None = None,
    alpha: float | None = None,
    confidence: float = 0.001,
    as_written: bool = False,
) -> Summary:
    """All figures of one record file; ``alpha`` (the certificates' level) adds lower bounds;
    ``as_written`` compares written radii as the paper's analysis did (see the module)."""
    radii = [float(r) for r in radii]
    empty = records.is_empty
    return Summary(
        label=label or str(records.path),
        path=str(records.path),
        rows=len(records),
        radii=radii,
        certified=certified_accuracy(records, radii, as_written).tolist(),
        clean=float("nan") if empty else float(np.mean(records["correct"] == 1)),
        abstain=float("nan") if empty else float(np.mean(records["predict"] == -1)),
        acr=average_certified_radius(records, as_written),
        sigma=sigma_from_path(records.path),
        lower=None if alpha is None else certified_accuracy_lower_bound(
            records, radii, alpha, confidence, as_written).tolist(),
        samples=samples_per_input(records),
        records=records,
    )


@dataclass
class EnvelopeCell:
    """The best model at one radius: its certified accuracy there and its clean accuracy."""

    radius: float
    certified: float
    clean: float
    label: str


def envelope(summaries: Sequence[Summary]) -> list[EnvelopeCell]:
    """Best certified accuracy at each radius over ``summaries`` (all with the same radii).

    Ties (equal accuracy to the row count's precision) go to the model with the higher clean
    accuracy, then to the first given.
    """
    usable = [s for s in summaries if s.rows > 0]
    if not usable:
        raise UserError("no record file with rows to take an envelope of")
    cells = []
    for j, r in enumerate(usable[0].radii):
        best = max(usable, key=lambda s: (round(s.certified[j], 12), s.clean))
        cells.append(EnvelopeCell(r, best.certified[j], best.clean, best.label))
    return cells


@dataclass
class EmpiricalSummary:
    """Figures of a prediction record on attacked points (``smoothadv attack``) or on clean
    ones (``smoothadv predict``): PREDICT's accuracy, beside certified accuracy."""

    label: str
    path: str
    rows: int
    accuracy: float  # accuracy of g on the points PREDICT saw
    abstain: float
    clean: float | None  # accuracy of g on the clean inputs (attack records)
    mean_l2: float | None  # mean ‖x′ − x‖₂ (attack records)
    epsilon: float | None  # the attack's radius, from the record's configuration
