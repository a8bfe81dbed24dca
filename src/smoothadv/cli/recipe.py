"""``smoothadv recipe``: the paper's models as runnable recipes (list, show, run)."""

from __future__ import annotations

import argparse
import json

from .common import command


def _recipe_args(p: argparse.ArgumentParser) -> None:
    from ..recipes import SCALES

    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="the catalogue of the paper's models")
    ls.add_argument("--dataset", choices=["cifar10", "imagenet"], default=None)
    ls.add_argument("--group", default=None,
                    help="a group of the paper's logs, e.g. cifar10/ours or cifar10/cohen")
    ls.add_argument("--winners", action="store_true",
                    help="only models that win a cell of the paper's tables")
    ls.add_argument("--format", default="text", choices=["text", "markdown", "csv", "json"])
    for name, text in (("show", "the exact commands a recipe runs"),
                       ("run", "train → certify → analyse → compare, resumable")):
        q = sub.add_parser(name, help=text, description=text)
        q.add_argument("name", help="a recipe name from `smoothadv recipe list`")
        q.add_argument("--out", default=None if name == "run" else "runs/RECIPE",
                       required=name == "run", help="output folder")
        q.add_argument("--scale", default="full", choices=SCALES,
                       help="full (the paper's budget, GPU days), small (CPU hours) or tiny "
                            "(CPU minutes); default full")
        q.add_argument("--data-root", default=None, help="the data set's folder")
        q.add_argument("--paper-logs", default=None,
                       help="the paper's logs (e.g. ../shared/data/paper-logs): adds compare")
        q.add_argument("--pretrained", default=None,
                       help="pre-training recipes: the ImageNet32 model to fine-tune")
        q.add_argument("--extra-data", default=None,
                       help="self-training recipes: the pseudo-labelled data")


@command("recipe", "the paper's models as recipes: list, show and run them", _recipe_args)
def run_recipe_cmd(args: argparse.Namespace) -> int:
    from .. import analysis as A
    from .. import recipes as R

    if args.action == "list":
        entries = R.list_recipes(args.dataset, args.group, args.winners)
        if args.format == "json":
            print(json.dumps([{k: e[k] for k in (*R.FIELDS, "group", "lr_gamma", "batch",
                                                 "certification", "wins", "notes")}
                              for e in entries], indent=1))
            return 0
        head = ["name", "σ", "method", "attack", "T", "ε (ℓ2)", "eps_N", "m", "multi",
                "epochs", "wins"]
        rows = [[e["name"], f"{e['sigma']:g}", e["method"], e["attack"] or "",
                 "" if e["steps"] is None else str(e["steps"]),
                 "" if e["epsilon"] is None else f"{e['epsilon']:.3f}",
                 "" if e["epsilon_paper"] is None else str(e["epsilon_paper"]),
                 str(e["m_train"]), "yes" if e["multi_noise"] else "", str(e["epochs"]),
                 str(len(e["wins"])) if e["wins"] else ""] for e in entries]
        print(A.render((head, rows), args.format))
        return 0
    entry = R.get_recipe(args.name)
    out = args.out.replace("RECIPE", entry["name"])
    if args.action == "show":
        print(f"# {entry['name']} ({entry['group']}, scale {args.scale})")
        print(f"# {entry['notes']}")
        if entry["wins"]:
            print(f"# wins: {', '.join(entry['wins'])}")
        for stage in R.commands(entry, out, args.scale, args.data_root, args.paper_logs,
                                args.pretrained, args.extra_data):
            print(stage.command)
        return 0
    from ..recipes.runner import run_recipe

    run_recipe(entry, out, args.scale, args.data_root, args.paper_logs, args.pretrained,
               args.extra_data)
    return 0
