"""A sweep's plan: every stage of every run as a job keyed by its config's content hash, with
its dependencies, its output under the sweep folder, and no stage twice.

Each stage's output lives at ``OUT/stages/<stage>-<hash>`` (a training run folder, or a folder
holding a record or soft-label file), so two runs that share a stage — the same CAT-RS teacher,
the same pre-trained model, the same Gaussian baseline — share its hash and its output, and it
runs once. References between stages (a certify config's checkpoint, CAT-RS's soft targets)
are rewritten to those outputs before the referring stage's hash is taken, in dependency order.
Certification with ``shards = K`` becomes K shard stages and a merge of their records. With
``shared_noise``, certify stages that differ only in their model (:func:`~smoothadv.stages.
shared.share_key`) are run by one ``certify-shared`` job on noise drawn once; each keeps its own
job, hash and record (equal to the one it gets alone), done by that job's run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..configs import StageConfig
from ..denoise.training import DenoiserConfig
from ..errors import UserError
from ..recipes import recipe_stages
from ..stages import CertifyConfig, SoftLabelsConfig, TrainConfig
from ..stages.shared import share_key, shareable
from .spec import SOFT_TARGETS, GridRun, RecipeRun, Sweep

OUTPUT_NAMES = {"train": "checkpoint.pth.tar", "soft-labels": "soft_targets.pt",
                "certify": "certify.tsv", "merge": "certify.tsv", "rebox": "certify_box.tsv",
                "train-denoiser": "denoiser.pth.tar",
                "certify-shared": "job.json"}  # its records are its members' outputs
RUN_FOLDERS = ("train", "train-denoiser")  # stages whose output is a run folder


@dataclass
class Job:
    """One stage of the plan: ``kind`` is the stage ('train', 'soft-labels', 'certify'),
    'merge' (shard records → one record; config: the unsharded certify config) or 'rebox' (the
    box-constrained ℓ1 radii of a finished uniform or splitting record, post hoc from its
    counts; config: that record's certify config) or 'certify-shared' (its ``members``, certify
    jobs of several models, on shared noise; config: the first member's)."""

    key: str
    kind: str
    config: StageConfig
    folder: Path
    deps: list[str] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)  # labels of the runs that use it
    shards: list[str] = field(default_factory=list)  # merge: the shard jobs' keys
    members: list[Job] = field(default_factory=list)  # certify-shared: the certify jobs

    @property
    def output(self) -> Path:
        """The stage's main output: a checkpoint, a soft-label file or a record file."""
        return self.folder / OUTPUT_NAMES[self.kind]


@dataclass
class RunResult:
    """What the report needs of a run: its label, σ, final record and reference log."""

    label: str
    sigma: float
    record_job: str
    train_job: str | None
    reference: Path | None = None
    group: str = ""  # grid runs: the [[runs]] label (the report picks each group's best)


@dataclass
class Plan:
    jobs: dict[str, Job] = field(default_factory=dict)
    runs: list[RunResult] = field(default_factory=list)

    def order(self) -> list[Job]:
        """Jobs with every dependency before its dependents (insertion order is one)."""
        return list(self.jobs.values())


def _rehome(out: Path, kind: str, config: StageConfig, moved: dict[str, tuple[str, str]],
            ) -> Job:
    """``config`` with its references rewritten through ``moved`` (old output → (new output,
    job key)), its hash taken and its output placed under the sweep folder (not yet added)."""
    deps: list[str] = []

    def rewrite(value: Any) -> Any:
        if isinstance(value, str) and value in moved:
            deps.append(moved[value][1])
            return moved[value][0]
        if isinstance(value, dict):
            return {k: rewrite(v) for k, v in value.items()}
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        return value

    config = type(config).from_dict({k: rewrite(v) for k, v in config.to_dict().items()})
    key = f"{config.stage}-{config.content_hash()}"
    folder = out / "stages" / key
    target = folder if kind in RUN_FOLDERS else folder / OUTPUT_NAMES[kind]
    return Job(key, kind, config.replace(out=str(target)), folder, sorted(set(deps)))


def _add(plan: Plan, job: Job, label: str) -> Job:
    """``job`` in the plan once (a stage several runs share keeps one job)."""
    job = plan.jobs.setdefault(job.key, job)
    if label not in job.runs:
        job.runs.append(label)
    return job


def _home(plan: Plan, out: Path, kind: str, config: StageConfig,
          moved: dict[str, tuple[str, str]], label: str) -> Job:
    return _add(plan, _rehome(out, kind, config, moved), label)


def _certify(plan: Plan, out: Path, cert: CertifyConfig, moved: dict, label: str,
             shards: int) -> Job:
    """The certify job (or K shard jobs and their merge) of ``cert``."""
    whole = _rehome(out, "certify", cert, moved)
    if shards == 1:
        return _add(plan, whole, label)
    parts = [_home(plan, out, "certify", cert.replace(shard=s, shards=shards), moved, label)
             for s in range(shards)]
    key = f"merge-{whole.config.content_hash()}"
    folder = out / "stages" / key
    merge = Job(key, "merge", whole.config.replace(out=str(folder / "certify.tsv")), folder,
                [p.key for p in parts], shards=[p.key for p in parts])
    return _add(plan, merge, label)


