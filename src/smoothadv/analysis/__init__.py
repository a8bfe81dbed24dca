"""Analysis of record files: what their rows say, as figures, tables and plots.

- :mod:`.metrics`: certified accuracy, ACR, lower bounds, envelopes (from the rows);
- :mod:`.settings`: what a record's configuration says (σ, norm, threat model, sampling) and
  the refusals and notes when records of different settings meet;
- :mod:`.reading`: folders expanded to record files, empty files reported and skipped;
- :mod:`.tables`: tables and their five formats; :mod:`.plots`: certified-accuracy curves;
- :mod:`.compare`: differences against a reference with paired intervals.

May import: errors, registry, noise, records, smoothing (its statistics). Every public name of
the former module ``smoothadv.analysis`` is read from here, as before this became a package.
"""

from __future__ import annotations

from .compare import (
    Z95,
    Comparison,
    RadiusComparison,
    compare,
    newcombe_independent,
    newcombe_paired,
    paired_acr_difference,
    wilson,
)
from .metrics import (
    EmpiricalSummary,
    EnvelopeCell,
    Summary,
    average_certified_radius,
    certified_accuracy,
    certified_accuracy_lower_bound,
    counted_radius,
    envelope,
    samples_per_input,
    summarize,
)
from .plots import (
    plot_curves,
)
from .reading import (
    expand_paths,
    load_empirical,
    load_summaries,
    record_kind,
    short_labels,
)
from .settings import (
    common_norm,
    config_value,
    record_norm,
    record_precision,
    sampling_note,
    sigma_from_path,
    threat_label,
)
from .tables import (
    FORMATS,
    Table,
    empirical_table,
    envelope_sources,
    envelope_table,
    format_csv,
    format_json,
    format_latex,
    format_markdown,
    format_text,
    list_formats,
    render,
    summary_table,
)

__all__ = [
    "short_labels",
    "Comparison",
    "EmpiricalSummary",
    "EnvelopeCell",
    "FORMATS",
    "RadiusComparison",
    "Summary",
    "Table",
    "Z95",
    "average_certified_radius",
    "certified_accuracy",
    "certified_accuracy_lower_bound",
    "common_norm",
    "compare",
    "config_value",
    "counted_radius",
    "empirical_table",
    "envelope",
    "envelope_sources",
    "envelope_table",
    "expand_paths",
    "format_csv",
    "format_json",
    "format_latex",
    "format_markdown",
    "format_text",
    "list_formats",
    "load_empirical",
    "load_summaries",
    "newcombe_independent",
    "newcombe_paired",
    "paired_acr_difference",
    "plot_curves",
    "record_kind",
    "record_norm",
    "record_precision",
    "render",
    "samples_per_input",
    "sampling_note",
    "sigma_from_path",
    "summarize",
    "summary_table",
    "threat_label",
    "wilson",
]
