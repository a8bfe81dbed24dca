"""The paper's models as runnable recipes.

``catalogue.json`` (shipped with the package) holds one entry per model of the SmoothAdv paper's
released certification logs: dataset, architecture, σ, method, attack and steps, ε (a plain ℓ2
radius, with the paper's eps_N beside it), m_train, multi-noise, warm-up, epochs and learning-rate
schedule, pre-training, self-training weight, the certification protocol, the log's path in the
authors' layout, the table cells the model wins, and notes where the paper's text and the logs
disagree or are silent. :func:`commands` turns an entry into the exact ``smoothadv`` commands
at one of three scales, and :mod:`smoothadv.cli.recipe_runner` runs them resumably.

Scales:

- ``full``: the paper's budget (its epochs, batch, architecture; n = 100,000): GPU days.
- ``small``: a CPU-hours budget: ResNet-20, a class-balanced subset of 2,000 training images,
  a tenth of the epochs (at least 10), 100 test inputs (every 100th) at n = 10,000.
- ``tiny``: a CPU-minutes smoke run: ResNet-20, 256 training images, 1 epoch, T ≤ 2 and
  m ≤ 2, 20 test inputs at n0 = 10, n = 100.

Every entry names the input layer its model was trained behind (``normalization``: the
authors' README gives ``center`` for the main SmoothAdv CIFAR-10 and all ImageNet models,
``normalize`` for Cohen et al.'s and the pre-/self-trained ones); training and certification
commands pass it. :func:`certify_commands` certifies a *released* checkpoint with the recipe's
protocol and layer (``smoothadv recipe certify``).
"""

from __future__ import annotations

import difflib
import json
import shlex
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path

from ..errors import UserError

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

    return catalogue() + baselines()


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
    """One step of a recipe: its name and the ``smoothadv`` arguments it runs."""

    name: str
    argv: tuple[str, ...]

    @property
    def command(self) -> str:
        return "smoothadv " + " ".join(shlex.quote(a) for a in self.argv)


def _protocol(entry: dict, scale: str) -> list[str]:
    """certify's sampling options for a recipe at ``scale``."""
    cert = entry["certification"]
    if scale == "full":
        return ["--n0", str(cert["n0"]), "--n", str(cert["n"]), "--skip", str(cert["skip"])]
    if scale == "small":
        return ["--n0", "100", "--n", "10000", "--skip", "100"]
    return ["--n0", "10", "--n", "100", "--skip", "500", "--batch", "200"]


def protocol_n(entry: dict, scale: str) -> int:
    """The certification sample count n of a recipe at ``scale``."""
    args = _protocol(entry, scale)
    return int(args[args.index("--n") + 1])


def certify_radii(entry: dict) -> list[str]:
    """The radii of the paper's table for the recipe's data set, 0 first (as strings)."""
    return ("0 0.25 0.5 0.75 1.0 1.25 1.5 1.75 2.0 2.25" if entry["dataset"] == "cifar10"
            else "0 0.5 1.0 1.5 2.0 2.5 3.0 3.5").split()


def certify_commands(entry: dict, checkpoint: str | Path, out: str | Path, scale: str = "full",
                     data_root: str | None = None, paper_logs: str | Path | None = None,
                     extra: tuple[str, ...] = ()) -> list[Stage]:
    """certify → analyze (→ compare with the paper's log) for ``checkpoint`` with the recipe's
    protocol at ``scale`` and its input layer; ``extra`` are more certify options (e.g.
    ``--skip``, ``--max``, ``--sequential``), later ones overriding the protocol's."""
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; choose {', '.join(SCALES)}")
    out = Path(out)
    record = out / "certify.tsv"
    data = ["--data-root", data_root] if data_root else []
    radii = certify_radii(entry)
    certify = ["certify", str(checkpoint), "--dataset", entry["dataset"], *data, "--sigma",
               f"{entry['sigma']:g}", "--alpha", f"{entry['certification']['alpha']:g}",
               "--input-normalization", entry["normalization"], "--out", str(record),
               "--no-progress", *_protocol(entry, scale), *extra]
    stages = [Stage("certify", tuple(certify)),
              Stage("analyze", ("analyze", str(record), "--radii", *radii))]
    if paper_logs is not None and entry["paper_log"] is not None:
        stages.append(Stage("compare", ("compare", str(record), "--reference",
                                        str(reference_log(entry, paper_logs)), "--radii",
                                        *radii[1:])))
    return stages


def reference_log(entry: dict, logs: str | Path) -> Path:
    """The published log of ``entry`` under ``logs`` (the paper's logs folder, or the
    baseline logs folder for the baselines)."""
    if entry["group"] == "baselines":
        return Path(logs) / entry["paper_log"]
    return Path(logs) / entry["group"] / entry["paper_log"]


HPARAM_FLAGS = {"lbd": "--lbd", "eta": "--eta", "gamma": "--gamma", "beta": "--beta",
                "alpha": "--alpha", "mix_step": "--mix-step", "deferred": "--deferred"}


