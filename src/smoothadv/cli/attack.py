"""``smoothadv attack``: empirical robustness. Attack g with SmoothAdv, then PREDICT on the
attacked points (the paper's prediction script with ``--attack``)."""

from __future__ import annotations

import argparse

from .common import (
    add_attack_args,
    add_common,
    add_compile,
    add_data_args,
    add_denoise_args,
    add_normalization_arg,
    build_attack,
    command,
    run_eval,
)


def _attack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="model checkpoint (ours or the paper's .pth.tar); or give --classifier")
    add_data_args(p)
    p.add_argument("--sigma", type=float, default=None,
                   help="noise level σ (default: the checkpoint's training σ)")
    add_attack_args(p, "--m-test", 32, 20)
    p.add_argument("--base-attack", action="store_true",
                   help="attack the base classifier without noise instead (for comparison)")
    p.add_argument("--attack-batch", type=int, default=16,
                   help="inputs attacked together; each forward holds this × m samples (16)")
    p.add_argument("--n", "--num-samples", dest="n", type=int, default=100_000,
                   help="PREDICT samples (100000); --num-samples under torchrun")
    p.add_argument("--alpha", type=float, default=0.001, help="PREDICT's α (0.001)")
    p.add_argument("--batch", type=int, default=1000, help="noisy samples per forward (1000)")
    p.add_argument("--out", required=True,
                   help="prediction record file on attacked points; an existing one is resumed")
    p.add_argument("--save-examples", default=None, metavar="DIR",
                   help="write clean and attacked PNGs and a grid of the first ones here")
    add_normalization_arg(p)
    add_denoise_args(p)
    add_compile(p)
    add_common(p)


@command("attack", "empirical robustness: attack g with SmoothAdv, then PREDICT",
         _attack_args)
def run_attack(args: argparse.Namespace) -> int:
    return run_eval("attack", args, make_attack=_attack_hooks)


def _attack_hooks(smooth, args: argparse.Namespace):
    import torch

    from ..errors import check_positive_int
    from ..examples import ExampleSaver
    from ..smoothing import input_seed, make_generator

    check_positive_int(args.attack_batch, "--attack-batch")
    attack = build_attack(args)

    def run(x, y, idxs):
        if args.base_attack:  # the base classifier alone: one draw of zero noise
            noise = torch.zeros((x.shape[0], 1, *x.shape[1:]), device=x.device)
        else:
            noise = torch.cat([
                smooth.sample_noise(x[j : j + 1], args.num_noise,
                                    make_generator(input_seed(args.seed + 1, i), x.device))
                for j, i in enumerate(idxs)
            ])
        # random directions for zero gradients: seeded by the chunk, so resumes repeat them
        gen = make_generator(input_seed(args.seed + 2, idxs[0]), x.device)
        return attack(smooth, x, y, noise=noise, generator=gen)

    saver = ExampleSaver(args.save_examples) if args.save_examples else None
    hooks = dict(attack=run, on_attacked=saver, group=args.attack_batch)
    return hooks, (saver.finish if saver else None)
