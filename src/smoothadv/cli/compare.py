"""``smoothadv compare``: certified-accuracy curves of record files against a reference (e.g.
the paper's own log), with the difference and its 95% interval at each radius."""

from __future__ import annotations

import argparse

from .common import stage_command


def _compare_args(p: argparse.ArgumentParser) -> None:
    from ..analysis.tables import list_formats

    p.add_argument("ours", nargs="+", help="certification record files (ours or the paper's)")
    p.add_argument("--reference", required=True,
                   help="the record file to compare with (e.g. a paper log under "
                        "../shared/data/paper-logs)")
    p.add_argument("--radii", type=float, nargs="+", default=None,
                   help="radii (default: steps of 0.25 up to min(2.25, 4σ) for the records' σ, "
                        "the paper's CIFAR-10 table at σ = 1)")
    p.add_argument("--format", default="text", choices=list_formats(),
                   help="table format (default: text); csv/json carry ours, reference, "
                        "difference, low and high per radius")
    p.add_argument("--allow-mixed", action="store_true",
                   help="compare records computed at different --precision (refused otherwise: "
                        "they certify different base classifiers)")
    p.add_argument("--mix-threats", action="store_true",
                   help="put records of different threat models in one table (radii on ℝ^d, "
                        "on the box [0,1]^d with --box, on the 8-bit grid with --derandomized: "
                        "refused otherwise, since their balls hold different images)")
    p.add_argument("--as-written", action="store_true",
                   help="compare written radii as the paper's analysis did (see analyze)")


stage_command("compare", "compare record files with a reference: differences of certified accuracy "
              "with 95% intervals, ACR, per-image agreement", _compare_args, "CompareConfig")