def _method_args(entry: dict, steps: int | None, m: int, warmup: int) -> list[str]:
    """train's method options for an entry (steps and m already scaled)."""
    method = entry["method"]
    if method == "gaussian":
        return ["--method", "gaussian"]
    args = ["--method", method, "--m-train", str(m)]
    if method == "smoothadv":
        args += ["--attack", entry["attack"], "--epsilon", f"{entry['epsilon']:.10g}",
                 "--steps", str(steps), "--warmup", str(warmup)]
        if entry["multi_noise"]:
            args.append("--multi-noise")
        return args
    if steps is not None:
        args += ["--steps", str(steps)]
    if entry["epsilon"] is not None:
        args += ["--epsilon", f"{entry['epsilon']:.10g}"]
    for key, value in entry.get("hparams", {}).items():
        args += [HPARAM_FLAGS[key], f"{value:g}"]
    return args


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


def commands(entry: dict, out: str | Path, scale: str = "full", data_root: str | None = None,
             paper_logs: str | Path | None = None, pretrained: str | None = None,
             extra_data: str | None = None) -> list[Stage]:
    """The stages of a recipe at ``scale``: train, certify, analyze and (with the paper's logs)
    compare, writing under ``out``."""
    if scale not in SCALES:
        raise UserError(f"unknown scale {scale!r}; choose {', '.join(SCALES)}")
    out = Path(out)
    run_dir = out / "train"
    data = ["--data-root", data_root] if data_root else []
    train = ["train", "--dataset", entry["dataset"], *data, "--sigma", f"{entry['sigma']:g}",
             "--input-normalization", entry["normalization"], "--out", str(run_dir),
             "--resume", "--no-progress"]
    epochs, lr_step, warmup = entry["epochs"], entry["lr_step"], entry["warmup"]
    steps, m = entry["steps"], entry["m_train"]
    arch, batch = entry["arch"], entry["batch"]
    milestones = entry.get("lr_milestones")
    subset = []
    if scale != "full":
        arch = "cifar_resnet20" if entry["dataset"] == "cifar10" else arch
        if scale == "small":
            epochs = max(10, epochs // 10)
            subset = ["--train-subset", "2000", "--test-subset", "500"]
            batch = min(batch, 128)
        else:
            epochs = 1
            steps = None if steps is None else min(steps, 2)
            m = min(m, 2)
            batch = 64
            subset = ["--train-subset", "256", "--test-subset", "64", "--eval-adv-max", "16"]
        lr_step = max(1, round(lr_step * epochs / entry["epochs"]))
        warmup = min(warmup, max(0, epochs // 10))
        if milestones:
            milestones = [max(1, round(v * epochs / entry["epochs"])) for v in milestones]
    train += subset + ["--arch", arch, "--epochs", str(epochs), "--batch", str(batch), "--lr",
                       f"{entry['lr']:g}", "--lr-step", str(lr_step), "--lr-gamma",
                       f"{entry['lr_gamma']:g}"]
    if entry.get("lr_delay"):
        train += ["--lr-delay", str(entry["lr_delay"])]
    if entry.get("weight_decay", 1e-4) != 1e-4:
        train += ["--weight-decay", f"{entry['weight_decay']:g}"]
    if milestones:
        train += ["--lr-milestones", *map(str, milestones)]
    train += _method_args(entry, steps, m, warmup)
    stages: list[Stage] = []
    if entry["pretraining"]:
        if pretrained is None:  # the pre-training the paper did, for `recipe show`
            pre_dir = out / "pretrain"
            stages.append(Stage("pretrain", (
                "train", "--dataset", "imagenet32", "--data-root", "IMAGENET32_ROOT",
                "--arch", "imagenet32_resnet110", "--method", "smoothadv", "--attack",
                entry["pretraining"].split()[1].split("-")[1].lower(), "--steps",
                entry["pretraining"].split()[2], "--epsilon", f"{entry['epsilon']:.10g}",
                "--sigma", f"{entry['sigma']:g}", "--epochs", "150", "--lr-step", "50",
                "--input-normalization", entry["normalization"],
                "--out", str(pre_dir), "--resume")))
            pretrained = str(pre_dir / CHECKPOINT_NAME)
        train += ["--pretrained", pretrained]
    if entry["self_training_weight"] is not None:
        train += ["--extra-data", extra_data or "PSEUDO_LABELLED.pickle", "--extra-weight",
                  f"{entry['self_training_weight']:g}"]
    if entry.get("teacher"):  # CAT-RS: train the σ = 0.25 Gaussian teacher, then its p_b
        teacher = get_recipe(entry["teacher"])
        teacher_stages = commands(teacher, out / "teacher", scale, data_root)
        stages.append(Stage("teacher", teacher_stages[0].argv))
        teacher_ckpt = out / "teacher" / "train" / CHECKPOINT_NAME
        soft = out / "soft_targets.pt"
        draws = {"full": "10000", "small": "1000", "tiny": "20"}[scale]
        stages.append(Stage("soft-labels", (
            "soft-labels", "--teacher", str(teacher_ckpt), "--dataset", entry["dataset"],
            *data, "--sigma", f"{teacher['sigma']:g}", "--num-noise", draws,
            "--input-normalization", teacher["normalization"], *subset[:2], "--out",
            str(soft), "--no-progress")))
        train += ["--soft-targets", str(soft)]
    stages.append(Stage("train", tuple(train)))
    return stages + certify_commands(entry, run_dir / CHECKPOINT_NAME, out, scale, data_root,
                                     paper_logs)
