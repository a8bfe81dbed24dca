"""``smoothadv soft-labels``: CAT-RS's per-image vote distributions under a teacher."""

from __future__ import annotations

import argparse

from .common import (
    add_common,
    add_device_args,
    add_normalization_arg,
    add_precision,
    add_shared,
    stage_command,
)


def _soft_args(p: argparse.ArgumentParser) -> None:
    from ..data.datasets import list_datasets

    p.add_argument("--teacher", required=True,
                   help="checkpoint of the teacher (CAT-RS: a σ = 0.25 Gaussian-trained model)")
    p.add_argument("--dataset", required=True, help=f"one of {', '.join(list_datasets())}")
    p.add_argument("--data-root", default=None, help="data folder (default: download)")
    p.add_argument("--sigma", type=float, default=0.25,
                   help="the teacher's noise σ (0.25, the CAT-RS authors' for every training σ)")
    p.add_argument("--n", "--num-noise", dest="num_noise", type=int, default=10_000,
                   help="noise draws per image, n as in certify (10000, the authors'; "
                        "--num-noise is the same)")
    add_shared(p, "--batch")
    p.add_argument("--train-subset", type=int, default=None,
                   help="only the images of train --train-subset N with the same --seed (the "
                        "other rows stay 0)")
    p.add_argument("--out", required=True,
                   help="output .pt; an interrupted run resumes from OUT.partial")
    add_normalization_arg(p)
    add_precision(p)
    add_common(p)
    add_device_args(p, distributed=False)


stage_command("soft-labels", "per-image vote distributions of a teacher under noise (CAT-RS's p_b)",
              _soft_args, "SoftLabelsConfig")
