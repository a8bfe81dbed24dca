"""Certified accuracy against radius as a figure: exact step curves from the rows."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..noise import NORM_NAMES
from ..records.files import (
    INPUT_SETS,
    read_records,
)
from .metrics import EnvelopeCell, Summary, certified_accuracy, counted_radius


def plot_curves(
    summaries: Sequence[Summary],
    path: str | os.PathLike,
    envelope_cells: Sequence[EnvelopeCell] | None = None,
    title: str | None = None,
    max_radius: float | None = None,
    norm: str = "l2",
) -> Path:
    """Certified accuracy against radius, one curve per file (and the envelope, if given);
    the x axis names the radii's ``norm``.

    Curves are exact step functions computed from the records (not only at the table's
    radii). Writes PNG or PDF by the file's suffix, with the non-interactive Agg backend.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() not in (".png", ".pdf", ".svg"):
        raise UserError(f"plot file must end in .png, .pdf or .svg: {path}")
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=150)
    if len(summaries) > 10:  # the default cycle repeats its colours after ten curves
        ax.set_prop_cycle(color=plt.get_cmap("tab20").colors)
    rows = [s.records if s.records is not None else read_records(s.path) for s in summaries]
    top = max_radius
    if top is None:  # where the last curve reaches 0, not the table's largest radius
        ends = [float(counted_radius(rec)[rec["correct"] == 1].max(initial=0.0)) for rec in rows]
        top = max(max(ends) * 1.05, 1e-3)
    grid = np.linspace(0, top, 400)
    for s, rec in zip(summaries, rows):
        known = s.sigma is None or "sigma" in s.label or "σ=" in s.label
        label = s.label if known else f"{s.label} (σ={s.sigma:g})"
        ax.plot(grid, certified_accuracy(rec, grid), label=label, linewidth=1.6)
    if envelope_cells:
        ax.plot([c.radius for c in envelope_cells], [c.certified for c in envelope_cells],
                "k--o", markersize=3, label="envelope", linewidth=1.2)
    inputs = sorted({INPUT_SETS[rec.threat.inputs].removeprefix("the ") for rec in rows})
    ax.set_xlabel(f"{NORM_NAMES.get(norm, norm)} radius, closed ball (pixel space; inputs in "
                  f"{', '.join(inputs)})")
    ax.set_ylabel("certified accuracy")
    ax.set_ylim(0, 1)
    ax.set_xlim(0, top)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=7 if len(summaries) > 4 else 9, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
