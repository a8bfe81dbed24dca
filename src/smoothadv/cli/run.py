"""``smoothadv run FILE.json``: run any stage from its config file (what every run keeps in
its folder or beside its record file, or a file another program wrote)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from .common import command, run_config


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="a stage's config: {\"stage\": NAME, \"config\": {...}} (a "
                                  "run's config.json or a record's .config.json works as is)")
    p.add_argument("--show", action="store_true",
                   help="print the resolved config and its content hash instead of running")


def started_in(path: Path, out: str) -> Path | None:
    """The folder a kept config's command ran in, found from the config's own place: a run's
    ``config.json`` lies in its ``out`` folder and a record's ``X.config.json`` beside its
    ``out`` file X, so the folder is where the relative ``out`` leads to them. None for a config
    whose ``out`` is absolute or does not lead to it (one written by hand: then the current
    folder)."""
    if not out or Path(out).is_absolute():
        return None
    path = path.resolve()
    if path.name == "config.json":
        target = path.parent
    elif path.name.endswith(".config.json"):
        target = path.with_name(path.name[: -len(".config.json")])
    else:
        return None
    parts = Path(os.path.normpath(out)).parts
    if not parts or parts == (".",):
        return target if path.name == "config.json" else None
    if target.parts[-len(parts):] != parts:
        return None
    return Path(*target.parts[: -len(parts)])


@command("run", "run any stage from its JSON config file", _run_args)
def run_file(args: argparse.Namespace) -> int:
    """The rule for paths: a kept config's relative paths (its ``out``, checkpoint, data and
    label files) are relative to the folder its command ran in; ``smoothadv run`` runs there,
    wherever it is started from, so a run resumes in its own folder instead of starting anew
    under the current one."""
    from ..configs import config_document
    from ..stages import load_config

    config = load_config(args.config)
    if args.show:
        print(json.dumps(config_document(config), indent=2, ensure_ascii=False))
        return 0
    base = started_in(Path(args.config), getattr(config, "out", "") or "")
    if base is not None and base.resolve() != Path.cwd().resolve():
        print(f"smoothadv: running in {base} (the folder {args.config}'s relative paths are "
              "relative to)", file=sys.stderr)
        os.chdir(base)
    return run_config(config)
