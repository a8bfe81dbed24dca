"""Analysis of certification records: certified accuracy, envelopes, ACR, tables and plots.

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

import csv
import io
import json
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.stats import binom

from ..errors import UserError, check_alpha
from ..noise import NORM_NAMES
from ..records.files import (
    CERTIFY_COLUMNS,
    INPUT_SETS,
    PREDICT_COLUMNS,
    Records,
    read_records,
    record_setting,
    threat_model,
)
from ..registry import Registry
from ..smoothing.stats import lower_confidence_bound


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


_SIGMA_PATTERNS = (r"sigma[_=]?([0-9.]+)", r"noise[_=]?([0-9.]+)")


def config_value(path: str | os.PathLike, key: str) -> float | None:
    """``key`` of a record file's configuration as a number (:func:`~smoothadv.records.
    record_setting`: the stage config's field, else the document's), or None."""
    value = record_setting(path, key)
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None


def record_precision(path: str | os.PathLike) -> str:
    """The precision a record file was computed at (fp32 where it names none)."""
    return str(record_setting(path, "precision", "fp32"))


def record_norm(path: str | os.PathLike) -> str:
    """The norm of a record file's radii (l2 where it names none: records from before ℓ1
    certificates)."""
    return str(record_setting(path, "norm", "l2"))


def common_norm(paths, mix_threats: bool = False) -> str:
    """The one norm of ``paths``' radii; refuses, in one line, records of different norms in
    one table or curve (their radii measure different balls), and records of different input
    sets (ℝ^d, the box, the 8-bit grid: :func:`~smoothadv.records.threat_model`) unless
    ``mix_threats``."""
    threats = {str(p): threat_model(p) for p in paths}
    norms = {p: t.norm for p, t in threats.items()}
    if len(set(norms.values())) > 1:
        shown = ", ".join(f"{p} {NORM_NAMES.get(n, n)}" for p, n in norms.items())
        raise UserError(f"these records certify radii of different norms ({shown}): put each "
                        "norm in its own table")
    if len({t.inputs for t in threats.values()}) > 1 and not mix_threats:
        shown = ", ".join(f"{p}: {t}" for p, t in threats.items())
        raise UserError(f"these records certify different threat models ({shown}); pass "
                        "--mix-threats to put them in one table")
    return next(iter(norms.values()), "l2")


def sampling_note(paths) -> str | None:
    """A line naming the sampling settings (n, n0, α) when ``paths``' records differ in them
    (their certified accuracies are then not comparable as they stand), else None."""
    settings = {}
    for p in paths:
        if record_setting(p, "derandomized", False):
            continue  # exact counts: no n, n0 or α
        values = tuple(record_setting(p, key) for key in ("n", "n0", "alpha"))
        if values != (None, None, None):
            settings[str(p)] = values
    if len(set(settings.values())) <= 1:
        return None
    shown = "; ".join(f"{p}: n={v[0]}, n0={v[1]}, α={v[2]}" for p, v in settings.items())
    return (f"note: these records were certified with different sampling ({shown}); larger n "
            "certifies larger radii, so compare like with like")


def threat_label(paths) -> str:
    """One line naming the threat model(s) of ``paths``' radii, for a table's heading."""
    found = sorted({str(threat_model(p)) for p in paths})
    return "radii certify the " + " / ".join(found)


def sigma_from_path(path: str | os.PathLike) -> float | None:
    """σ of a record file: from its ``.config.json`` beside it, else from ``sigma_0.25`` or
    ``noise_0.25`` in its path (the paper's layout)."""
    value = config_value(path, "sigma")
    if value is not None:
        return value
    for pattern in _SIGMA_PATTERNS:
        found = re.findall(pattern, str(path))
        if found:
            try:
                return float(found[-1].rstrip("."))
            except ValueError:
                continue
    return None


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


# ------------------------------------------------------------------------------ input


def record_kind(path: Path) -> str | None:
    """'certify' or 'predict' (prediction and attack records) from a file's header, else None."""
    try:
        with open(path, encoding="utf-8") as f:
            first = tuple(f.readline().rstrip("\n").split("\t"))
    except (OSError, UnicodeDecodeError):
        return None
    if first[:5] == CERTIFY_COLUMNS[:5]:
        return "certify"
    if first[:5] == PREDICT_COLUMNS[:5]:
        return "predict"
    return None


def expand_paths(paths: Iterable[str | os.PathLike],
                 kinds: Sequence[str] = ("certify",)) -> list[Path]:
    """Files as given; a directory means every record file of ``kinds`` below it (sorted)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.is_file() and record_kind(f) in kinds)
            if not found:
                names = {"certify": "certification", "predict": "prediction"}
                raise UserError(f"no {' or '.join(names[k] for k in kinds)} record files "
                                f"below {p}")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise UserError(f"record file not found: {p}")
    return out


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


def _read_nonempty(
    files: Sequence[Path], required: Sequence[str], labels: Sequence[str] | None,
    warn: Callable[[str], None],
) -> Iterator[tuple[Records, str]]:
    """(records, label) of each file with rows; header-only files are reported and skipped."""
    if labels is not None and len(labels) != len(files):
        raise UserError(f"{len(labels)} labels for {len(files)} record files")
    for i, f in enumerate(files):
        rec = read_records(f, required=required)
        if rec.is_empty:
            warn(f"skipping {f}: header only, no rows")
            continue
        yield rec, labels[i] if labels else _short_label(f, files)


def load_empirical(files: Sequence[Path], labels: Sequence[str] | None = None,
                   warn: Callable[[str], None] = print) -> list[EmpiricalSummary]:
    """Summaries of prediction/attack record files; header-only files are reported, skipped."""
    out = []
    for rec, label in _read_nonempty(list(files), PREDICT_COLUMNS[:5], labels, warn):
        cols = rec.columns
        out.append(EmpiricalSummary(
            label=label,
            path=str(rec.path),
            rows=len(rec),
            accuracy=float(np.mean(cols["correct"] == 1)),
            abstain=float(np.mean(cols["predict"] == -1)),
            clean=float(np.mean(cols["cleanPredict"] == cols["label"]))
            if "cleanPredict" in cols else None,
            mean_l2=float(np.mean(cols["l2"])) if "l2" in cols else None,
            epsilon=config_value(rec.path, "epsilon"),
        ))
    return out


def empirical_table(summaries: Sequence[EmpiricalSummary]) -> Table:
    """Rows: one per prediction/attack file: ε, clean and empirical robust accuracy of g."""
    head = ["model", "inputs", "eps", "clean acc", "robust acc", "mean l2", "abstain"]

    def fmt(v: float | None, spec: str) -> str:
        return "" if v is None else format(v, spec)

    rows = [[s.label, str(s.rows), fmt(s.epsilon, "g"), fmt(s.clean, ".3f"),
             f"{s.accuracy:.3f}", fmt(s.mean_l2, ".4f"), f"{s.abstain:.3f}"]
            for s in summaries]
    return head, rows


def load_summaries(
    paths: Sequence[str | os.PathLike],
    radii: Sequence[float],
    labels: Sequence[str] | None = None,
    alpha: float | None = None,
    confidence: float = 0.001,
    warn: Callable[[str], None] = print,
    as_written: bool = False,
) -> list[Summary]:
    """Summaries of every file under ``paths``; header-only files are reported and skipped."""
    out = [summarize(rec, radii, label, alpha, confidence, as_written)
           for rec, label in _read_nonempty(expand_paths(paths), CERTIFY_COLUMNS[:5], labels,
                                            warn)]
    if not out:
        raise UserError("every record file given is empty")
    return out


def _short_label(path: Path, all_paths: Sequence[Path]) -> str:
    """The path relative to the files' common folder (readable legends and tables)."""
    try:
        common = Path(os.path.commonpath([str(p.parent) for p in all_paths]))
        rel = path.relative_to(common)
        return str(rel) if len(all_paths) > 1 else str(path)
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------- formats

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


# ------------------------------------------------------------------------------- plot


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
