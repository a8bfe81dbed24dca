"""``smoothadv train-denoiser``: a DnCNN for denoised smoothing (Salman et al. 2020)."""

from __future__ import annotations

import argparse

from .common import add_common, add_device_args, stage_command


def _args(p: argparse.ArgumentParser) -> None:
    from ..data.datasets import list_datasets

    p.add_argument("--dataset", required=True, help=f"one of {', '.join(list_datasets())}")
    p.add_argument("--data-root", default=None, help="data folder (default: download)")
    p.add_argument("--objective", default="mse", choices=["mse", "stab", "clf"],
                   help="mse: ‖D(x+δ) − x‖²; stab: CE(f(D(x+δ)), argmax f(x)) with the clean "
                        "input's hard label; clf: CE(f(D(x+δ)), y) (default mse)")
    p.add_argument("--sigma", type=float, default=0.25, help="noise level σ (0.25)")
    p.add_argument("--classifier", default=None,
                   help="stab/clf: the frozen classifier (a smoothadv checkpoint, timm:NAME"
                        "[:pretrained] or torchvision:NAME[:WEIGHTS])")
    p.add_argument("--surrogates", nargs="+", default=[],
                   help="query access: train stab against these classifiers round-robin, one "
                        "per mini-batch, never the certified one")
    p.add_argument("--init", default=None,
                   help="start from this denoiser (Stab+MSE: an MSE-trained DnCNN)")
    p.add_argument("--depth", type=int, default=None,
                   help="DnCNN depth (default: the --init denoiser's, else 17)")
    p.add_argument("--width", type=int, default=None,
                   help="DnCNN width (default: the --init denoiser's, else 64)")
    p.add_argument("--epochs", type=int, default=90, help="epochs (90)")
    p.add_argument("--batch", type=int, default=256, help="batch size (256)")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (1e-3)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay (1e-4)")
    p.add_argument("--lr-step", type=int, default=30, help="lr ×0.1 every N epochs (30)")
    p.add_argument("--train-subset", type=int, default=None,
                   help="train on a fixed class-balanced subset of this size")
    p.add_argument("--resume", action="store_true",
                   help="continue a run folder that records no configuration; a folder of the "
                        "same configuration always resumes")
    p.add_argument("--overwrite", action="store_true",
                   help="discard a run of another configuration in OUT and start this one")
    p.add_argument("--out", required=True, help="run directory")
    add_common(p)
    add_device_args(p, distributed=False)


stage_command("train-denoiser", "train a DnCNN denoiser so that any classifier can be certified",
              _args, "DenoiserConfig")
