"""The paper's models as runnable recipes.

``catalogue.json`` (shipped with the package) holds one entry per model of the SmoothAdv paper's
released certification logs: dataset, architecture, σ, method, attack and steps, ε (a plain ℓ2
radius, with the paper's eps_N beside it), m_train, multi-noise, warm-up, epochs and learning-rate
schedule, pre-training, self-training weight, the certification protocol, the log's path in the
authors' layout, the table cells the model wins, and notes where the paper's text and the logs
disagree or are silent. :func:`recipe_stages` turns an entry into stage configs
(:mod:`smoothadv.stages`) at one of three scales, and :mod:`.runner` runs them resumably.

Scales:

- ``full``: the paper's budget (its epochs, batch, architecture; n = 100,000): GPU days.
- ``small``: a CPU-hours budget: ResNet-20, a class-balanced subset of 2,000 training images,
  a tenth of the epochs (at least 10), 100 test inputs (every 100th) at n = 10,000.
- ``tiny``: a CPU-minutes smoke run: ResNet-20, 256 training images, 1 epoch, T ≤ 2 and
  m ≤ 2, 20 test inputs at n0 = 10, n = 100.

Every entry names the input layer its model was trained behind (``normalization``: the
authors' README gives ``center`` for the main SmoothAdv CIFAR-10 and all ImageNet models,
``normalize`` for Cohen et al.'s and the pre-/self-trained ones); training and certification
configs carry it. :func:`certify_stages` certifies a *released* checkpoint with the recipe's
protocol and layer (``smoothadv recipe certify``).
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..configs import StageConfig
from ..errors import UserError
from ..methods import method_spec
from ..stages import (
    AnalyzeConfig,
    CertifyConfig,
    CompareConfig,
    SoftLabelsConfig,
    TrainConfig,
)

SCALES = ("full", "small", "tiny")
FIELDS = ("name", "dataset", "arch", "sigma", "method", "attack", "steps", "epsilon",
          "epsilon_paper", "m_train", "multi_noise", "warmup", "epochs", "lr", "lr_step",
          "normalization", "pretraining", "self_training_weight", "paper_log")
CHECKPOINT_NAME = "checkpoint.pth.tar"


@lru_cache(maxsize=1)
def catalogue() -> tuple[dict, ...]:
    """Every model of the catalogue, as dicts (see the module docstring for the keys)."""
    text = resources.files(__package__).joinpath("catalogue.json").read_text(encoding="utf-8")
    return tuple(json.loads(text)["models"])


def all_recipes() -> tuple[dict, ...]:
    """The paper's models (:func:`catalogue`) and the training-method baselines
    (:func:`smoothadv.recipes.baselines.baselines`)."""
    from .baselines import baselines
    from .l1 import l1_recipes

    return catalogue() + baselines() + l1_recipes()


def list_recipes(dataset: str | None = None, group: str | None = None,
                 winners: bool = False, method: str | None = None) -> list[dict]:
    """Recipes, filtered by dataset, by group (a prefix such as ``cifar10/ours`` or
    ``baselines``), by training method, or to the models that win a cell of the paper's
    tables."""
    out = []
    for entry in all_recipes():
        if method and entry["method"] != method:
            continue
        if dataset and entry["dataset"] != dataset:
            continue
        if group and not entry["group"].startswith(group):
            continue
        if winners and not entry["wins"]:
            continue
        out.append(entry)
    return out


def get_recipe(name: str) -> dict:
    """The entry called ``name``; a clear error with the closest names otherwise."""
    for entry in all_recipes():
        if entry["name"] == name:
            return entry
    close = difflib.get_close_matches(name, [e["name"] for e in all_recipes()], n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see smoothadv recipe list"
    raise UserError(f"unknown recipe {name!r}{hint}")


@dataclass(frozen=True)
class Stage:
    """One step of a recipe: its name and the stage config it runs."""

    name: str
    config: StageConfig


def _protocol(entry: dict, scale: str) -> dict:
    """certify's sampling options for a recipe at ``scale``."""
    cert = entry["certification"]
    if scale == "full":
        return dict(n0=cert["n0"], n=cert["n"], skip=cert["skip"])
    if scale == "small":
        return dict(n0=100, n=10_000, skip=100)
    return dict(n0=10, n=100, skip=500, batch=200)


