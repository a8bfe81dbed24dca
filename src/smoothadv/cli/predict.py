"""``smoothadv predict``: PREDICT (Cohen et al., Algorithm 1) over a data set."""

from __future__ import annotations

import argparse

from .common import command, run_eval, sampling_args


@command("predict", "classify inputs with PREDICT (Cohen et al., Algorithm 1)",
         lambda p: sampling_args(p, with_n0=False))
def run_predict(args: argparse.Namespace) -> int:
    return run_eval("predict", args)
