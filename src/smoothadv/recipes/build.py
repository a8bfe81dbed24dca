"""Write ``catalogue.json`` from the paper's released logs (``python -m
smoothadv.recipes.build PAPER_LOGS``): one entry per log, its facts from the folder names
(:func:`~smoothadv.recipes.paperlogs.parse_log_path`), the training schedule from the paper's
text, the certification protocol, and the table cells the model wins. Run once by the
maintainers; users read the catalogue, not the logs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from .. import analysis as A
from .paperlogs import parse_log_path

GROUPS = {  # group folder: (short name, table radii)
    "cifar10/cohen": ("cohen", (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25)),
    "cifar10/ours": ("smoothadv", (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25)),
    "cifar10/ours_pretraining": ("pre", (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25)),
    "cifar10/ours_selftraining": ("self", (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25)),
    "cifar10/ours_pretraining_selftraining": ("pre-self",
                                              (0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25)),
    "imagenet/replication": ("cohen", (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)),
    "imagenet/PGD_1step": ("smoothadv", (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)),
    "imagenet/DDN_2steps": ("smoothadv", (0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5)),
}

SCHEDULES = {
    # (dataset, kind): the paper's text (Salman et al. 2019, appendix) and its code's defaults
    ("cifar10", "scratch"): dict(epochs=150, lr=0.1, lr_step=50, lr_gamma=0.1, batch=256,
                                 warmup=10),
    ("cifar10", "cohen"): dict(epochs=90, lr=0.1, lr_step=30, lr_gamma=0.1, batch=256,
                               warmup=0),
    ("cifar10", "finetune"): dict(epochs=30, lr=0.1, lr_step=10, lr_gamma=0.1, batch=256,
                                  warmup=10),
    ("imagenet", "scratch"): dict(epochs=90, lr=0.1, lr_step=30, lr_gamma=0.1, batch=400,
                                  warmup=1),
    ("imagenet", "cohen"): dict(epochs=90, lr=0.1, lr_step=30, lr_gamma=0.1, batch=400,
                                warmup=0),
}

NOTES = {
    ("cifar10", "scratch"): "150 epochs, lr 0.1 ×0.1 every 50, batch 256 and a 10-epoch ε "
                            "warm-up are the paper's text; the code's own --warmup default is 1.",
    ("cifar10", "cohen"): "Cohen et al.'s released CIFAR-10 model (their training: 90 epochs, "
                          "lr 0.1 ×0.1 every 30, batch 256).",
    ("cifar10", "finetune"): "Fine-tuned for 30 epochs (folder name) from an ImageNet32 model "
                             "trained with SmoothAdv; the fine-tuning learning-rate schedule "
                             "is not in the logs' names and not restated in the paper: lr 0.1 "
                             "×0.1 every 10 epochs is our assumption.",
    ("imagenet", "scratch"): "ResNet-50, 90 epochs, lr 0.1 ×0.1 every 30; batch 400 is Cohen "
                             "et al.'s ImageNet setting (the SmoothAdv paper does not restate "
                             "it); the ε warm-up length is not stated (1 epoch, the code's "
                             "default, assumed).",
    ("imagenet", "cohen"): "Cohen et al.'s released ImageNet model (90 epochs, lr 0.1 ×0.1 "
                           "every 30, batch 400), re-certified by the SmoothAdv authors.",
}


# The input layer each released model was trained behind, by the folder of the authors'
# archive (their README): Cohen et al.'s models and the SmoothAdv pre-trained and self-trained
# CIFAR-10 models used NormalizeLayer; every other SmoothAdv model (the main CIFAR-10 ones and
# all ImageNet ones) the InputCenterLayer.
NORMALIZE_FOLDERS = ("cifar10/finetune_cifar_from_imagenetPGD2steps/", "cifar10/self_training/")


def archive_normalization(group: str, paper_log: str) -> str:
    """``normalize`` or ``center``: the input layer of the model behind a log of ``group``
    whose path (relative to the group) is ``paper_log``."""
    if group in ("cifar10/cohen", "imagenet/replication"):
        return "normalize"
    return "normalize" if paper_log.startswith(NORMALIZE_FOLDERS) else "center"


def _name(group_short: str, f: dict) -> str:
    if f["method"] == "gaussian":
        return f"{f['dataset']}-gaussian-s{f['sigma']:.2f}"
    parts = [f["dataset"]]
    if group_short != "smoothadv":
        parts.append(group_short)
    if f["self_training_weight"] is not None:
        parts.append(f"w{f['self_training_weight']:g}")
    parts.append(f"{f['attack']}{f['steps']}")
    if f["m_train"] > 1:
        parts.append(f"m{f['m_train']}")
    if f["multi_noise"]:
        parts.append("mn")
    parts.append(f"eps{f['epsilon_paper']}")
    parts.append(f"s{f['sigma']:.2f}")
    return "-".join(parts)


def build(root: Path) -> list[dict]:
    entries = []
    wins = _winners(root)
    for group, (short, _) in GROUPS.items():
        for log in sorted((root / group).rglob("sigma_*")):
            rel = log.relative_to(root / group).as_posix()
            f = parse_log_path(f"{group}/{rel}")
            kind = ("cohen" if f["method"] == "gaussian" else
                    "finetune" if f["pretraining"] else "scratch")
            schedule = dict(SCHEDULES[(f["dataset"], kind)])
            if f["finetune_epochs"] and kind == "finetune":
                schedule["epochs"] = f["finetune_epochs"]
            rows = len(log.read_text().splitlines()) - 1
            entry = {
                "name": _name(short, f), "group": group, "dataset": f["dataset"],
                "arch": f["arch"], "sigma": f["sigma"], "method": f["method"],
                "attack": f["attack"], "steps": f["steps"], "epsilon": f["epsilon"],
                "epsilon_paper": f["epsilon_paper"], "m_train": f["m_train"],
                "multi_noise": f["multi_noise"], **schedule,
                "normalization": archive_normalization(group, rel),
                "pretraining": f["pretraining"],
                "self_training_weight": f["self_training_weight"],
                "extra_data": ("Carmon et al.'s 500K pseudo-labelled TinyImages"
                               if f["self_training_weight"] is not None else None),
                "paper_log": rel,
                "certification": {"n0": 100, "n": 100_000, "alpha": 0.001,
                                  "skip": 1 if f["dataset"] == "cifar10" else 100,
                                  "images": ("all 10,000 CIFAR-10 test images"
                                             if f["dataset"] == "cifar10"
                                             else "500 ImageNet validation images, every "
                                                  "100th")},
                "log_rows": rows,
                "wins": wins.get(f"{group}/{rel}", []),
                "notes": NOTES[(f["dataset"], kind)]
                + (" Self-training: m_train and the extra data's schedule are not in the "
                   "logs' names (m = 1 assumed); labelled and pseudo-labelled batches "
                   "alternate with this weight on the latter." if f["self_training_weight"]
                   is not None else "")
                + (" The fine-tuning length is not in this log's folder names: 30 epochs "
                   "assumed, as the other fine-tuned models used." if kind == "finetune"
                   and not f["finetune_epochs"] else "")
                + (" This log holds a header only (no rows)." if rows == 0 else ""),
            }
            entries.append(entry)
    names = [e["name"] for e in entries]
    assert len(set(names)) == len(names), "catalogue names must be unique"
    return entries


def _winners(root: Path) -> dict[str, list[str]]:
    """{log path (with group): ['group r=0.25', …]} for every envelope cell of the paper's
    tables (radii compared as written, as the paper did)."""
    tables = {g: [g] for g in GROUPS if g not in ("imagenet/PGD_1step", "imagenet/DDN_2steps")}
    tables["imagenet/PGD_1step + imagenet/DDN_2steps"] = ["imagenet/PGD_1step",
                                                          "imagenet/DDN_2steps"]
    out: dict[str, list[str]] = {}
    for table, groups in tables.items():
        radii = GROUPS[groups[0]][1]
        summaries = A.load_summaries([root / g for g in groups], radii, warn=lambda m: None,
                                     as_written=True)
        paths = {s.label: s.path for s in summaries}
        for cell in A.envelope(summaries):
            rel = Path(paths[cell.label]).resolve().relative_to(root.resolve()).as_posix()
            out.setdefault(rel, []).append(f"{table} r={cell.radius:g}")
    return out


def main() -> None:
    root = Path(sys.argv[1])
    entries = build(root)
    target = Path(__file__).with_name("catalogue.json")
    target.write_text(json.dumps({"source": "Salman et al. (NeurIPS 2019): the paper's text "
                                  "and the folder names of its released certification logs",
                                  "models": entries}, indent=1) + "\n")
    print(f"{len(entries)} models written to {target}")


if __name__ == "__main__":
    main()
