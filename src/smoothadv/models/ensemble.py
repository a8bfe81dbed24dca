"""Ensembles as base classifiers (Horváth, Müller, Fischer & Vechev, ICLR 2022: "Boosting
Randomized Smoothing with Variance Reduced Classifiers").

:class:`Ensemble` is a base classifier f(x) = argmax_c of the members' mean logits: the
authors' default aggregation ("soft voting without softmax": they sum the logits, whose argmax
is the mean's). Smoothing it certifies the ensemble as one classifier, with the usual
certificate: the members classify the same noisy sample (each batch of noise is drawn once and
passes through every member), and the radius comes from the ensemble's counts.

**K-consensus** (``consensus = K``, the authors' cheaper aggregation): the members are evaluated
in their fixed order; for a noisy sample on which the first K members agree, that class is the
answer and the other members are skipped; otherwise every member is evaluated and the mean
logits decide. The answer is still a fixed function of the noisy sample (it depends on no other
sample, on no count and on nothing random), so every certificate computed from it is valid — it
certifies the K-consensus classifier, which is a different classifier from the plain ensemble
(equal wherever the first K agree with the full ensemble). :attr:`Ensemble.evaluations` and
:attr:`Ensemble.possible` count member evaluations done and those a full ensemble would do, so a
run can say what the consensus saved. In training mode or with gradients (an attack), every
member is evaluated: the attack differentiates the plain ensemble.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from ..errors import UserError


def check_members(count: int, consensus: int) -> None:
    """Refuse, in one line, an ensemble of fewer than two members and a K-consensus whose K is
    not between 2 and the number of members."""
    if count < 2:
        raise UserError(f"an ensemble needs at least two members, got {count}")
    if consensus and not 2 <= consensus <= count:
        raise UserError(f"--consensus K must lie between 2 and the number of members ({count}), "
                        f"got {consensus}")


class Ensemble(nn.Module):
    """The members' mean logits [B, C] for inputs [B, ...] (pixel space, as each member takes
    them); with ``consensus`` K ≥ 2, K-consensus aggregation in inference (module docstring)."""

    def __init__(self, members: Sequence[nn.Module], consensus: int = 0) -> None:
        super().__init__()
        check_members(len(members), consensus)
        self.members = nn.ModuleList(members)
        self.consensus = int(consensus)
        self.evaluations = 0  # member evaluations of single samples done
        self.possible = 0  # those the full ensemble would have done

    def saved(self) -> float:
        """The fraction of member evaluations K-consensus skipped so far (0 without it)."""
        return 1.0 - self.evaluations / self.possible if self.possible else 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows, count = x.shape[0], len(self.members)
        self.possible += rows * count
        if not self.consensus or self.training or torch.is_grad_enabled():
            self.evaluations += rows * count
            return torch.stack([member(x) for member in self.members]).mean(0)
        k = self.consensus
        first = torch.stack([member(x) for member in self.members[:k]])  # [K, B, C]
        votes = first.argmax(2)
        agree = (votes == votes[:1]).all(0)  # [B]
        total = first.sum(0)  # agreeing rows: its argmax is the agreed class
        weight = torch.full((rows, 1), float(k), device=x.device, dtype=total.dtype)
        rest = (~agree).nonzero().squeeze(1)
        self.evaluations += rows * k + rest.numel() * (count - k)
        if rest.numel() and count > k:
            more = torch.stack([member(x[rest]) for member in self.members[k:]]).sum(0)
            total = total.index_add(0, rest, more.to(total.dtype))
            weight[rest] = float(count)
        return total / weight


__all__ = ["Ensemble", "check_members"]
