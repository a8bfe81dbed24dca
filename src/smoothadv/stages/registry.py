"""The registry of stages: each stage's config class and the library function that runs it,
and reading a config back from its JSON file (``smoothadv run FILE.json``)."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..configs import StageConfig
from ..errors import UserError
from ..registry import Registry
from ..runtime import distributed as D


@dataclass(frozen=True)
class StageResult:
    """What a stage produced: its main output (a checkpoint, a record file, …) and the text
    the command line prints."""

    path: Path | None
    text: str = ""


@dataclass(frozen=True)
class Stage:
    config: type[StageConfig]
    run: Callable[[Any], StageResult]


STAGES: Registry[Stage] = Registry("stage")


def register_stage(config: type[StageConfig], run: Callable[[Any], StageResult]) -> None:
    STAGES.add(config.stage, Stage(config, run))


def list_stages() -> list[str]:
    return STAGES.names()


def run_stage(config: StageConfig) -> StageResult:
    """Run ``config`` with its stage's library function."""
    return STAGES.get(config.stage).run(config)


def config_from_document(document: dict[str, Any]) -> StageConfig:
    """The config of a JSON document: ``{"stage": NAME, "config": {...}}`` (what every run
    writes, extra keys beside ``config`` ignored) or ``{"stage": NAME, option: value, …}``."""
    if not isinstance(document, dict) or "stage" not in document:
        raise UserError("a config file is a JSON object with a \"stage\" key (one of "
                        f"{', '.join(list_stages())})")
    stage = STAGES.get(document["stage"])
    body = document.get("config")
    if body is None:
        body = {k: v for k, v in document.items() if k != "stage"}
    return stage.config.from_dict(body)


def load_config(path: str | Path) -> StageConfig:
    """The config kept in ``path`` (a run's ``config.json``, a record's ``.config.json`` or a
    file written by hand or by another program)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise UserError(f"{path} is not JSON: {err}") from None
    return config_from_document(document)


def result_setting(document: dict[str, Any]) -> dict[str, Any] | None:
    """What a config document computes, less its seed and the files it reads: the stage's
    result fields (those its content hash is taken of), with the fields added later at their
    default where an older document lacks them; None for a document of no known stage."""
    try:
        cls = STAGES.get(document["stage"]).config
    except (UserError, KeyError):  # a stage this version does not know
        return None
    config = document["config"]
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        marked = f.metadata.get("input")
        if not f.metadata.get("result", True) or f.name == "seed" or marked is True:
            continue
        default = (f.default if f.default is not dataclasses.MISSING else
                   f.default_factory() if f.default_factory is not dataclasses.MISSING
                   else None)
        value = config.get(f.name, default)
        if marked and isinstance(value, dict):
            value = {k: v for k, v in value.items() if k not in marked}
        out[f.name] = value
    return out


def say(message: str) -> None:
    """One informational line on stderr, from the main process only."""
    if D.is_main():
        print(f"smoothadv: {message}", file=sys.stderr)
