"""Comparing certification record files: certified-accuracy differences with confidence
intervals, ACR, and a per-image comparison.

Each file's certified accuracy at radius r is a proportion over a finite test set, so two
files' accuracies differ by chance even for models that are equally good on the test
*distribution*. The interval reported for each difference is a 95% interval for the difference
of the population proportions (Newcombe 1998, method 10, built from Wilson score intervals; it
behaves well at 0 and 1, where the Wald interval collapses):

- *paired* when both files certified the same images (the same ``idx`` values with the same
  labels): the interval accounts for the correlation of the two outcomes on each image
  (Newcombe's φ correction), which makes it much narrower than treating the sets as independent;
- *independent* otherwise (different images or image orders): Newcombe's hybrid score interval.

Only the test set's sampling is accounted for; the Monte Carlo error of each certificate (at
most α per image) is not, and neither is the randomness of training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import norm

from ..records.files import Records, record_setting
from .metrics import average_certified_radius, certified_accuracy, counted_radius
from .settings import config_value

Z95 = float(norm.ppf(0.975))


def wilson(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for k successes out of n."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe_independent(k1: int, n1: int, k2: int, n2: int,
                         z: float = Z95) -> tuple[float, float]:
    """95% interval for p1 − p2 from independent samples (Newcombe's hybrid score method)."""
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = wilson(k1, n1, z)
    l2, u2 = wilson(k2, n2, z)
    d = p1 - p2
    return (d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2),
            d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2))


def newcombe_paired(both: int, first_only: int, second_only: int, neither: int,
                    z: float = Z95) -> tuple[float, float]:
    """95% interval for p1 − p2 from paired outcomes (Newcombe's method 10 with the φ
    correction); ``first_only`` counts images certified in the first file only."""
    n = both + first_only + second_only + neither
    p1, p2 = (both + first_only) / n, (both + second_only) / n
    l1, u1 = wilson(both + first_only, n, z)
    l2, u2 = wilson(both + second_only, n, z)
    denom = ((both + first_only) * (second_only + neither) * (both + second_only)
             * (first_only + neither))
    phi = (both * neither - first_only * second_only) / math.sqrt(denom) if denom > 0 else 0.0
    d = p1 - p2
    low = d - math.sqrt(max(0.0, (p1 - l1) ** 2 - 2 * phi * (p1 - l1) * (u2 - p2)
                            + (u2 - p2) ** 2))
    high = d + math.sqrt(max(0.0, (u1 - p1) ** 2 - 2 * phi * (u1 - p1) * (p2 - l2)
                             + (p2 - l2) ** 2))
    return low, high


@dataclass
class RadiusComparison:
    """One radius: both accuracies, their difference and its 95% interval, and (paired) how
    many images flip between certified and not."""

    radius: float
    ours: float
    reference: float
    difference: float
    low: float
    high: float
    ours_only: int | None = None
    reference_only: int | None = None


@dataclass
class Comparison:
    """A record file against a reference file."""

    ours: str
    reference: str
    paired: bool
    n_ours: int
    n_reference: int
    acr_ours: float
    acr_reference: float
    radii: list[RadiusComparison]
    radius_agreement: dict = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    acr_low: float | None = None  # paired only: 95% interval of ACR(ours) − ACR(reference)
    acr_high: float | None = None


def _certified_rows(rec: Records, r: float, as_written: bool) -> np.ndarray:
    """Rows counted as certified at r, by the same rule as certified accuracy."""
    return (rec["correct"] == 1) & (counted_radius(rec, as_written) >= r)


def compare(ours: Records, reference: Records, radii: list[float],
            as_written: bool = False) -> Comparison:
    """Compare two record files at ``radii`` (see the module docstring)."""
    notes = []
    shared, ia, ib = np.intersect1d(ours["idx"], reference["idx"], return_indices=True)
    same_images = (len(shared) == len(ours) == len(reference)
                   and np.array_equal(ours["label"][ia], reference["label"][ib]))
    if not same_images:
        notes.append("the two files were certified on different images (idx values or labels "
                     "differ): independent intervals, no per-image comparison")
    for key in ("n", "alpha", "n0"):
        a, b = config_value(ours.path, key), config_value(reference.path, key)
        if a is not None and b is not None and a != b:
            notes.append(f"the files were certified with different {key}: {a:g} vs {b:g}")
    theirs = record_setting(reference.path, "provenance") or {}
    mine = record_setting(ours.path, "provenance") or {}
    differ = [k for k in ("smoothadv", "git_commit", "torch")
              if k in mine and k in theirs and mine[k] != theirs[k]]
    if differ:
        notes.append("the files were written by different programs (" + ", ".join(
            f"{k} {mine[k]} vs {theirs[k]}" for k in differ) + "): the same configuration "
            "may not give the same bits")
    acc_a = certified_accuracy(ours, radii, as_written)
    acc_b = certified_accuracy(reference, radii, as_written)
    rows = []
    for j, r in enumerate(radii):
        if same_images:
            ca = _certified_rows(ours, r, as_written)[ia]
            cb = _certified_rows(reference, r, as_written)[ib]
            both, only_a = int((ca & cb).sum()), int((ca & ~cb).sum())
            only_b, neither = int((~ca & cb).sum()), int((~ca & ~cb).sum())
            low, high = newcombe_paired(both, only_a, only_b, neither)
            rows.append(RadiusComparison(r, float(acc_a[j]), float(acc_b[j]),
                                         float(acc_a[j] - acc_b[j]), low, high, only_a, only_b))
        else:
            ka, kb = round(acc_a[j] * len(ours)), round(acc_b[j] * len(reference))
            low, high = newcombe_independent(ka, len(ours), kb, len(reference))
            rows.append(RadiusComparison(r, float(acc_a[j]), float(acc_b[j]),
                                         float(acc_a[j] - acc_b[j]), low, high))
    agreement = {}
    acr_interval: tuple[float | None, float | None] = (None, None)
    if same_images:
        _, acr_interval = paired_acr_difference([(ours, reference)])
        ra, rb = ours.counted_radius[ia], reference.counted_radius[ib]
        both = (ours["correct"][ia] == 1) & (reference["correct"][ib] == 1)
        agreement = {"images": int(len(shared)), "both_correct": int(both.sum()),
                     "mean_abs_radius_difference": float(np.abs(ra - rb)[both].mean())
                     if both.any() else float("nan"),
                     "radius_correlation": float(np.corrcoef(ra[both], rb[both])[0, 1])
                     if both.sum() > 2 and ra[both].std() > 0 and rb[both].std() > 0
                     else float("nan"),
                     "same_prediction": float(np.mean(ours["predict"][ia]
                                                      == reference["predict"][ib]))}
    return Comparison(str(ours.path), str(reference.path), same_images, len(ours),
                      len(reference), average_certified_radius(ours, as_written),
                      average_certified_radius(reference, as_written), rows, agreement, notes,
                      *acr_interval)


