"""Running a recipe: its stage configs in order, through the library (:mod:`smoothadv.stages`).

Training runs with ``resume`` (a finished run does nothing more, an interrupted one continues
from its last epoch), and certification appends to its record file (rows already written are
skipped), so running the same recipe again after any interruption continues where it stopped;
analysis and comparison are recomputed from the records. ``recipe.json`` under the output
folder lists the stages with their configs and content hashes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

from ..configs import config_document
from ..errors import UserError
from ..models import read_checkpoint
from ..stages import run_stage
from . import Stage, certify_stages, recipe_stages, scaled_arch


def run_recipe(entry: dict, out: str | Path, scale: str = "full", data_root: str | None = None,
               paper_logs: str | Path | None = None, pretrained: str | None = None,
               extra_data: str | None = None,
               say: Callable[[str], None] = print) -> list[Stage]:
    """Run every stage of ``entry`` at ``scale`` under ``out``; returns the stages run."""
    if entry["pretraining"] and pretrained is None:
        raise UserError(f"recipe {entry['name']} fine-tunes a model pre-trained on "
                        "ImageNet32: give --pretrained CKPT (recipe show prints the "
                        "pre-training command)")
    if entry["self_training_weight"] is not None and extra_data is None:
        raise UserError(f"recipe {entry['name']} self-trains on pseudo-labelled data: give "
                        "--extra-data FILE (Carmon et al.'s pickle or smoothadv pseudo-label's "
                        "output)")
    stages = recipe_stages(entry, out, scale, data_root, paper_logs, pretrained, extra_data)
    return run_stages(entry, out, scale, stages, say)


def certify_released(entry: dict, checkpoint: str | Path, out: str | Path, scale: str = "full",
                     data_root: str | None = None, paper_logs: str | Path | None = None,
                     overrides: dict | None = None,
                     say: Callable[[str], None] = print) -> list[Stage]:
    """Certify a released ``checkpoint`` with the recipe's protocol and input layer, analyse
    it and (with ``paper_logs``) compare it with the paper's log; resumable like a recipe."""
    if not Path(checkpoint).is_file():
        raise UserError(f"checkpoint not found: {checkpoint}")
    arch = read_checkpoint(checkpoint)["arch"]
    scaled = scaled_arch(entry, scale)
    if arch not in (entry["arch"], scaled):
        raise UserError(f"recipe {entry['name']} is a {entry['arch']}, {checkpoint} a {arch}: "
                        "certify it with smoothadv certify, or pick the recipe of its model")
    if arch != entry["arch"]:
        say(f"[{entry['name']} · {scale}] {checkpoint} is a {arch}, the architecture this "
            f"recipe trains at scale {scale} (the paper's model is a {entry['arch']})")
    stages = certify_stages(entry, checkpoint, out, scale, data_root, paper_logs, overrides)
    return run_stages(entry, out, scale, stages, say)


def run_stages(entry: dict, out: str | Path, scale: str, stages: list[Stage],
               say: Callable[[str], None] = print) -> list[Stage]:
    """Run ``stages`` in order in this process (``recipe.json`` under ``out`` lists them); a
    failing stage stops the run, and running the recipe again continues from there."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.json").write_text(json.dumps(
        {"recipe": entry, "scale": scale,
         "stages": [{"name": s.name, **config_document(s.config)} for s in stages]},
        indent=1) + "\n")
    for stage in stages:
        say(f"[{entry['name']} · {scale}] {stage.name} ({stage.config.content_hash()})")
        t0 = time.perf_counter()
        result = run_stage(stage.config)
        if result.text:
            say(result.text)
        say(f"[{entry['name']} · {scale}] {stage.name} done in {time.perf_counter() - t0:.0f} s")
    return stages