def protocol_n(entry: dict, scale: str) -> int:
    """The certification sample count n of a recipe at ``scale``."""
    return int(_protocol(entry, scale)["n"])


def certify_radii(entry: dict) -> list[float]:
    """The radii of the paper's table for the recipe's data set, 0 first (ℓ1 recipes: Yang et
    al.'s ℓ1 radii)."""
    if entry.get("norm") == "l1":
        return [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0]
    if entry["dataset"] == "cifar10":
        return [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25]
    return [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5]


def certify_stages(entry: dict, checkpoint: str | Path, out: str | Path, scale: str = "full",
                   data_root: str | None = None, paper_logs: str | Path | None = None,
                   overrides: dict | None = None) -> list[Stage]:
    """certify → analyze (→ compare with the paper's log) for ``checkpoint`` with the recipe's
    protocol at ``scale`` and its input layer; ``overrides`` are more certify options (e.g.
    ``skip``, ``max``, ``sequential``), replacing the protocol's."""
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; choose {', '.join(SCALES)}")
    out = Path(out)
    record = out / "certify.tsv"
    radii = certify_radii(entry)
    certify = CertifyConfig(**{
        "checkpoint": str(checkpoint), "dataset": entry["dataset"], "data_root": data_root,
        "sigma": entry["sigma"], "alpha": entry["certification"]["alpha"],
        "input_normalization": entry["normalization"], "out": str(record), "progress": False,
        "noise": entry.get("noise", "gaussian"), "norm": entry.get("norm", "l2"),
        **_protocol(entry, scale), **(overrides or {})})
    stages = [Stage("certify", certify),
              Stage("analyze", AnalyzeConfig(paths=(str(record),), radii=tuple(radii)))]
    if paper_logs is not None and entry["paper_log"] is not None:
        stages.append(Stage("compare", CompareConfig(
            ours=(str(record),), reference=str(reference_log(entry, paper_logs)),
            radii=tuple(radii[1:]))))
    return stages


def reference_log(entry: dict, logs: str | Path) -> Path:
    """The published log of ``entry`` under ``logs`` (the paper's logs folder, or the
    baseline logs folder for the baselines)."""
    if entry["group"] == "baselines":
        return Path(logs) / entry["paper_log"]
    return Path(logs) / entry["group"] / entry["paper_log"]


def method_options(entry: dict, steps: int | None, m: int, warmup: int) -> dict:
    """The train config's method options for an entry (steps and m already scaled): those
    of the entry's settings that its method declares, the others left at the authors'
    defaults."""
    method = entry["method"]
    if method == "gaussian":
        return {}
    candidates = dict(num_noise=m, steps=steps, epsilon=entry["epsilon"], **entry.get(
        "hparams", {}))
    if method == "smoothadv":
        candidates.update(attack=entry["attack"], warmup=warmup,
                          multi_noise=bool(entry["multi_noise"]))
    declared = set(method_spec(method).option_names())
    return {k: v for k, v in candidates.items() if k in declared and v is not None}


def released_checkpoint(entry: dict, folder: str | Path) -> Path:
    """The released model of ``entry`` in an extracted archive whose layout mirrors the
    logs': the log's path with ``test/sigma_σ`` replaced by ``checkpoint.pth.tar``, under the
    group folder (e.g. ``cifar10/ours/…``) or directly under ``folder``."""
    folder = Path(folder)
    model_dir = Path(entry["paper_log"]).parent.parent
    candidates = [folder / entry["group"] / model_dir / CHECKPOINT_NAME,
                  folder / model_dir / CHECKPOINT_NAME]
    for path in candidates:
        if path.is_file():
            return path
    raise UserError(f"no released checkpoint for {entry['name']} under {folder}: looked for "
                    + " and ".join(str(c) for c in candidates))


def scaled_arch(entry: dict, scale: str) -> str:
    """The architecture a recipe trains at ``scale`` (small and tiny CIFAR-10 runs use a
    ResNet-20)."""
    if scale != "full" and entry["dataset"] == "cifar10":
        return "cifar_resnet20"
    return entry["arch"]


