"""``smoothadv attack``: empirical robustness. Attack g with SmoothAdv, then PREDICT on the
attacked points (the paper's prediction script with ``--attack``)."""

from __future__ import annotations

import argparse

from .common import (
    EPS_HELP,
    ESTIMATOR_HELP,
    add_checkpoints,
    add_data_args,
    add_model_args,
    add_out_args,
    add_shared,
    stage_command,
)


def _attack_args(p: argparse.ArgumentParser) -> None:
    from ..attacks.smoothadv import DDN_DECISIONS, ESTIMATORS, list_attacks

    add_checkpoints(p)
    add_data_args(p)
    p.add_argument("--sigma", type=float, default=None,
                   help="noise level σ (default: the checkpoint's training σ)")
    p.add_argument("--attack", default="pgd", choices=list_attacks(),
                   help="SmoothAdv-PGD or SmoothAdv-DDN (default: pgd)")
    p.add_argument("--epsilon", type=float, default=0.5, help=f"{EPS_HELP} (default: 0.5)")
    p.add_argument("--steps", type=int, default=20, help="attack steps T (default: 20)")
    p.add_argument("--m-test", type=int, default=32, dest="num_noise", metavar="M",
                   help="noise draws m per input for the soft classifier (32)")
    p.add_argument("--estimator", default="grad", choices=ESTIMATORS, help=ESTIMATOR_HELP)
    p.add_argument("--no-grad-attack", dest="estimator", action="store_const",
                   const="no_grad", help="the paper's flag: same as --estimator no_grad")
    p.add_argument("--ddn-gamma", type=float, default=None,
                   help="DDN norm update factor γ (default: 1-(3/510/ε)^(1/T), the paper's "
                        "evaluation setting, no floor)")
    p.add_argument("--ddn-init-norm", type=float, default=1.0,
                   help="DDN initial norm budget, not capped at ε (default: 1.0, the paper's "
                        "256/256)")
    p.add_argument("--ddn-decision", default="vote", choices=DDN_DECISIONS,
                   help="DDN's 'already adversarial' test: vote (the paper: majority of the "
                        "m hard labels) or soft (a departure: argmax of G)")
    p.add_argument("--ddn-strict-epsilon", action="store_true",
                   help="a departure: DDN rounds its answer toward x so that it never leaves "
                        "the ε-ball (the paper rounds to nearest, which can exceed ε by a hair)")
    p.add_argument("--base-attack", action="store_true",
                   help="attack the base classifier without noise instead (for comparison)")
    p.add_argument("--attack-batch", type=int, default=16,
                   help="inputs attacked together; each forward holds this × m samples (16)")
    p.add_argument("--n", "--num-samples", dest="n", type=int, default=100_000,
                   help="PREDICT samples (100000); --num-samples under torchrun")
    add_shared(p, "--alpha", "--batch", "--log")
    add_out_args(p, "prediction record file on attacked points")
    p.add_argument("--save-examples", default=None, metavar="DIR",
                   help="write clean and attacked PNGs and a grid of the first ones here")
    add_model_args(p)


stage_command("attack", "empirical robustness: attack g with SmoothAdv, then PREDICT",
              _attack_args, "AttackConfig")
