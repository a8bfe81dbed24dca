"""``smoothadv soft-labels``: CAT-RS's per-image vote distributions under a teacher."""

from __future__ import annotations

import argparse

from .common import add_common, add_normalization_arg, command, load_model


def _soft_args(p: argparse.ArgumentParser) -> None:
    from ..data import list_datasets

    p.add_argument("--teacher", required=True,
                   help="checkpoint of the teacher (CAT-RS: a σ = 0.25 Gaussian-trained model)")
    p.add_argument("--dataset", required=True, help=f"one of {', '.join(list_datasets())}")
    p.add_argument("--data-root", default=None, help="data folder (default: download)")
    p.add_argument("--sigma", type=float, default=0.25,
                   help="the teacher's noise σ (0.25, the CAT-RS authors' for every training σ)")
    p.add_argument("--num-noise", type=int, default=10_000,
                   help="noise draws per image (10000, the authors')")
    p.add_argument("--batch", type=int, default=1000, help="noisy samples per forward (1000)")
    p.add_argument("--train-subset", type=int, default=None,
                   help="only the images of train --train-subset N with the same --seed (the "
                        "other rows stay 0)")
    p.add_argument("--out", required=True,
                   help="output .pt; an interrupted run resumes from OUT.partial")
    add_normalization_arg(p)
    add_common(p)


@command("soft-labels", "per-image vote distributions of a teacher under noise (CAT-RS's p_b)",
         _soft_args)
def run_soft_labels(args: argparse.Namespace) -> int:
    from .. import distributed as D
    from ..data import create_dataset
    from ..errors import check_positive_int, check_sigma
    from ..smoothing import Smooth
    from ..soft_labels import soft_labels

    check_sigma(args.sigma)
    check_positive_int(args.num_noise, "--num-noise")
    check_positive_int(args.batch, "--batch")
    device = D.resolve_device(args.device)
    train = create_dataset(args.dataset, "train", args.data_root)
    labelled = create_dataset(args.dataset, "test", args.data_root)
    model, meta = load_model(args.teacher, args.input_normalization, labelled, args.sigma,
                             args.seed, device)
    smooth = Smooth(model, meta["num_classes"], args.sigma)
    indices = None
    if args.train_subset is not None:
        from ..data import subset_indices

        indices = subset_indices(train, args.train_subset, args.seed)
    path = soft_labels(smooth, train, args.out, num=args.num_noise, batch_size=args.batch,
                       seed=args.seed, indices=indices, progress=not args.no_progress)
    rows = len(train) if indices is None else len(indices)
    print(f"soft targets of {rows} of {len(train)} images ({args.num_noise} draws each) "
          f"written to {path}")
    return 0
