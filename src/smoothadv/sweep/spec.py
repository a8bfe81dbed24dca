"""The sweep file: a grid of runs in TOML, checked in full before anything runs.

::

    out = "runs/sweep"              # the sweep folder (stages, ledger, report)
    scale = "tiny"                  # recipes' scale: full, small or tiny
    data_root = "../shared/data/cifar10"        # optional, passed to every stage
    paper_logs = "../shared/data/baseline-logs" # optional: compare with published logs
    shared_noise = true     # optional: certify models whose certify options agree together,
                            # on noise drawn once (records equal those certified alone)

    [[runs]]                        # runs by recipe: names, a group, a method
    recipes = ["cifar10-gaussian-rerun-s0.25"]
    group = "baselines"
    method = "macer"

    [[runs]]                        # a product over train options (or method options)
    label = "digits"
    train = { dataset = "digits", arch = "mlp", epochs = 5, batch = 64 }
    grid = { method = ["gaussian", "macer"], sigma = [0.25, 0.5], seed = [0, 1, 2] }
    options = { macer = { lbd = 3.0 } }         # per-method options (optional)
    certify = { n = 1000, n0 = 100 }            # σ and data follow the run's training
    shards = 2                                  # certify in 2 index shards, merged
    rebox = true        # uniform/splitting ℓ1: also the box radii of the record, post hoc
    teacher = { lr = 0.1 }  # CAT-RS: train options of its σ = 0.25 Gaussian teacher (default:
                            # the run's own, without its method options)
    ensemble = ["seed"]     # also certify, per group of grid points that differ only in these
                            # keys, the ensemble of their trained models

A grid key is a ``TrainConfig`` field or an option of the methods it is used with; every
point of the product becomes train → certify. Unknown recipes, methods, options, keys and
engines are refused in one line, before anything is submitted.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomllib

from ..denoise.training import DenoiserConfig
from ..errors import UserError
from ..methods import method_spec
from ..recipes import SCALES, get_recipe, list_recipes
from ..stages import CertifyConfig, TrainConfig

TOP_KEYS = {"out", "scale", "data_root", "paper_logs", "shared_noise", "runs"}
RUN_KEYS = {"recipes", "group", "method", "dataset", "label", "train", "grid", "options",
            "certify", "shards", "teacher_draws", "teacher", "rebox", "denoiser",
            "ensemble"}
SOFT_TARGETS = "<soft targets of the run's teacher>"  # replaced by the plan
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)} - {"out", "options"}
CERTIFY_FIELDS = {f.name for f in dataclasses.fields(CertifyConfig)} - {
    "out", "checkpoint", "shard", "shards"}


@dataclass
class GridRun:
    """One point of a product: its training config and certification options."""

    label: str
    train: TrainConfig
    certify: dict[str, Any]
    shards: int = 1
    teacher_draws: int | None = None  # CAT-RS: p_b from a σ = 0.25 Gaussian teacher
    group: str = ""  # the [[runs]] table's label: its grid points are compared in the report
    rebox: bool = False  # then also the box-constrained ℓ1 radii of the record, post hoc
    denoiser: dict[str, Any] | None = None  # certify the trained classifier behind a DnCNN
    teacher: dict[str, Any] = field(default_factory=dict)  # CAT-RS teacher's train options
    ensemble: tuple[str, ...] = ()  # grid keys an ensemble is formed over (e.g. seed)
    point: dict[str, Any] = field(default_factory=dict)  # this run's grid values


@dataclass
class RecipeRun:
    """One recipe run at the sweep's scale."""

    label: str
    entry: dict
    shards: int = 1


@dataclass
class Sweep:
    """A parsed sweep file."""

    path: Path
    out: Path
    scale: str = "tiny"
    data_root: str | None = None
    paper_logs: str | None = None
    shared_noise: bool = False  # certify groups of models on shared noise (stages/shared.py)
    runs: list[GridRun | RecipeRun] = field(default_factory=list)


