"""Tables of summaries and their five formats (text, markdown, LaTeX, CSV, JSON), a registry."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Sequence

from ..registry import Registry
from .metrics import EmpiricalSummary, EnvelopeCell, Summary


def empirical_table(summaries: Sequence[EmpiricalSummary]) -> Table:
    """Rows: one per prediction/attack file: ε, clean and empirical robust accuracy of g."""
    head = ["model", "inputs", "eps", "clean acc", "robust acc", "mean l2", "abstain"]

    def fmt(v: float | None, spec: str) -> str:
        return "" if v is None else format(v, spec)

    rows = [[s.label, str(s.rows), fmt(s.epsilon, "g"), fmt(s.clean, ".3f"),
             f"{s.accuracy:.3f}", fmt(s.mean_l2, ".4f"), f"{s.abstain:.3f}"]
            for s in summaries]
    return head, rows


Table = tuple[list[str], list[list[str]]]


FORMATS: Registry[Callable[[Table], str]] = Registry("format")


def list_formats() -> list[str]:
    return FORMATS.names()


def _radius_head(r: float) -> str:
    return f"{r:g}"


def summary_table(summaries: Sequence[Summary]) -> Table:
    """Rows: one per file; columns: label, σ, rows, certified accuracy per radius, ACR,
    abstention rate (and lower bounds, in brackets, where computed)."""
    radii = summaries[0].radii
    head = (["model", "sigma", "inputs"] + [f"r={_radius_head(r)}" for r in radii]
            + ["ACR", "abstain"])
    sequential = any(s.samples is not None for s in summaries)
    if sequential:
        head += ["samples mean", "median", "p90"]
    rows = []
    for s in summaries:
        cells = []
        for j, a in enumerate(s.certified):
            cell = f"{a:.3f}"
            if s.lower is not None:
                cell += f" (≥{s.lower[j]:.3f})"
            cells.append(cell)
        sigma = "" if s.sigma is None else f"{s.sigma:g}"
        row = [s.label, sigma, str(s.rows), *cells, f"{s.acr:.3f}", f"{s.abstain:.3f}"]
        if sequential:
            row += ([f"{v:,.0f}" for v in s.samples] if s.samples is not None
                    else ["", "", ""])
        rows.append(row)
    return head, rows


def envelope_table(cells: Sequence[EnvelopeCell], name: str = "envelope") -> Table:
    """One row: ``(clean) certified`` per radius, as the paper prints it, two decimals."""
    head = ["group"] + [_radius_head(c.radius) for c in cells]
    row = [name] + [f"({c.clean:.2f}) {c.certified:.2f}" for c in cells]
    return head, [row]


def envelope_sources(cells: Sequence[EnvelopeCell]) -> Table:
    head = ["radius", "certified", "clean", "model"]
    return head, [[_radius_head(c.radius), f"{c.certified:.4f}", f"{c.clean:.4f}", c.label]
                  for c in cells]


@FORMATS.register("text")
def format_text(table: Table) -> str:
    head, rows = table
    widths = [max(len(str(x)) for x in col) for col in zip(head, *rows)]
    line = "  ".join(h.ljust(w) for h, w in zip(head, widths)).rstrip()
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    return "\n".join([line, sep, *body])


@FORMATS.register("markdown")
def format_markdown(table: Table) -> str:
    head, rows = table
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _latex_escape(text: str) -> str:
    return re.sub(r"([_%&#$])", r"\\\1", text).replace("≥", r"$\geq$")


@FORMATS.register("latex")
def format_latex(table: Table) -> str:
    head, rows = table
    lines = [r"\begin{tabular}{l" + "c" * (len(head) - 1) + "}", r"\toprule",
             " & ".join(_latex_escape(h) for h in head) + r" \\", r"\midrule"]
    lines += [" & ".join(_latex_escape(c) for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


@FORMATS.register("csv")
def format_csv(table: Table) -> str:
    head, rows = table
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(head)
    writer.writerows(rows)
    return buf.getvalue().rstrip("\n")


@FORMATS.register("json")
def format_json(table: Table) -> str:
    head, rows = table
    return json.dumps([dict(zip(head, r)) for r in rows], indent=2)


def render(table: Table, fmt: str) -> str:
    """The table in format ``fmt`` (one of :func:`list_formats`)."""
    return FORMATS.get(fmt)(table)