def recipe_stages(entry: dict, out: str | Path, scale: str = "full",
                  data_root: str | None = None, paper_logs: str | Path | None = None,
                  pretrained: str | None = None, extra_data: str | None = None) -> list[Stage]:
    """The stages of a recipe at ``scale``: (pre-training or a CAT-RS teacher and its soft
    labels,) train, certify, analyze and (with the paper's logs) compare, writing under
    ``out``."""
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; choose {', '.join(SCALES)}")
    out = Path(out)
    run_dir = out / "train"
    epochs, lr_step, warmup = entry["epochs"], entry["lr_step"], entry["warmup"]
    steps, m = entry["steps"], entry["m_train"]
    arch, batch = entry["arch"], entry["batch"]
    milestones = entry.get("lr_milestones")
    subset: dict = {}
    if scale != "full":
        arch = scaled_arch(entry, scale)
        if scale == "small":
            epochs = max(10, epochs // 10)
            subset = dict(train_subset=2000, test_subset=500)
            batch = min(batch, 128)
        else:
            epochs = 1
            steps = None if steps is None else min(steps, 2)
            m = min(m, 2)
            batch = 64
            subset = dict(train_subset=256, test_subset=64, eval_adv_max=16)
        lr_step = max(1, round(lr_step * epochs / entry["epochs"]))
        warmup = min(warmup, max(0, epochs // 10))
        if milestones:
            milestones = [max(1, round(v * epochs / entry["epochs"])) for v in milestones]
    options = method_options(entry, steps, m, warmup)
    if scale != "full" and entry["method"] == "macer":
        # MACER's deferral (λ = 0 for the first epochs, 51 of 440 at σ = 1) shrinks with the
        # run, as the warm-up does: kept at 51 it would outlast a shortened run
        from ..methods.macer import default_deferral

        full = default_deferral(entry["sigma"])
        if full and "deferred" not in options:
            options["deferred"] = round(full * epochs / entry["epochs"])
    train = dict(dataset=entry["dataset"], data_root=data_root, sigma=entry["sigma"],
                 input_normalization=entry["normalization"], out=str(run_dir), resume=True,
                 progress=False, arch=arch, epochs=epochs, batch=batch, lr=entry["lr"],
                 lr_step=lr_step, lr_gamma=entry["lr_gamma"],
                 lr_delay=entry.get("lr_delay", 0),
                 weight_decay=entry.get("weight_decay", 1e-4),
                 lr_milestones=tuple(milestones) if milestones else None,
                 method=entry["method"], noise=entry.get("noise", "gaussian"), **subset)
    stages: list[Stage] = []
    if entry["pretraining"]:
        if pretrained is None:  # the pre-training the paper did, for `recipe show`
            pre_dir = out / "pretrain"
            words = entry["pretraining"].split()
            stages.append(Stage("pretrain", TrainConfig(
                dataset="imagenet32", data_root="IMAGENET32_ROOT",
                arch="imagenet32_resnet110", method="smoothadv",
                options=dict(attack=words[1].split("-")[1].lower(), steps=int(words[2]),
                             epsilon=entry["epsilon"]),
                sigma=entry["sigma"], epochs=150, lr_step=50,
                input_normalization=entry["normalization"], out=str(pre_dir), resume=True)))
            pretrained = str(pre_dir / CHECKPOINT_NAME)
        train["pretrained"] = pretrained
    if entry["self_training_weight"] is not None:
        train.update(extra_data=extra_data or "PSEUDO_LABELLED.pickle",
                     extra_weight=entry["self_training_weight"])
    if entry.get("teacher"):  # CAT-RS: train the σ = 0.25 Gaussian teacher, then its p_b
        teacher = get_recipe(entry["teacher"])
        teacher_stages = recipe_stages(teacher, out / "teacher", scale, data_root)
        stages.append(Stage("teacher", teacher_stages[0].config))
        teacher_ckpt = out / "teacher" / "train" / CHECKPOINT_NAME
        soft = out / "soft_targets.pt"
        draws = {"full": 10_000, "small": 1000, "tiny": 20}[scale]
        stages.append(Stage("soft-labels", SoftLabelsConfig(
            teacher=str(teacher_ckpt), dataset=entry["dataset"], data_root=data_root,
            sigma=teacher["sigma"], num_noise=draws,
            input_normalization=teacher["normalization"],
            train_subset=subset.get("train_subset"), out=str(soft), progress=False)))
        options["soft_targets"] = str(soft)
    stages.append(Stage("train", TrainConfig(options=options, **train)))
    return stages + certify_stages(entry, run_dir / CHECKPOINT_NAME, out, scale, data_root,
                                   paper_logs)
