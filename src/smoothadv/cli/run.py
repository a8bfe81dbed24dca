"""``smoothadv run FILE.json``: run any stage from its config file (what every run keeps in
its folder or beside its record file, or a file another program wrote)."""

from __future__ import annotations

import argparse
import json

from .common import command, run_config


def _run_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", help="a stage's config: {\"stage\": NAME, \"config\": {...}} (a "
                                  "run's config.json or a record's .config.json works as is)")
    p.add_argument("--show", action="store_true",
                   help="print the resolved config and its content hash instead of running")


@command("run", "run any stage from its JSON config file", _run_args)
def run_file(args: argparse.Namespace) -> int:
    from ..configs import config_document
    from ..stages import load_config

    config = load_config(args.config)
    if args.show:
        print(json.dumps(config_document(config), indent=2, ensure_ascii=False))
        return 0
    return run_config(config)
