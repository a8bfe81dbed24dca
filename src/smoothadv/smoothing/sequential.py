"""Sequential certification: decide "is g robust at radius r?" for a few radii with as few
noise samples as the input needs, at the same ≤ α error guarantee as CERTIFY.

For an input x, a class c and radii r_1 < … < r_k, g is robust at r_j with class c if
p_c = P(f(x + δ) = c) > Φ(r_j/σ) (Cohen et al., Theorem 1). One stream of noisy samples feeds
one confidence sequence for p_c (:mod:`.sequences`); after each piece of samples the
running interval [L, U] is compared with every threshold Φ(r_j/σ): the radius is *certified*
when L > Φ(r_j/σ), *not certified* when U < Φ(r_j/σ), else undecided. The input stops when
every radius is decided (and, with ``anytime_tol``, when the radius σΦ⁻¹(L) cannot grow by
more than the tolerance within the budget), or when its budget is spent; an undecided radius
counts as not certified.

The end test at the budget. The error budget is split, α = α_seq + α_end (``alpha_split`` =
α_seq/α). The sequence runs at α_seq and decides early as described; an input still undecided
when its budget B is spent gets **one fixed-n test on all its B samples**: the one-sided
Clopper–Pearson lower bound L_end at level α_end, which certifies every undecided radius whose
threshold it exceeds and gives the radius σΦ⁻¹(L_end) when that is larger. Without it, an input
whose p_c lies just above a threshold is certified by fixed-n CERTIFY at n = B but not by the
wider anytime-valid interval, and runs to the budget for nothing.

Guarantee: with probability ≥ 1 − α (over the noise of this input) every decision is right and
the reported ``radius`` (when the lower end L > ½) is a valid certified radius. Why: let E_seq
be the event that the sequence's interval misses p_c at some sample size (P ≤ α_seq: it is
valid at every size simultaneously, so stopping when the decisions are reached spends nothing
extra, and one sequence covers every threshold) and E_end the event that the Clopper–Pearson
bound computed from the *first B samples of this input's own stream* exceeds p_c (P ≤ α_end:
a fixed-n test at the fixed size n = B). E_end is defined for every input, whether or not it
reaches the budget (the stream exists beyond the stopping time; it is simply not drawn), so by
the union bound P(E_seq ∪ E_end) ≤ α_seq + α_end = α; outside that event every statement made,
by the sequence or by the end test, is right. The selection draws of unlabelled mode are
separate from the testing stream, as before. ``alpha_split = 1`` turns the end test off.

Modes:

- *labelled* (certified accuracy, what papers report): c is the true label y. The row's
  ``predict`` is y when L > ½ (g provably predicts y), else −1.
- *unlabelled* (deployment): n0 draws select ĉ (the most frequent class, as in CERTIFY), then
  the sequence tests p_ĉ on fresh draws; ``predict`` is ĉ when L > ½, else −1 (abstain). The
  selection draws are independent of the testing draws, so the guarantee stays ≤ α.

Throughput: up to ``batch_size`` noisy samples of several inputs share each forward pass; an
input that finishes frees its share for the next input at once. Each input draws its noise
from its own generator in pieces whose sizes depend only on its own sample count
(:func:`piece_size`), so the results do not depend on batch size, packing, resuming or torchrun
sharding.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..data.datasets import check_image_range
from ..errors import UserError, check_alpha, check_positive_int
from .sequences import (
    CERTIFIED,
    DECISION_CODES,
    KT_PRIOR,
    UNDECIDED,
    ConfidenceSequence,
    create_sequence,
    threshold_prior,
)
from .smooth import ABSTAIN, Smooth, eval_mode, make_generator
from .stats import lower_confidence_bound

PRIORS = ("radii", "kt")
DEFAULT_ALPHA_SPLIT = 0.2  # α_seq / α, chosen by measurement (docs/certification.md, bench 6)
MIN_PIECE = 128  # the first pieces; later ones grow with the sample count (≈ 1/8 of it)


def piece_size(drawn: int, budget: int, min_piece: int = MIN_PIECE) -> int:
    """Samples in the next piece of an input that has drawn ``drawn`` of ``budget``: at least
    ``min_piece``, about an eighth of what was drawn (so stopping overshoots by ≤ 12.5%),
    a multiple of 32, never past the budget."""
    size = max(min_piece, (drawn // 8 + 31) // 32 * 32)
    return max(0, min(size, budget - drawn))


@dataclass(frozen=True)
class SequentialResult:
    """One input's outcome (see the module docstring for the guarantee).

    ``prediction``: the class g is shown to predict (label or ĉ), or ABSTAIN (−1).
    ``radius``: σΦ⁻¹(p_lower) when p_lower > ½, else 0. ``decisions``: one of CERTIFIED (1),
    UNDECIDED (0), NOT_CERTIFIED (−1) per radius. ``samples``: noisy samples drawn, the
    selection draws included.
    """

    prediction: int
    radius: float
    p_lower: float
    p_upper: float
    samples: int
    decisions: tuple[int, ...]
    tested_class: int

    @property
    def decision_text(self) -> str:
        return ",".join(DECISION_CODES[d] for d in self.decisions) or "-"


class _Stream:
    """The state of one input in flight."""

    def __init__(self, key, x, label, seed, device, num_radii):
        self.key = key
        self.x = x
        self.label = int(label)
        self.gen = make_generator(seed, device)
        self.target: int | None = None  # the class tested (None: selection not done yet)
        self.drawn = 0  # samples drawn for the test (selection draws excluded)
        self.selection = 0  # selection draws
        self.successes = 0
        self.lower, self.upper = 0.0, 1.0  # the running confidence interval for p_target
        self.checked = False  # whether lower/upper hold the running interval
        self.decisions = np.full(num_radii, UNDECIDED, dtype=np.int8)


class SequentialCertifier:
    """Sequential certification of many inputs with shared forward batches.

    Args:
        smooth: the smoothed classifier (its base classifier, σ and noise).
        radii: radii to decide (≥ 0, any order; reported in the order given).
        alpha: the error probability per input, in (0, 1).
        budget: the most test samples per input (default 100,000).
        sequence: ``betting`` (default) or ``union`` (:mod:`smoothadv.smoothing.sequences`).
        labelled: test the true label (certified accuracy) rather than a selected class.
        n0: selection draws in unlabelled mode.
        batch_size: noisy samples per forward pass.
        anytime_tol: also stop only once the radius σΦ⁻¹(L) is within this tolerance of the
            largest it could still reach (min of σΦ⁻¹(U) and the budget's cap); with no radii,
            this alone is the stopping rule.
        alpha_split: the share α_seq/α of the error budget the sequence gets, in (0, 1]; the
            rest, α_end, is the end test's at the budget (1: no end test).
    """

    def __init__(self, smooth: Smooth, radii: Sequence[float], alpha: float,
                 budget: int = 100_000, sequence: str | ConfidenceSequence = "betting",
                 labelled: bool = True, n0: int = 100, batch_size: int = 1000,
                 anytime_tol: float | None = None, min_piece: int = MIN_PIECE,
                 prior: str = "radii", alpha_split: float = DEFAULT_ALPHA_SPLIT,
                 dims: int | None = None) -> None:
        self.smooth = smooth
        self.dims = dims  # coordinates of an input: needed for ℓ∞ radii
        self.radii = np.array([float(r) for r in radii], dtype=np.float64)
        if np.any(self.radii < 0) or not np.all(np.isfinite(self.radii)):
            raise UserError("radii must be finite and non-negative")
        if anytime_tol is not None and not anytime_tol > 0:
            raise UserError(f"the anytime tolerance must be positive, got {anytime_tol}")
        if len(self.radii) == 0 and anytime_tol is None:
            raise UserError("sequential certification needs radii or an anytime tolerance")
        self.alpha = check_alpha(alpha)
        if not 0 < alpha_split <= 1:
            raise UserError(f"the alpha split must lie in (0, 1], got {alpha_split}")
        self.alpha_split = float(alpha_split)
        self.alpha_seq, self.alpha_end = self._split(self.alpha)
        self.budget = check_positive_int(budget, "budget")
        # the p_A each radius needs, in the smoother's noise and norm (above 1: unreachable)
        self.thresholds = np.minimum(smooth.p_needed(self.radii, dims), 1.0)
        if prior not in PRIORS:
            raise UserError(f"unknown prior {prior!r}; choose {' or '.join(PRIORS)}")
        self.prior = prior
        self._sequence_spec = sequence
        self.sequence = self._make_sequence(self.alpha_seq)
        self._sampler_dims: int | None = None  # inputs' size the sequence's level is set for
        self.labelled = bool(labelled)
        self.n0 = check_positive_int(n0, "n0")
        self.batch_size = check_positive_int(batch_size, "batch_size")
        self.anytime_tol = anytime_tol
        self.min_piece = check_positive_int(min_piece, "min_piece")
        # the largest lower bound the budget allows (all draws successes): the radius cap,
        # from the sequence or from the end test at the budget, whichever reaches further
        cap, _ = self.sequence.interval(np.array([self.budget]), np.array([self.budget]))
        if self.alpha_end > 0:
            cap = np.maximum(cap, lower_confidence_bound(self.budget, self.budget,
                                                         self.alpha_end))
        self.radius_cap = float(self._radius(cap)[0])

    def _split(self, alpha: float) -> tuple[float, float]:
        """(α_seq, α_end) of an error budget α."""
        alpha_seq = alpha * self.alpha_split
        return alpha_seq, alpha - alpha_seq

    def _make_sequence(self, alpha: float) -> ConfidenceSequence:
        spec = self._sequence_spec
        if not isinstance(spec, str):
            return spec
        kwargs = {}
        if spec == "betting":
            kwargs["prior"] = (threshold_prior(self.thresholds) if self.prior == "radii"
                               else KT_PRIOR)
        return create_sequence(spec, alpha, **kwargs)

    def check_sampler(self, dims: int) -> None:
        """With the sound sampler, set its error bound over an input's samples aside from α
        (see :mod:`smoothadv.noise.rounded`): the sequence is rebuilt once, at the
        remaining level, for inputs of ``dims`` coordinates."""
        if dims == self._sampler_dims:
            return
        self._sampler_dims = dims
        if self.smooth.noise.alpha_spent(self.budget + self.n0, dims) > 0:
            left = self.smooth.effective_alpha(self.alpha, self.budget + self.n0, dims)
            self.alpha_seq, self.alpha_end = self._split(left)
            self.sequence = self._make_sequence(self.alpha_seq)

    def _radius(self, p: np.ndarray) -> np.ndarray:
        return np.asarray(self.smooth.radius_of(np.asarray(p, dtype=np.float64), self.dims))

    # ----------------------------------------------------------------------- running

    def run(self, items: Iterable[tuple[object, torch.Tensor, int, int]],
            ) -> Iterator[tuple[object, SequentialResult]]:
        """Certify every (key, x [C,H,W] in [0,1], label, seed) of ``items``; yields
        (key, result) as inputs finish (not necessarily in the order given)."""
        queue = iter(items)
        active: deque[_Stream] = deque()
        device = self.smooth.device
        num_radii = len(self.radii)
        exhausted = False
        with eval_mode(self.smooth.base_classifier), torch.inference_mode():
            while True:
                # admit inputs until the next pieces fill a batch
                while (not exhausted
                       and sum(self._next_piece(s) for s in active) < self.batch_size):
                    item = next(queue, None)
                    if item is None:
                        exhausted = True
                        break
                    key, x, label, seed = item
                    check_image_range(x)
                    self.check_sampler(x.numel())
                    x = self.smooth.noise.prepare(x.to(device))
                    active.append(_Stream(key, x, label, seed, device, num_radii))
                if not active:
                    return
                self._round(list(active))
                for stream in list(active):
                    if self._finished(stream):
                        active.remove(stream)
                        yield stream.key, self._result(stream)

    def _next_piece(self, s: _Stream) -> int:
        if s.target is None and not self.labelled:
            return self.n0
        return piece_size(s.drawn, self.budget, self.min_piece)

    def _round(self, streams: list[_Stream]) -> None:
        """One piece for every stream: draw, classify in batches of ≤ batch_size, update."""
        pieces = []
        for s in streams:
            size = self._next_piece(s)
            pieces.append((s, self.smooth.noisy_samples(s.x, size, s.gen)))
        preds = self._classify(torch.cat([p for _, p in pieces]))
        start = 0
        for s, noisy in pieces:
            part = preds[start : start + noisy.shape[0]]
            start += noisy.shape[0]
            if s.target is None and not self.labelled:  # the selection draws
                counts = np.bincount(part, minlength=self.smooth.num_classes)
                s.target = int(counts.argmax())
                s.selection = len(part)
                continue
            if s.target is None:
                s.target = s.label
            self._update(s, part == s.target)

    def _classify(self, batch: torch.Tensor) -> np.ndarray:
        out = [self.smooth.base_classifier(chunk).argmax(1)
               for chunk in batch.split(self.batch_size)]
        return torch.cat(out).cpu().numpy()

    def _update(self, s: _Stream, success: np.ndarray) -> None:
        before = s.drawn
        cumulative = s.successes + np.cumsum(success)
        s.drawn += len(success)
        s.successes = int(cumulative[-1])
        times = self.sequence.check_times(before, s.drawn)
        if len(times) == 0:
            return
        h = cumulative[times - before - 1]
        if len(self.radii):
            # a decision reached at any check time stands (the sequence holds at all times)
            for row in self.sequence.decisions(h, times, self.thresholds):
                s.decisions = np.where(s.decisions == UNDECIDED, row, s.decisions)
        if self.anytime_tol is not None:
            lower, upper = self.sequence.interval(h, times)
            s.lower = max(s.lower, float(lower.max()))
            s.upper = min(s.upper, float(upper.min()))
            s.checked = True

    def _finished(self, s: _Stream) -> bool:
        if s.target is None:
            return False
        if s.drawn >= self.budget:
            return True
        if len(self.radii) and np.any(s.decisions == UNDECIDED):
            return False
        if self.anytime_tol is not None:
            if s.upper < 0.5:
                return True
            reach = min(float(self._radius(np.array(s.upper))), self.radius_cap)
            return reach - float(self._radius(np.array(s.lower))) <= self.anytime_tol
        return True

    def _end_test(self, s: _Stream) -> float | None:
        """L_end, the Clopper–Pearson lower bound at level α_end on all B samples of an input
        that spent its budget (None for inputs that stopped early, or with no end test)."""
        if self.alpha_end <= 0 or s.drawn < self.budget:
            return None
        return float(lower_confidence_bound(s.successes, s.drawn, self.alpha_end))

    def _result(self, s: _Stream) -> SequentialResult:
        if not s.checked:  # the interval at the stopping time (the sequence holds there too)
            lower, upper = self.sequence.interval(np.array([s.successes]), np.array([s.drawn]))
            s.lower, s.upper = float(lower[0]), float(upper[0])
        end = self._end_test(s)
        if end is not None:
            # the end test certifies the undecided radii its bound clears (see the docstring)
            cleared = (s.decisions == UNDECIDED) & (self.thresholds < end)
            s.decisions = np.where(cleared, CERTIFIED, s.decisions)
            s.lower = max(s.lower, end)
        # a radius certified at an earlier check is strictly below the certified radius
        # there, as its threshold is strictly below the running lower end
        certified = s.decisions == CERTIFIED
        lower = max([s.lower, *self.thresholds[certified].tolist()])
        radius = max([float(self._radius(np.array(s.lower))), *self.radii[certified].tolist()])
        shown = lower > 0.5
        return SequentialResult(
            prediction=int(s.target) if shown else ABSTAIN,
            radius=radius if shown else 0.0,
            p_lower=float(lower), p_upper=float(s.upper),
            samples=s.drawn + s.selection,
            decisions=tuple(int(d) for d in s.decisions),
            tested_class=int(s.target),
        )
