"""``smoothadv compare``: certified-accuracy curves of record files against a reference (e.g.
the paper's own log), with the difference and its 95% interval at each radius."""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict

from .common import command, warn


def _compare_args(p: argparse.ArgumentParser) -> None:
    from ..analysis import list_formats

    p.add_argument("ours", nargs="+", help="certification record files (ours or the paper's)")
    p.add_argument("--reference", required=True,
                   help="the record file to compare with (e.g. a paper log under "
                        "../shared/data/paper-logs)")
    p.add_argument("--radii", type=float, nargs="+",
                   default=[0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25],
                   help="radii (default: the paper's CIFAR-10 table)")
    p.add_argument("--format", default="text", choices=list_formats(),
                   help="table format (default: text); csv/json carry ours, reference, "
                        "difference, low and high per radius")
    p.add_argument("--as-written", action="store_true",
                   help="compare written radii as the paper's analysis did (see analyze)")


@command("compare", "compare record files with a reference: differences of certified accuracy "
         "with 95% intervals, ACR, per-image agreement", _compare_args)
def run_compare(args: argparse.Namespace) -> int:
    from .. import analysis as A
    from ..compare import compare
    from ..errors import UserError
    from ..records import read_records

    if any(r < 0 for r in args.radii):
        raise UserError("--radii must be non-negative")
    reference = read_records(args.reference)
    if reference.is_empty:
        raise UserError(f"{args.reference}: the reference has a header only")
    results = []
    for path in args.ours:
        ours = read_records(path)
        if ours.is_empty:
            raise UserError(f"{path}: empty record file (header only)")
        results.append(compare(ours, reference, args.radii, args.as_written))
    if args.format == "json":
        print(json.dumps([asdict(c) for c in results], indent=1))
        return 0
    labels = _labels([c.ours for c in results] + [args.reference])
    head = ["file", "radius", "ours", "reference", "difference", "low", "high", "ours only",
            "reference only"]
    rows = []
    for c in results:
        for r in c.radii:
            rows.append([labels[c.ours], f"{r.radius:g}", f"{r.ours:.4f}", f"{r.reference:.4f}",
                         f"{r.difference:+.4f}", f"{r.low:+.4f}", f"{r.high:+.4f}",
                         "" if r.ours_only is None else str(r.ours_only),
                         "" if r.reference_only is None else str(r.reference_only)])
    print(A.render((head, rows), args.format))
    if args.format in ("text", "markdown"):
        print()
        for c in results:
            kind = ("paired (the same images)" if c.paired
                    else "independent (different images)")
            print(f"{labels[c.ours]} vs {labels[c.reference]}: {c.n_ours} vs {c.n_reference} "
                  f"inputs, "
                  f"95% intervals {kind}; ACR {c.acr_ours:.3f} vs {c.acr_reference:.3f}")
            if c.radius_agreement:
                a = c.radius_agreement
                print(f"  per image: same prediction {a['same_prediction']:.3f}; radii of the "
                      f"{a['both_correct']} inputs both got right differ by "
                      f"{a['mean_abs_radius_difference']:.3f} on average (correlation "
                      f"{a['radius_correlation']:.3f})")
    for c in results:
        for note in c.warnings:
            warn(f"smoothadv: warning: {c.ours}: {note}")
    return 0


def _labels(paths: list[str]) -> dict[str, str]:
    """Short, distinct names: each path relative to the files' common folder."""
    import os

    try:
        common = os.path.commonpath([os.path.abspath(p) for p in paths])
    except ValueError:
        return {p: p for p in paths}
    out = {}
    for p in paths:
        rel = os.path.relpath(os.path.abspath(p), common)
        out[p] = p if rel == "." else rel
    return out