def paired_acr_difference(pairs: list[tuple[Records, Records]],
                          z: float = Z95) -> tuple[float, tuple[float, float]]:
    """ACR(ours) − ACR(reference), averaged over ``pairs`` (e.g. one per training seed, each
    pair certified on the same images), and its 95% interval over the test images.

    Each image i contributes d_i, the mean over pairs of its radius × correct in ours minus
    the same in the reference (the terms of the ACR); the ACR difference is the mean of the
    d_i and the interval mean ± z·s/√N (s: the d_i's standard deviation, N images; the normal
    approximation of a mean of N bounded, independently drawn test images). Like
    ``compare``'s other intervals it accounts for the test set's sampling, not for the Monte
    Carlo error of each certificate; averaging over seeds puts the training randomness of
    those seeds into the d_i.
    """
    if not pairs:
        raise ValueError("need at least one pair of record files")
    idx = np.sort(pairs[0][0]["idx"])
    diffs = np.zeros(len(idx))
    for ours, ref in pairs:
        for rec in (ours, ref):
            if not np.array_equal(np.sort(rec["idx"]), idx):
                raise ValueError(f"{rec.path}: not the same images as {pairs[0][0].path}; a "
                                 "paired ACR difference needs one image set")
        diffs += _scored_radius(ours, idx) - _scored_radius(ref, idx)
    diffs /= len(pairs)
    mean = float(diffs.mean())
    half = z * float(diffs.std(ddof=1)) / math.sqrt(len(diffs)) if len(diffs) > 1 else math.inf
    return mean, (mean - half, mean + half)


@dataclass
class OverSeeds:
    """One setting's records over its training seeds: certified accuracy [seeds, radii] and
    ACR [seeds], and, with a reference (the same seeds of another setting, same images), the
    ACR difference averaged over the seeds with its paired 95% interval."""

    certified: np.ndarray
    acr: np.ndarray
    difference: float | None = None
    interval: tuple[float, float] | None = None

    @staticmethod
    def spread(values: np.ndarray) -> str:
        """``mean ± sd`` (sample standard deviation over the seeds; 0 with one seed)."""
        sd = float(values.std(ddof=1)) if len(values) > 1 else 0.0
        return f"{values.mean():.3f} ± {sd:.3f}"

    def cells(self) -> list[str]:
        """A table row's cells: mean ± sd at each radius, of the ACR, and the ACR difference
        with its interval (empty without a reference)."""
        diff = ("" if self.difference is None or self.interval is None else
                f"{self.difference:+.3f} [{self.interval[0]:+.3f}, {self.interval[1]:+.3f}]")
        return [*(self.spread(self.certified[:, j]) for j in range(self.certified.shape[1])),
                self.spread(self.acr), diff]


def over_seeds(records: list[Records], radii: list[float],
               reference: list[Records] | None = None) -> OverSeeds:
    """The figures of ``records`` (one per seed) at ``radii``; with ``reference`` (one per seed,
    in the same order) the paired ACR difference against it (:func:`paired_acr_difference`).
    What both the sweep report and the seven-method demo tabulate."""
    result = OverSeeds(np.array([certified_accuracy(r, radii) for r in records]),
                       np.array([average_certified_radius(r) for r in records]))
    if reference is not None:
        result.difference, result.interval = paired_acr_difference(list(zip(records,
                                                                             reference)))
    return result


def _scored_radius(rec: Records, idx: np.ndarray) -> np.ndarray:
    """Radius × correct of each image in ``idx`` order (the terms of the ACR)."""
    order = np.argsort(rec["idx"])
    scored = rec.counted_radius * (rec["correct"] == 1)
    return scored[order][np.searchsorted(rec["idx"][order], idx)]
