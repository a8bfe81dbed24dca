"""``smoothadv predict``: PREDICT (Cohen et al., Algorithm 1) over a data set."""

from __future__ import annotations

from .common import sampling_args, stage_command

stage_command("predict", "classify inputs with PREDICT (Cohen et al., Algorithm 1)",
              lambda p: sampling_args(p, with_n0=False), "PredictConfig")
