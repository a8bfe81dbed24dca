"""The reporting stages: ``analyze`` (certified-accuracy tables, envelopes, ACR and plots
from record files; empirical robust accuracy from attack records) and ``compare`` (record
files against a reference, with 95% intervals). Both return the text the command prints."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from .. import analysis as A
from ..analysis.compare import compare, over_seeds
from ..analysis.index import read_document
from ..analysis.reading import short_labels
from ..configs import StageConfig, setting, stage_config
from ..errors import UserError
from ..records.files import read_records
from .registry import StageResult, register_stage, result_setting


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


@stage_config
class AnalyzeConfig(StageConfig):
    """Tables (and curves) of record files; a folder means every record file below it."""

    stage = "analyze"

    paths: tuple[str, ...] = ()
    radii: tuple[float, ...] = (0.0, 0.25, 0.5, 0.75, 1.0)
    labels: tuple[str, ...] | None = None
    envelope: bool = False
    format: str = "text"
    plot: str | None = setting(None, result=False)
    max_radius: float | None = None
    alpha: float | None = None
    confidence: float = 0.001
    name: str = "envelope"
    as_written: bool = False
    mix_threats: bool = False  # records of different input sets (ℝ^d, box, grid) in one table

    def validate(self) -> None:
        if not self.paths:
            raise UserError("give at least one record file")
        if any(r < 0 for r in self.radii):
            raise UserError("--radii must be non-negative")
        if self.format not in A.list_formats():
            raise UserError(f"unknown format {self.format!r}; choose "
                            f"{', '.join(A.list_formats())}")


def run_analyze(cfg: AnalyzeConfig) -> StageResult:
    files = A.expand_paths(list(cfg.paths), kinds=("certify", "predict"))
    labels = list(cfg.labels) if cfg.labels is not None else [None] * len(files)
    if len(labels) != len(files):
        raise UserError(f"{len(labels)} labels for {len(files)} record files")
    groups: dict[str, tuple[list, list]] = {}
    for f, label in zip(files, labels):
        kind = A.record_kind(f)
        if kind is None:
            raise UserError(f"{f}: not a certification or prediction record file")
        groups.setdefault(kind, ([], []))
        groups[kind][0].append(f)
        groups[kind][1].append(label)
    out: list[str] = []
    radii = list(cfg.radii)
    if "certify" in groups:
        cert_files, cert_labels = groups["certify"]
        norm = A.common_norm(cert_files, cfg.mix_threats)
        summaries = A.load_summaries(cert_files, radii, cert_labels if cfg.labels else None,
                                     cfg.alpha, cfg.confidence, warn=_warn,
                                     as_written=cfg.as_written)
        cells = A.envelope(summaries) if cfg.envelope else None
        if cells is not None:
            out.append(A.render(A.envelope_table(cells, cfg.name), cfg.format))
            if cfg.format == "text":
                out += ["", A.render(A.envelope_sources(cells), "text")]
        else:
            out.append(A.render(A.summary_table(summaries), cfg.format))
        if cfg.format in ("text", "markdown"):
            out.append(A.threat_label(cert_files))
        note = A.sampling_note(cert_files)
        if note:
            _warn(f"smoothadv: {note}")
        if cfg.plot:
            path = A.plot_curves(summaries, cfg.plot, cells, max_radius=cfg.max_radius,
                                 norm=norm)
            _warn(f"plot written to {path}")
    if "predict" in groups:
        pred_files, pred_labels = groups["predict"]
        empirical = A.load_empirical(pred_files, pred_labels if cfg.labels else None,
                                     warn=_warn)
        if empirical:
            if "certify" in groups and cfg.format == "text":
                out.append("\nempirical robustness (PREDICT on attacked points):")
            out.append(A.render(A.empirical_table(empirical), cfg.format))
    return StageResult(Path(cfg.plot) if cfg.plot else None, "\n".join(out))


@stage_config
class CompareConfig(StageConfig):
    """Record files against a reference record file."""

    stage = "compare"

    ours: tuple[str, ...] = ()
    reference: str = ""
    radii: tuple[float, ...] | None = None  # None: 0.25 steps up to min(2.25, 4σ) (the paper's)
    format: str = "text"
    as_written: bool = False
    allow_mixed: bool = False  # compare records of different arithmetic precisions
    mix_threats: bool = False  # records of different input sets (ℝ^d, box, grid)

    def validate(self) -> None:
        if not self.ours:
            raise UserError("give at least one record file to compare")
        if not self.reference:
            raise UserError("give the reference record file: --reference FILE")
        if any(r < 0 for r in self.radii or ()):
            raise UserError("--radii must be non-negative")
        if self.format not in A.list_formats():
            raise UserError(f"unknown format {self.format!r}; choose "
                            f"{', '.join(A.list_formats())}")


def default_radii(paths) -> list[float]:
    """The radii a comparison shows when none are given: steps of 0.25 up to min(2.25, 4σ) for
    the largest σ the records name (the paper's CIFAR-10 table at σ ≥ 0.5625), else up to the
    largest radius any of them counts."""
    sigmas = [s for s in (A.sigma_from_path(p) for p in paths) if s is not None]
    if sigmas:
        top = min(2.25, 4 * max(sigmas))
    else:
        top = max(float(read_records(p).counted_radius.max(initial=0.0)) for p in paths)
        top = min(max(top, 0.25), 2.25)
    return [round(0.25 * i, 2) for i in range(1, int(top / 0.25 + 1e-9) + 1)] or [0.25]


def run_compare(cfg: CompareConfig) -> StageResult:
    A.common_norm((*cfg.ours, cfg.reference), cfg.mix_threats)
    note = A.sampling_note((*cfg.ours, cfg.reference))
    if note:
        _warn(f"smoothadv: {note}")
    precisions = {p: A.record_precision(p) for p in (*cfg.ours, cfg.reference)}
    if len(set(precisions.values())) > 1 and not cfg.allow_mixed:
        shown = ", ".join(f"{p} {v}" for p, v in precisions.items())
        raise UserError(f"these records were computed at different precisions ({shown}): their "
                        "certificates are of different base classifiers; pass --allow-mixed to "
                        "compare them anyway")
    reference = read_records(cfg.reference)
    if reference.is_empty:
        raise UserError(f"{cfg.reference}: the reference has a header only")
    results = []
    loaded = {}
    radii = list(cfg.radii) if cfg.radii else default_radii((*cfg.ours, cfg.reference))
    for path in cfg.ours:
        ours = loaded[path] = read_records(path)
        if ours.is_empty:
            raise UserError(f"{path}: empty record file (header only)")
        results.append(compare(ours, reference, radii, cfg.as_written))
    if cfg.format == "json":
        return StageResult(None, json.dumps([asdict(c) for c in results], indent=1))
    labels = short_labels([c.ours for c in results] + [cfg.reference])
    head = ["file", "radius", "ours", "reference", "difference", "low", "high", "ours only",
            "reference only"]
    rows = []
    for c in results:
        for r in c.radii:
            rows.append([labels[c.ours], f"{r.radius:g}", f"{r.ours:.4f}", f"{r.reference:.4f}",
                         f"{r.difference:+.4f}", f"{r.low:+.4f}", f"{r.high:+.4f}",
                         "" if r.ours_only is None else str(r.ours_only),
                         "" if r.reference_only is None else str(r.reference_only)])
    out = [A.render((head, rows), cfg.format)]
    if cfg.format in ("text", "markdown"):
        out += [A.threat_label((*cfg.ours, cfg.reference)), ""]
        for c in results:
            kind = ("paired (the same images)" if c.paired
                    else "independent (different images)")
            out.append(f"{labels[c.ours]} vs {labels[c.reference]}: {c.n_ours} vs "
                       f"{c.n_reference} inputs, 95% intervals {kind}; ACR {c.acr_ours:.3f} "
                       f"vs {c.acr_reference:.3f}" + (
                           "" if c.acr_low is None else
                           f" (difference {c.acr_ours - c.acr_reference:+.3f}, 95% interval "
                           f"[{c.acr_low:+.3f}, {c.acr_high:+.3f}])"))
            if c.radius_agreement:
                a = c.radius_agreement
                out.append(f"  per image: same prediction {a['same_prediction']:.3f}; radii "
                           f"of the {a['both_correct']} inputs both got right differ by "
                           f"{a['mean_abs_radius_difference']:.3f} on average (correlation "
                           f"{a['radius_correlation']:.3f})")
        out += _over_seeds(loaded, reference, radii, cfg.format)
    for c in results:
        for note in c.warnings:
            _warn(f"smoothadv: warning: {c.ours}: {note}")
    return StageResult(None, "\n".join(out))


def seed_groups(paths: list[str | Path]) -> list[tuple[dict[str, Any], dict[int, str]]]:
    """The records of ``paths`` that differ only in their model's training seed, grouped:
    (the shared settings, {training seed: path}) for each group of two seeds or more, in the
    order of their first path. Two records are of one setting when the record's config and its
    model's training config (from the run folder of its checkpoint) compute the same but for
    their seeds and the files they read (:func:`~.registry.result_setting`): the training's
    batch or precision is never mistaken for the certification's. Records whose model has no
    training config, and groups in which a seed is taken twice, are not grouped. The shared
    settings returned are for labels: the training's, with the record's on top."""
    groups: dict[str, tuple[dict[str, Any], list[tuple[int, str]]]] = {}
    for path in paths:
        document = read_document(Path(f"{path}.config.json"))
        checkpoint = (document or {}).get("config", {}).get("checkpoint")
        trained = read_document(Path(checkpoint).parent / "config.json") if checkpoint else None
        if document is None or trained is None:
            continue
        record, model = result_setting(document), result_setting(trained)
        if record is None or model is None:
            continue
        key = json.dumps([model, record], sort_keys=True, default=str)
        label = {**model, **{k: v for k, v in record.items() if v is not None}}
        groups.setdefault(key, (label, []))[1].append(
            (int(trained["config"].get("seed") or 0), str(path)))
    return [(setting, dict(members)) for setting, members in groups.values()
            if len(members) > 1 and len({s for s, _ in members}) == len(members)]


LABEL_KEYS = ("method", "sigma", "arch", "dataset", "epochs", "noise", "norm", "n")


def _over_seeds(records: dict, reference, radii: list[float], fmt: str) -> list[str]:
    """The records (path → loaded) that differ only in their model's training seed, as one row
    per setting: mean ± sd
    over the seeds at each radius and of the ACR, and the ACR difference from the reference
    per image averaged over the seeds with its paired 95% interval
    (:func:`~smoothadv.analysis.compare.over_seeds`, as ``sweep report`` shows)."""
    groups = seed_groups(list(records))
    if not groups:
        return []
    shown = [k for k in LABEL_KEYS if k in ("method", "sigma")
             or len({json.dumps(g[0].get(k), default=str) for g in groups}) > 1]
    rows = []
    for shared, by_seed in groups:
        seeds = sorted(by_seed)
        result = over_seeds([records[by_seed[s]] for s in seeds], radii,
                            [reference] * len(seeds))
        label = " ".join(f"{k}={shared[k]}" for k in shown if shared.get(k) is not None)
        rows.append([label, ",".join(map(str, seeds)), *result.cells()])
    head = ["setting", "seeds", *(f"r={r:g}" for r in radii), "ACR", "ACR − reference [95%]"]
    return ["", "Over the seeds (records that differ only in their model's training seed: mean "
            "± sd over the seeds; the ACR difference from the reference per image averaged over "
            "the seeds, paired 95% interval):", A.render((head, rows), fmt)]


register_stage(AnalyzeConfig, run_analyze)
register_stage(CompareConfig, run_compare)
