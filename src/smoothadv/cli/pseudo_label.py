"""``smoothadv pseudo-label``: label unlabelled images with a teacher, for self-training."""

from __future__ import annotations

import argparse

from .common import add_common, add_normalization_arg, command, load_model


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


@command("pseudo-label", "label unlabelled images with a teacher for self-training",
         _pseudo_args)
def run_pseudo_label(args: argparse.Namespace) -> int:
    from .. import distributed as D
    from ..data import create_dataset
    from ..errors import UserError
    from ..train import pseudo_label

    if args.input_normalization == "auto":
        raise UserError("pseudo-label cannot measure the teacher's input layer (its images "
                        "carry no labels): give --input-normalization normalize|center|none")
    device = D.resolve_device(args.device)
    teacher, _ = load_model(args.teacher, args.input_normalization, None, None, args.seed,
                            device)
    dataset = create_dataset(args.dataset, args.split, args.data_root)
    path = pseudo_label(teacher, dataset, args.out, args.batch, not args.no_progress)
    print(f"pseudo-labels of {len(dataset)} images written to {path}")
    return 0