def build_plan(sweep: Sweep) -> Plan:
    """Every job of ``sweep`` (see the module docstring); output collisions are refused."""
    plan = Plan()
    out = sweep.out
    ensembles: dict[tuple, list[tuple[GridRun, Job]]] = {}
    for run in sweep.runs:
        moved: dict[str, tuple[str, str]] = {}
        if isinstance(run, GridRun):
            if run.teacher_draws is not None:
                _teacher(plan, out, run, moved)
            train = _home(plan, out, "train", run.train, moved, run.label)
            moved[str(train.output)] = (str(train.output), train.key)
            model = {"checkpoint": str(train.output)}
            if run.denoiser is not None:  # the classifier behind a DnCNN trained at σ
                sigma = float(run.certify["sigma"])
                den = _denoiser(plan, out, run, run.denoiser, sigma, str(train.output), moved)
                model = {"classifier": str(train.output), "denoiser": f"dncnn:{den.output}"}
            cert = CertifyConfig(**{
                **model, "dataset": run.train.dataset,
                "data_root": run.train.data_root, "sigma": run.train.sigma, "progress": False,
                "out": "x", **run.certify})
            record = _certify(plan, out, cert, moved, run.label, run.shards)
            if run.rebox:
                record = _rebox(plan, out, record, run.label)
            plan.runs.append(RunResult(run.label, run.train.sigma, record.key, train.key,
                                       group=run.group))
            if run.ensemble:
                rest = tuple(sorted((k, str(v)) for k, v in run.point.items()
                                    if k not in run.ensemble))
                ensembles.setdefault((run.group, rest, json.dumps(run.certify, sort_keys=True)),
                                     []).append((run, train))
            continue
        assert isinstance(run, RecipeRun)
        stages = recipe_stages(run.entry, out / "recipes" / run.entry["name"], sweep.scale,
                               sweep.data_root, sweep.paper_logs)
        train_key = None
        record = None
        for stage in stages:
            config = stage.config
            if config.stage in ("analyze", "compare"):
                continue  # the sweep's report does these
            if isinstance(config, TrainConfig):
                config = config.replace(resume=False)
            old = _output_of(config)
            if isinstance(config, CertifyConfig):
                record = _certify(plan, out, config, moved, run.label, run.shards)
                continue
            kind = config.stage
            job = _home(plan, out, kind, config, moved, run.label)
            moved[old] = (str(job.output), job.key)
            if stage.name == "train":
                train_key = job.key
        reference = None
        if sweep.paper_logs and run.entry.get("paper_log"):
            from ..recipes import reference_log

            reference = reference_log(run.entry, sweep.paper_logs)
        plan.runs.append(RunResult(run.label, run.entry["sigma"], record.key, train_key,
                                   reference))
    for group in ensembles.values():
        if len(group) > 1:
            _ensemble(plan, out, group)
    if sweep.shared_noise:
        _share(plan, out)
    _check_collisions(plan)
    return plan


def _ensemble(plan: Plan, out: Path, group: list[tuple[GridRun, Job]]) -> None:
    """The certification of the ensemble of ``group``'s trained models (grid points that differ
    only in the run's ``ensemble`` keys), as a run of its own named after them."""
    first = group[0][0]
    members = [str(train.output) for _, train in group]
    moved = {m: (m, train.key) for m, (_, train) in zip(members, group)}
    cert = CertifyConfig(**{
        "members": tuple(members), "dataset": first.train.dataset,
        "data_root": first.train.data_root, "sigma": first.train.sigma, "progress": False,
        "out": "x", **first.certify})
    label = " ".join([first.group, *(f"{k}={v}" for k, v in first.point.items()
                                     if k not in first.ensemble)]).strip()
    label = f"{label} ensemble of {len(members)} ({', '.join(first.ensemble)})".strip()
    record = _certify(plan, out, cert, moved, label, 1)
    plan.runs.append(RunResult(label, first.train.sigma, record.key, None,
                               group=f"{first.group} ensemble".strip()))


def _share(plan: Plan, out: Path) -> None:
    """One ``certify-shared`` job for each group of two or more shareable certify jobs with one
    share key; its members then depend on it alone (and find themselves done when it is). The
    jobs are put back in an order with every dependency first."""
    groups: dict[str, list[Job]] = {}
    for job in plan.jobs.values():
        if job.kind == "certify" and shareable(job.config):
            groups.setdefault(share_key(job.config), []).append(job)
    for group in groups.values():
        if len(group) < 2:
            continue
        digest = hashlib.sha256(" ".join(m.key for m in group).encode()).hexdigest()[:12]
        key = f"certify-shared-{digest}"
        deps = sorted({d for m in group for d in m.deps})
        plan.jobs[key] = Job(key, "certify-shared", group[0].config, out / "stages" / key, deps,
                             sorted({r for m in group for r in m.runs}), members=list(group))
        for member in group:
            member.deps = [key]
    ordered: dict[str, Job] = {}

    def place(job: Job) -> None:
        if job.key not in ordered:
            for dep in job.deps:
                place(plan.jobs[dep])
            ordered[job.key] = job

    for job in list(plan.jobs.values()):
        place(job)
    plan.jobs = ordered


