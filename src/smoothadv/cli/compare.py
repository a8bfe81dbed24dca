"""``smoothadv compare``: certified-accuracy curves of record files against a reference (e.g.
the paper's own log), with the difference and its 95% interval at each radius."""

from __future__ import annotations

import argparse

from .common import add_shared, stage_command


def _compare_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("ours", nargs="+", help="certification record files (ours or the paper's)")
    p.add_argument("--reference", required=True,
                   help="the record file to compare with (e.g. a paper log under "
                        "../shared/data/paper-logs)")
    p.add_argument("--radii", type=float, nargs="+", default=None,
                   help="radii (default: steps of 0.25 up to min(2.25, 4σ) for the records' σ, "
                        "the paper's CIFAR-10 table at σ = 1)")
    add_shared(p, "--format")
    p.add_argument("--allow-mixed", action="store_true",
                   help="compare records computed at different --precision (refused otherwise: "
                        "they certify different base classifiers)")
    add_shared(p, "--mix-threats", "--as-written")

stage_command("compare", "compare record files with a reference: differences of certified accuracy "
              "with 95% intervals, ACR, per-image agreement", _compare_args, "CompareConfig")
