"""``smoothadv pseudo-label``: label unlabelled images with a teacher, for self-training."""

from __future__ import annotations

import argparse

from .common import add_common, add_device_args, add_normalization_arg, stage_command


def _pseudo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", required=True, help="checkpoint of the labelling model")
    p.add_argument("--dataset", default="folder", help="unlabelled images (default: folder)")
    p.add_argument("--data-root", default=None, help="folder of the unlabelled images")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--batch", type=int, default=256, help="images per forward (256)")
    p.add_argument("--out", required=True, help="output file (.pt)")
    add_normalization_arg(p, "the teacher's input layer: normalize, center or none (see "
                             "certify --help); default: the recorded one, else normalize (the "
                             "images here carry no labels to measure it with); the run prints "
                             "the layer it used")
    add_common(p)
    add_device_args(p, distributed=False)


stage_command("pseudo-label", "label unlabelled images with a teacher for self-training",
              _pseudo_args, "PseudoLabelConfig")
