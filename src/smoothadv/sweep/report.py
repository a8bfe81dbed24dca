"""A sweep's status table and its report.

``status``: one row per job — done (its outputs are complete), running (a process holds its
lock, or SLURM says so), queued (submitted, pending), failed or blocked (with the line that
says why), or todo. ``report``: ``OUT/report.md`` with, per σ, a table of certified accuracy
per radius with ACR and a curve plot (PNG), and, for every recipe run with a published log,
``compare``'s differences with 95% intervals; for every labelled grid (a ``[[runs]]`` table
with a ``label`` and several points), the point of the highest ACR at each σ — a
hyper-parameter selection when the grid certifies a validation split; and, for settings trained
at several seeds (runs that differ only in ``seed``), mean ± sd over the seeds with the paired
ACR difference against the Gaussian setting of the same σ and seeds
(:func:`~smoothadv.analysis.compare.over_seeds`, as the seven-method demo tabulates).
"""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

from .. import analysis as A
from ..analysis.compare import compare, over_seeds, paired_acr_difference
from ..records.files import read_records, record_setting
from ..runtime.forecast import human_seconds
from .jobs import is_done, lock_held
from .ledger import Ledger
from .outlook import running_estimate
from .plan import Plan, describe


def job_states(plan: Plan, ledger: Ledger, queued: dict[str, str] | None = None,
               ) -> dict[str, tuple[str, str]]:
    """{key: (state, error line)}; ``queued``: SLURM's states of submitted jobs."""
    states = {}
    for key, job in plan.jobs.items():
        entry = ledger.get(key)
        if is_done(job):
            states[key] = ("done", "")
        elif lock_held(job.folder):
            states[key] = ("running", "")
        elif queued and key in queued:
            states[key] = (queued[key], "")
        elif entry.get("status") in ("failed", "blocked"):
            states[key] = (entry["status"], entry.get("error", ""))
        else:
            states[key] = ("todo", "")
    return states


def status_table(plan: Plan, ledger: Ledger, queued: dict[str, str] | None = None) -> str:
    """One row per stage: its state, its runs, its error line, and for a running stage the
    time its own forecast says it has left (``estimate.json``; :mod:`.outlook`)."""
    states = job_states(plan, ledger, queued)
    head = ["stage", "what", "state", "left", "runs", "error"]
    rows = [[key, describe(job), states[key][0], _left(job) if states[key][0] == "running"
             else "", str(len(job.runs)), states[key][1]]
            for key, job in plan.jobs.items()]
    counts = defaultdict(int)
    for state, _ in states.values():
        counts[state] += 1
    summary = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    return A.render((head, rows), "text") + f"\n{len(plan.jobs)} stages: {summary}"


def _left(job) -> str:
    """``about 12 min 10 s`` from a running stage's forecast; ``?`` before it has one."""
    left = running_estimate(job)
    return "?" if left is None else f"about {human_seconds(left)}"


def _radii(sigma: float) -> list[float]:
    top = min(2.25, 4 * sigma)
    return [round(0.25 * i, 2) for i in range(int(top / 0.25) + 1)]


def _settings(record: Path) -> str:
    """'epochs E, n N, n0 N0, α A' of a record (its training run's epochs from the config
    beside its checkpoint), the parts that are known."""
    parts = []
    checkpoint = record_setting(record, "checkpoint")
    if checkpoint:
        try:
            run = json.loads((Path(checkpoint).parent / "config.json").read_text())
            epochs = (run.get("config") or {}).get("epochs")
            if epochs is not None:
                parts.append(f"epochs {epochs}")
        except (OSError, ValueError):
            pass
    for key, name in (("n", "n"), ("n0", "n0"), ("alpha", "α")):
        value = record_setting(record, key)
        if value is not None:
            parts.append(f"{name} {value:,}" if isinstance(value, int) else f"{name} {value}")
    return ", ".join(parts)


def _difference(a, b) -> str:
    """The paired 95% interval of ACR(a) − ACR(b) and whether it resolves the order."""
    try:
        diff, (low, high) = paired_acr_difference([(a, b)])
    except ValueError:
        return "different images | n/a"
    resolved = "yes" if low > 0 or high < 0 else "not resolved"
    return f"{diff:+.3f} [{low:+.3f}, {high:+.3f}] | {resolved}"


def _best_of_groups(by_sigma: dict[float, list], acr: dict[str, float],
                    records: dict[str, object] | None = None) -> list[str]:
    """Markdown lines: per labelled grid and σ, the point of the highest ACR (``acr``: by run
    label, from the summaries already read; ties: the first in the file's order), the
    runner-up's ACR and, where ``records`` has both (by label), the paired 95% interval of their
    difference and whether it resolves which is better."""
    rows = []
    for sigma in sorted(by_sigma):
        groups: dict[str, list] = defaultdict(list)
        for run in by_sigma[sigma]:
            if run.group and run.label in acr:
                groups[run.group].append(run)
        for group, runs in groups.items():
            if len(runs) < 2:
                continue
            acrs = [acr[r.label] for r in runs]
            order = sorted(range(len(runs)), key=lambda i: -acrs[i])
            best, second = order[0], order[1]
            a, b = (records or {}).get(runs[best].label), (records or {}).get(runs[second].label)
            gap = _difference(a, b) if a is not None and b is not None else "n/a | n/a"
            rows.append(f"| {group} | {sigma:g} | {len(runs)} | {runs[best].label} | "
                        f"{acrs[best]:.3f} | {acrs[second]:.3f} | {gap} |")
    if not rows:
        return []
    return ["## Best of each run (highest ACR per labelled grid and σ)", "",
            "The difference is the best point's ACR minus the runner-up's on the same images, "
            "with its paired 95% interval over the images; 'not resolved' when the interval "
            "holds 0 (the ranking is then within the test set's noise).", "",
            "| grid | σ | points done | best | ACR | runner-up ACR | best − runner-up [95%] "
            "| resolved |",
            "|---|---|---|---|---|---|---|---|", *rows, ""]


