"""``smoothadv recipe``: the paper's models as runnable recipes (list, show, run)."""

from __future__ import annotations

import argparse
import json

from .common import command
from .render import command_line


def _recipe_args(p: argparse.ArgumentParser) -> None:
    from ..recipes import SCALES

    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    ls = sub.add_parser("list", help="the catalogue of the paper's models")
    ls.add_argument("--dataset", choices=["cifar10", "imagenet"], default=None,
                    help="only recipes of this data set")
    ls.add_argument("--group", default=None,
                    help="a group of the paper's logs, e.g. cifar10/ours or cifar10/cohen, or "
                         "baselines (the training methods of the CAT-RS authors' table)")
    ls.add_argument("--method", default=None,
                    help="only recipes of this training method (e.g. macer, catrs)")
    ls.add_argument("--winners", action="store_true",
                    help="only models that win a cell of the paper's tables")
    ls.add_argument("--format", default="text", choices=["text", "markdown", "csv", "json"],
                    help="table format (default: text); json lists every field of each recipe")
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
                       help="the published logs (../shared/data/paper-logs for the paper's "
                            "models, ../shared/data/baseline-logs for the baselines): adds "
                            "compare")
        q.add_argument("--pretrained", default=None,
                       help="pre-training recipes: the ImageNet32 model to fine-tune")
        q.add_argument("--extra-data", default=None,
                       help="self-training recipes: the pseudo-labelled data")
    text = ("certify a released checkpoint with the recipe's protocol and input layer, "
            "analyse it and compare it with the paper's log; resumable")
    c = sub.add_parser("certify", help=text, description=text)
    c.add_argument("name", help="a recipe name from `smoothadv recipe list`")
    c.add_argument("checkpoint", nargs="?", default=None,
                   help="the released checkpoint (or give --released-models)")
    c.add_argument("--released-models", default=None, metavar="DIR",
                   help="the authors' extracted archive, laid out like the logs (the log's "
                        "path with test/sigma_σ replaced by checkpoint.pth.tar)")
    c.add_argument("--out", required=True, help="output folder")
    c.add_argument("--scale", default="full", choices=SCALES,
                   help="certification protocol: full (the paper's: n = 100,000 on every "
                        "image), small (n = 10,000, every 100th image) or tiny (n = 100); "
                        "default full")
    c.add_argument("--data-root", default=None, help="the data set's folder")
    c.add_argument("--paper-logs", default=None,
                   help="the paper's logs (e.g. ../shared/data/paper-logs): adds compare")
    c.add_argument("--skip", type=int, default=None, help="take every SKIP-th input instead")
    c.add_argument("--max", type=int, default=None, help="stop before this input index")
    c.add_argument("--sequential", action="store_true",
                   help="certify sequentially at the table's radii (see certify --help)")
    c.add_argument("--budget", type=int, default=None,
                   help="with --sequential: most samples per input (default: the protocol's n)")
    c.add_argument("--batch", type=int, default=None, help="noisy samples per forward")
    c.add_argument("--device", default=None, help="auto, cpu, cuda or cuda:N")


@command("recipe", "the paper's models as recipes: list, show and run them", _recipe_args)
def run_recipe_cmd(args: argparse.Namespace) -> int:
    from .. import analysis as A
    from .. import recipes as R

    if args.action == "list":
        entries = R.list_recipes(args.dataset, args.group, args.winners, args.method)
        if args.format == "json":
            print(json.dumps([{k: e[k] for k in (*R.FIELDS, "group", "lr_gamma", "batch",
                                                 "certification", "wins", "notes")}
                              for e in entries], indent=1))
            return 0
        head = ["name", "σ", "method", "attack", "T", "ε (ℓ2)", "eps_N", "m", "multi",
                "epochs", "layer", "wins"]
        rows = [[e["name"], f"{e['sigma']:g}", e["method"], e["attack"] or "",
                 "" if e["steps"] is None else str(e["steps"]),
                 "" if e["epsilon"] is None else f"{e['epsilon']:.3f}",
                 "" if e["epsilon_paper"] is None else str(e["epsilon_paper"]),
                 str(e["m_train"]), "yes" if e["multi_noise"] else "", str(e["epochs"]),
                 e["normalization"], str(len(e["wins"])) if e["wins"] else ""] for e in entries]
        print(A.render((head, rows), args.format))
        return 0
    entry = R.get_recipe(args.name)
    if args.action == "certify":
        return _certify_released(entry, args)
    out = args.out.replace("RECIPE", entry["name"])
    if args.action == "show":
        print(f"# {entry['name']} ({entry['group']}, scale {args.scale})")
        print(f"# {entry['notes']}")
        if entry["wins"]:
            print(f"# wins: {', '.join(entry['wins'])}")
        for stage in R.recipe_stages(entry, out, args.scale, args.data_root,
                                     args.paper_logs, args.pretrained, args.extra_data):
            print(command_line(stage.config))
        return 0
    from ..recipes.runner import run_recipe

    run_recipe(entry, out, args.scale, args.data_root, args.paper_logs, args.pretrained,
               args.extra_data)
    return 0


def _certify_released(entry: dict, args: argparse.Namespace) -> int:
    from .. import recipes as R
    from ..errors import UserError
    from ..recipes.runner import certify_released

    if (args.checkpoint is None) == (args.released_models is None):
        raise UserError("give the released checkpoint or --released-models DIR (one of them)")
    checkpoint = args.checkpoint or R.released_checkpoint(entry, args.released_models)
    if args.budget is not None and not args.sequential:
        raise UserError("--budget goes with --sequential")
    overrides = {k: getattr(args, k) for k in ("skip", "max", "batch", "device")
                 if getattr(args, k) is not None}
    if args.sequential:
        overrides.update(sequential=True,
                         radii=tuple(r for r in R.certify_radii(entry) if r > 0),
                         budget=args.budget or R.protocol_n(entry, args.scale))
    certify_released(entry, checkpoint, args.out, args.scale, args.data_root, args.paper_logs,
                     overrides)
    return 0