def _where(path: Path, i: int | None = None) -> str:
    return f"{path}" + (f" [[runs]] #{i + 1}" if i is not None else "")


def load_sweep(path: str | Path) -> Sweep:
    """Parse and check a sweep file (one-line errors naming the place)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"sweep file not found: {path}")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise UserError(f"{path} is not TOML: {err}") from None
    return sweep_from_data(data, path)


def sweep_from_data(data: dict[str, Any], path: Path) -> Sweep:
    """Check the parsed contents ``data`` of a sweep file and build the sweep (``path`` names
    the file in errors and gives the default ``out``): the demos build theirs this way from
    the sweep files shipped with the package and the options given."""
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise UserError(f"{path}: unknown key(s) {', '.join(unknown)}; the file takes "
                        f"{', '.join(sorted(TOP_KEYS))}")
    scale = data.get("scale", "tiny")
    if scale not in SCALES:
        raise UserError(f"{path}: unknown scale {scale!r}; choose {', '.join(SCALES)}")
    # relative paths are taken from the working directory, as every command's are
    shared = data.get("shared_noise", False)
    if not isinstance(shared, bool):
        raise UserError(f"{path}: shared_noise is true or false, got {shared!r}")
    sweep = Sweep(path, Path(data.get("out", Path("runs") / path.stem)), scale,
                  data.get("data_root"), data.get("paper_logs"), shared)
    runs = data.get("runs")
    if not isinstance(runs, list) or not runs:
        raise UserError(f"{path}: no [[runs]] table")
    for i, run in enumerate(runs):
        sweep.runs += _parse_run(run, sweep, _where(path, i))
    return sweep


def to_toml(data: dict[str, Any]) -> str:
    """A sweep's contents as the TOML text :func:`load_sweep` reads back to the same ``data``
    (top-level values, then one ``[[runs]]`` table per run with inline tables)."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v, ensure_ascii=False)
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{ " + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + " }"
        raise TypeError(f"no TOML for {type(v).__name__}")

    lines = [f"{k} = {value(v)}" for k, v in data.items() if k != "runs"]
    for run in data.get("runs", []):
        lines += ["", "[[runs]]", *(f"{k} = {value(v)}" for k, v in run.items())]
    return "\n".join(lines) + "\n"


def _parse_run(run: dict, sweep: Sweep, where: str) -> list[GridRun | RecipeRun]:
    unknown = sorted(set(run) - RUN_KEYS)
    if unknown:
        raise UserError(f"{where}: unknown key(s) {', '.join(unknown)}; a run takes "
                        f"{', '.join(sorted(RUN_KEYS))}")
    shards = int(run.get("shards", 1))
    if shards < 1:
        raise UserError(f"{where}: shards must be ≥ 1")
    if any(k in run for k in ("recipes", "group")) or ("method" in run and "train" not in run):
        if "train" in run or "grid" in run:
            raise UserError(f"{where}: a run names recipes or a product (train/grid), not both")
        entries = []
        for name in run.get("recipes", []):
            entries.append(get_recipe(name))
        if "group" in run or ("method" in run and not run.get("recipes")):
            found = list_recipes(run.get("dataset"), run.get("group"), method=run.get("method"))
            if not found:
                raise UserError(f"{where}: no recipe in group {run.get('group')!r} with method "
                                f"{run.get('method')!r}")
            entries += found
        return [RecipeRun(e["name"], e, shards) for e in entries]
    return _product(run, sweep, where, shards)


DENOISER_FIELDS = {f.name for f in dataclasses.fields(DenoiserConfig)} - {
    "out", "dataset", "classifier", "init", "data_root", "sigma"}


def _check_denoiser(table: Any, where: str) -> None:
    """A run's ``denoiser`` table: DnCNN training options and an optional ``init`` table (the
    denoiser it starts from, e.g. Stab+MSE's MSE one), checked before anything runs."""
    if not isinstance(table, dict):
        raise UserError(f"{where}: denoiser must be a table of train-denoiser options")
    unknown = sorted(set(table) - DENOISER_FIELDS - {"init"})
    if unknown:
        raise UserError(f"{where}: unknown denoiser option(s) {', '.join(unknown)}; it takes "
                        f"{', '.join(sorted(DENOISER_FIELDS | {'init'}))}")
    if "init" in table:
        _check_denoiser(table["init"], where)


