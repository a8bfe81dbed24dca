"""``smoothadv analyze``: certified-accuracy tables, envelopes, ACR and plots from record
files, and empirical robust accuracy from attack records."""

from __future__ import annotations

import argparse
import sys

from ..errors import UserError
from .common import command, warn


def _analyze_args(p: argparse.ArgumentParser) -> None:
    from ..analysis import list_formats

    p.add_argument("paths", nargs="+",
                   help="record files of certify, predict or attack; a folder means every one "
                        "below it")
    p.add_argument("--radii", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="radii of the table (default: 0 0.25 0.5 0.75 1.0)")
    p.add_argument("--labels", nargs="+", default=None, help="one label per record file")
    p.add_argument("--envelope", action="store_true",
                   help="best model per radius, with its clean accuracy (the paper's tables)")
    p.add_argument("--format", default="text", choices=list_formats(),
                   help="table format (default: text)")
    p.add_argument("--plot", default=None, help="write certified-accuracy curves (.png/.pdf)")
    p.add_argument("--max-radius", type=float, default=None, help="x-axis limit of the plot")
    p.add_argument("--alpha", type=float, default=None,
                   help="the certificates' α: adds high-probability lower bounds")
    p.add_argument("--confidence", type=float, default=0.001,
                   help="γ of the lower bounds: they hold with probability ≥ 1−γ (0.001)")
    p.add_argument("--name", default="envelope", help="row name of the envelope table")
    p.add_argument("--as-written", action="store_true",
                   help="compare radii as written, as the paper's analysis did (reproduces its "
                        "tables exactly); by default a radius rounded to nearest (the paper's "
                        "logs) loses half a unit in its last digit first, so a row written "
                        "0.500 is not counted at r=0.5. Our own files are rounded down and "
                        "unaffected")


@command("analyze", "certified-accuracy tables, envelopes, ACR and plots from record files "
         "(and empirical robust accuracy from attack records)",
         _analyze_args)
def run_analyze(args: argparse.Namespace) -> int:
    from .. import analysis as A

    if any(r < 0 for r in args.radii):
        raise UserError("--radii must be non-negative")
    files = A.expand_paths(args.paths, kinds=("certify", "predict"))
    labels = args.labels if args.labels is not None else [None] * len(files)
    if len(labels) != len(files):
        raise UserError(f"{len(labels)} labels for {len(files)} record files")
    groups: dict[str, tuple[list, list]] = {}
    for f, label in zip(files, labels):
        kind = A.record_kind(f)
        if kind is None:
            raise UserError(f"{f}: not a certification or prediction record file")
        groups.setdefault(kind, ([], []))
        groups[kind][0].append(f)
        groups[kind][1].append(label)
    if "certify" in groups:
        cert_files, cert_labels = groups["certify"]
        summaries = A.load_summaries(cert_files, args.radii,
                                     cert_labels if args.labels else None, args.alpha,
                                     args.confidence, warn=warn,
                                     as_written=args.as_written)
        cells = A.envelope(summaries) if args.envelope else None
        if cells is not None:
            print(A.render(A.envelope_table(cells, args.name), args.format))
            if args.format == "text":
                print()
                print(A.render(A.envelope_sources(cells), "text"))
        else:
            print(A.render(A.summary_table(summaries), args.format))
        if args.plot:
            path = A.plot_curves(summaries, args.plot, cells, max_radius=args.max_radius)
            print(f"plot written to {path}", file=sys.stderr)
    if "predict" in groups:
        pred_files, pred_labels = groups["predict"]
        empirical = A.load_empirical(pred_files, pred_labels if args.labels else None,
                                     warn=warn)
        if empirical:
            if "certify" in groups and args.format == "text":
                print("\nempirical robustness (PREDICT on attacked points):")
            print(A.render(A.empirical_table(empirical), args.format))
    return 0


