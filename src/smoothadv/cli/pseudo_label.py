"""``smoothadv pseudo-label``: label unlabelled images with a teacher, for self-training."""

from __future__ import annotations

import argparse

from .common import add_common, command


def _pseudo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--teacher", required=True, help="checkpoint of the labelling model")
    p.add_argument("--dataset", default="folder", help="unlabelled images (default: folder)")
    p.add_argument("--data-root", default=None, help="folder of the unlabelled images")
    p.add_argument("--split", default="train", choices=["train", "test"])
    p.add_argument("--batch", type=int, default=256, help="images per forward (256)")
    p.add_argument("--out", required=True, help="output file (.pt)")
    add_common(p)


@command("pseudo-label", "label unlabelled images with a teacher for self-training",
         _pseudo_args)
def run_pseudo_label(args: argparse.Namespace) -> int:
    from .. import distributed as D
    from ..data import create_dataset
    from ..models import load_checkpoint
    from ..train import pseudo_label

    device = D.resolve_device(args.device)
    teacher, _ = load_checkpoint(args.teacher, device=device)
    dataset = create_dataset(args.dataset, args.split, args.data_root)
    path = pseudo_label(teacher, dataset, args.out, args.batch, not args.no_progress)
    print(f"pseudo-labels of {len(dataset)} images written to {path}")
    return 0


