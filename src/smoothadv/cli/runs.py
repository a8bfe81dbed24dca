"""``smoothadv runs [FOLDER…]``: an index of the run folders and record files below folders,
with their settings, state and headline figures, filtered by config fields."""

from __future__ import annotations

import argparse

from .common import command


def _runs_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("folders", nargs="*", default=["runs"],
                   help="folders to look in, every level below them (default: runs)")
    p.add_argument("--where", nargs="+", default=[], metavar="KEY=VALUE",
                   help="keep the runs whose config has these values, e.g. method=macer "
                        "sigma=0.5 (numbers compared as numbers; also stage=, state=done)")
    p.add_argument("--format", choices=["text", "json"], default="text",
                   help="text (default) or json (a list, for scripts)")


@command("runs", "an index of training runs and records below folders: settings, state "
         "(done / partial), headline figures; --where filters by config fields", _runs_args)
def run_runs(args: argparse.Namespace) -> int:
    import json

    from ..analysis.index import find_runs, render_index, where

    entries = where(find_runs(args.folders), args.where)
    if args.format == "json":
        print(json.dumps([e.as_dict() for e in entries], indent=1, default=str))
    else:
        print(render_index(entries))
    return 0