def _product(run: dict, sweep: Sweep, where: str, shards: int) -> list[GridRun]:
    base = dict(run.get("train", {}))
    grid = dict(run.get("grid", {}))
    per_method = run.get("options", {})
    certify = dict(run.get("certify", {}))
    for key in base:
        if key not in TRAIN_FIELDS:
            raise UserError(f"{where}: unknown train option {key!r}")
    for key in certify:
        if key not in CERTIFY_FIELDS:
            raise UserError(f"{where}: unknown certify option {key!r}")
    for key, values in grid.items():
        if not isinstance(values, list) or not values:
            raise UserError(f"{where}: grid.{key} must be a non-empty list")
    if "dataset" not in base and "dataset" not in grid:
        raise UserError(f"{where}: the product needs train.dataset")
    if run.get("rebox") and certify.get("noise") not in ("uniform", "splitting"):
        raise UserError(f"{where}: rebox takes a uniform or splitting ℓ1 record (certify "
                        "noise = \"uniform\" or \"splitting\", norm = \"l1\")")
    denoiser = run.get("denoiser")
    if denoiser is not None:
        _check_denoiser(denoiser, where)
        if "sigma" not in certify:
            raise UserError(f"{where}: a denoised run needs certify.sigma (the classifier "
                            "is trained without noise; the denoiser at that σ)")
    teacher_options = run.get("teacher", {})
    if not isinstance(teacher_options, dict):
        raise UserError(f"{where}: teacher must be a table of train options")
    for key in teacher_options:
        if key not in TRAIN_FIELDS or key in ("method", "sigma"):
            raise UserError(f"{where}: unknown teacher option {key!r} (the teacher is a "
                            "σ = 0.25 Gaussian model; it takes train options)")
    ensemble = run.get("ensemble", [])
    if not isinstance(ensemble, list) or any(k not in grid for k in ensemble):
        raise UserError(f"{where}: ensemble lists grid keys to form ensembles over (e.g. "
                        "[\"seed\"]), each a key of the run's grid")
    if sweep.data_root and "data_root" not in base:
        base["data_root"] = sweep.data_root
    keys = list(grid)
    out = []
    for values in itertools.product(*(grid[k] for k in keys)):
        point = dict(zip(keys, values))
        fields = {**base, **{k: v for k, v in point.items() if k in TRAIN_FIELDS}}
        method = fields.get("method", "gaussian")
        spec = method_spec(method)  # an unknown method fails here, naming the choices
        option_keys = [k for k in point if k not in TRAIN_FIELDS]
        unknown = [k for k in option_keys if k not in spec.option_names()]
        if unknown:
            raise UserError(f"{where}: grid key {unknown[0]!r} is neither a train option nor "
                            f"an option of method {method} ({spec.describe_options()})")
        options = {**per_method.get(method, {}), **{k: point[k] for k in option_keys}}
        teacher = None
        if "soft_targets" in spec.needs and "soft_targets" not in options:
            options["soft_targets"] = SOFT_TARGETS  # the plan adds the teacher's stages
            teacher = int(run.get("teacher_draws", 1000))
        train = TrainConfig(out="", options=options, progress=False,
                            **{k: v for k, v in fields.items()})
        label = " ".join([run.get("label", ""), *(f"{k}={v}" for k, v in point.items())])
        label = label.strip() or "run"
        out.append(GridRun(label, train, certify, shards, teacher, run.get("label", ""),
                           bool(run.get("rebox", False)), denoiser, dict(teacher_options),
                           tuple(ensemble), point))
    if teacher_options and all(r.teacher_draws is None for r in out):
        raise UserError(f"{where}: teacher options given, but no method of the run trains "
                        "from a teacher's soft targets (catrs does)")
    return out