def _denoiser(plan: Plan, out: Path, run: GridRun, table: dict, sigma: float,
              classifier: str, moved: dict) -> Job:
    """The train-denoiser job of a run's ``denoiser`` table at σ (after the job of its
    ``init`` table, if any): the classifier is the run's trained one where the objective
    needs it."""
    options = {k: v for k, v in table.items() if k != "init"}
    init = None
    if "init" in table:
        init = str(_denoiser(plan, out, run, table["init"], sigma, classifier, moved).output)
    needs = options.get("objective", "mse") != "mse"
    config = DenoiserConfig(dataset=run.train.dataset, data_root=run.train.data_root,
                            sigma=sigma, classifier=classifier if needs else None, init=init,
                            progress=False, out="x", **options)
    job = _home(plan, out, "train-denoiser", config, moved, run.label)
    moved[str(job.output)] = (str(job.output), job.key)
    moved[f"dncnn:{job.output}"] = (f"dncnn:{job.output}", job.key)
    return job


def _rebox(plan: Plan, out: Path, record: Job, label: str) -> Job:
    """The rebox job of ``record`` (a uniform or splitting ℓ1 certification)."""
    key = f"rebox-{record.config.content_hash()}"
    folder = out / "stages" / key
    job = Job(key, "rebox", record.config.replace(out=str(folder / OUTPUT_NAMES["rebox"])),
              folder, [record.key], shards=[record.key])
    return _add(plan, job, label)


def _teacher(plan: Plan, out: Path, run: GridRun, moved: dict) -> None:
    """CAT-RS in a product: its authors' σ = 0.25 Gaussian teacher (the run's other training
    settings, with the run's ``teacher`` options over them) and the teacher's p_b, shared by
    every run that needs the same ones."""
    t = run.train
    config = t.replace(method="gaussian", sigma=0.25, options={}, **run.teacher)
    teacher = _home(plan, out, "train", config, moved, run.label)
    moved[str(teacher.output)] = (str(teacher.output), teacher.key)
    soft = _home(plan, out, "soft-labels", SoftLabelsConfig(
        teacher=str(teacher.output), dataset=t.dataset, data_root=t.data_root, sigma=0.25,
        num_noise=run.teacher_draws, train_subset=t.train_subset, seed=t.seed, progress=False,
        out="x"), moved, run.label)
    moved[SOFT_TARGETS] = (str(soft.output), soft.key)


def _output_of(config: StageConfig) -> str:
    """The path other stages use to refer to ``config``'s output (a checkpoint inside a
    training folder; the output file otherwise)."""
    if isinstance(config, TrainConfig):
        return str(Path(config.out) / OUTPUT_NAMES["train"])
    return str(config.out)


def _check_collisions(plan: Plan) -> None:
    seen: dict[str, str] = {}
    for job in plan.jobs.values():
        path = str(job.output)
        if path in seen and seen[path] != job.key:
            raise UserError(f"two stages of the sweep would write {path}: {seen[path]} and "
                            f"{job.key}")
        seen[path] = job.key


def log_to(plan: Plan, names: Sequence[str]) -> None:
    """Every stage of ``plan`` that logs (training, certify, predict, attack) also logs to the
    loggers ``names`` (``sweep run --log``), each in its own folder. ``log`` is outside the
    content hash: no stage changes its name or its done state."""
    for job in plan.jobs.values():
        for one in (job, *job.members):
            if "log" in {f.name for f in dataclasses.fields(one.config)}:
                one.config = dataclasses.replace(one.config, log=tuple(names))


def describe(job: Job) -> str:
    """A short description of a job for tables: the stage and its distinguishing options."""
    c = job.config
    if isinstance(c, TrainConfig):
        noise = f" {c.noise} noise" if c.noise != "gaussian" else ""
        return f"train {c.method}{noise} σ={c.sigma:g} seed={c.seed} epochs={c.epochs}"
    if isinstance(c, DenoiserConfig):
        return f"train-denoiser {c.objective} σ={c.sigma:g} epochs={c.epochs}"
    if isinstance(c, CertifyConfig):
        part = f" shard {c.shard + 1}/{c.shards}" if c.shards > 1 else ""
        what = {"merge": "merge ", "rebox": "rebox "}.get(job.kind, "certify ")
        if job.kind == "certify-shared":
            what = f"certify ×{len(job.members)} on shared noise "
        what += "denoised " if c.denoiser else ""
        what += f"ensemble of {len(c.members)} " if c.members else ""
        mode = f" {c.noise} {c.norm}" if (c.noise, c.norm) != ("gaussian", "l2") else ""
        mode += " derandomized " + c.template if c.derandomized else ""
        return what + f"σ={c.sigma:g}{mode} n={c.n}{part}"
    return c.stage


__all__ = ["Job", "Plan", "RunResult", "build_plan", "describe"]