def _seed_settings(plan: Plan, runs: list) -> dict[str, dict[int, object]]:
    """{setting label: {seed: run}} of ``runs`` (one σ) whose records differ only in their
    model's training seed (:func:`~smoothadv.stages.reports.seed_groups`, as ``compare``
    groups them); the label is the run's without its ``seed=…``."""
    from ..stages.reports import seed_groups

    by_path = {str(plan.jobs[r.record_job].output): r for r in runs if r.train_job is not None}
    settings: dict[str, dict[int, object]] = {}
    for _, by_seed in seed_groups(list(by_path)):
        members = {seed: by_path[path] for seed, path in by_seed.items()}
        first = members[min(members)]
        settings[" ".join(w for w in first.label.split() if not w.startswith("seed="))] = members
    return settings


def _over_seeds(plan: Plan, by_sigma: dict[float, list], records: dict[str, object]
                ) -> list[str]:
    """The "Over the seeds" section (see the module docstring): one table per σ."""
    lines: list[str] = []
    for sigma in sorted(by_sigma):
        radii = [r for r in _radii(sigma) if r > 0][:4]
        settings = _seed_settings(plan, by_sigma[sigma])
        gaussian = {label: runs for label, runs in settings.items()
                    if plan.jobs[next(iter(runs.values())).train_job].config.method
                    == "gaussian"}
        rows = []
        for label, runs in settings.items():
            seeds = sorted(runs)
            recs = [records.get(runs[s].label) for s in seeds]
            if any(r is None for r in recs):
                continue
            ref = next((g for g_label, g in gaussian.items()
                        if g_label != label and sorted(g) == seeds), None)
            reference = [records.get(ref[s].label) for s in seeds] if ref else None
            if reference is not None and any(r is None for r in reference):
                reference = None
            result = over_seeds(recs, radii, reference)
            rows.append("| " + " | ".join([label, str(len(seeds)), *result.cells()]) + " |")
        if rows:
            head = ["setting", "seeds", *(f"r={r:g}" for r in radii), "ACR",
                    "ACR − Gaussian [95%]"]
            lines += [f"σ = {sigma:g}:", "", "| " + " | ".join(head) + " |",
                      "|" + "---|" * len(head), *rows, ""]
    if not lines:
        return []
    return ["## Over the seeds", "",
            "Settings trained at several seeds (runs that differ only in their seed): mean ± "
            "standard deviation over the seeds, and the ACR difference from the Gaussian "
            "setting of the same σ and seeds, per image averaged over the seeds, with its "
            "paired 95% interval.", "", *lines]


def write_report(plan: Plan, out: Path, say=print) -> Path:
    """``OUT/report.md`` (and ``OUT/curves_sigma*.png``) from the runs whose records are
    complete; runs not done yet are listed as missing."""
    by_sigma: dict[float, list] = defaultdict(list)
    missing = []
    for run in plan.runs:
        job = plan.jobs[run.record_job]
        (by_sigma[run.sigma] if is_done(job) else missing).append(run)
    lines = ["# Sweep report", ""]
    acr: dict[str, float] = {}
    records: dict[str, object] = {}
    for sigma in sorted(by_sigma):
        runs = by_sigma[sigma]
        radii = _radii(sigma)
        summaries = A.load_summaries([plan.jobs[r.record_job].output for r in runs], radii,
                                     [r.label for r in runs], warn=say)
        acr.update((summary.label, summary.acr) for summary in summaries)
        records.update((summary.label, summary.records) for summary in summaries)
        png = out / f"curves_sigma{sigma:g}.png"
        A.plot_curves(summaries, png, title=f"certified accuracy, σ = {sigma:g}")
        settings = sorted({_settings(Path(summary.path)) for summary in summaries} - {""})
        lines += [f"## σ = {sigma:g}", ""]
        if settings:
            lines += ["Settings: " + "; ".join(settings) + ".", ""]
        lines += [A.render(A.summary_table(summaries), "markdown"),
                  "", f"![certified accuracy at σ = {sigma:g}]({png.name})", ""]
    lines += _best_of_groups(by_sigma, acr, records)
    lines += _over_seeds(plan, by_sigma, records)
    compared = [r for rs in by_sigma.values() for r in rs if r.reference is not None]
    if compared:
        lines += ["## Against the published logs (differences with 95% intervals)", "",
                  "| run | radius | ours | published | difference | 95% interval |",
                  "|---|---|---|---|---|---|"]
        for run in compared:
            ours = read_records(plan.jobs[run.record_job].output)
            ref = read_records(run.reference)
            result = compare(ours, ref, [r for r in _radii(run.sigma) if r > 0])
            for r in result.radii:
                lines.append(f"| {run.label} | {r.radius:g} | {r.ours:.3f} | {r.reference:.3f} "
                             f"| {r.difference:+.3f} | [{r.low:+.3f}, {r.high:+.3f}] |")
        lines.append("")
    if missing:
        lines += ["## Not finished", ""] + [f"- {r.label}" for r in missing] + [""]
    path = out / "report.md"
    out.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
