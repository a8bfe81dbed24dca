"""``smoothadv analyze``: certified-accuracy tables, envelopes, ACR and plots from record
files, and empirical robust accuracy from attack records."""

from __future__ import annotations

import argparse

from .common import add_shared, stage_command


def _analyze_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("paths", nargs="+",
                   help="record files of certify, predict or attack; a folder means every one "
                        "below it")
    p.add_argument("--radii", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="radii of the table (default: 0 0.25 0.5 0.75 1.0)")
    p.add_argument("--labels", nargs="+", default=None, help="one label per record file")
    p.add_argument("--envelope", action="store_true",
                   help="best model per radius, with its clean accuracy (the paper's tables)")
    add_shared(p, "--format")
    p.add_argument("--plot", default=None, help="write certified-accuracy curves (.png/.pdf)")
    p.add_argument("--max-radius", type=float, default=None, help="x-axis limit of the plot")
    p.add_argument("--alpha", type=float, default=None,
                   help="the certificates' α: adds high-probability lower bounds")
    p.add_argument("--confidence", type=float, default=0.001,
                   help="γ of the lower bounds: they hold with probability ≥ 1−γ (0.001)")
    p.add_argument("--name", default="envelope", help="row name of the envelope table")
    add_shared(p, "--mix-threats", "--as-written")

stage_command("analyze", "certified-accuracy tables, envelopes, ACR and plots from record files "
              "(and empirical robust accuracy from attack records)",
              _analyze_args, "AnalyzeConfig")
