"""``smoothadv certify``: CERTIFY (Cohen et al., Algorithm 2) over a data set."""

from __future__ import annotations

import argparse

from .common import command, run_eval, sampling_args


@command("certify", "certify inputs with CERTIFY (Cohen et al., Algorithm 2)",
         lambda p: sampling_args(p, with_n0=True))
def run_certify(args: argparse.Namespace) -> int:
    return run_eval("certify", args)
