"""``smoothadv demo``: the main job on the bundled digits (Gaussian vs SmoothAdv, certified)."""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_common, command

# The options of `smoothadv demo`, declared once: flag → add_argument's keywords.
DEMO_OPTIONS: dict[str, dict[str, Any]] = {
    "--out": dict(default=None, help="run directory (default: runs/demo; the seven methods: "
                  "runs/demo_methods)"),
    "--sigmas": dict(type=float, nargs="+", default=None, help=(
        "noise levels σ to compare at (default: 0.25; --denoised and the seven methods: "
        "0.25 0.5; --norm l1: 0.5 1.0)")),
    "--epochs": dict(type=int, default=None, help=(
        "training epochs per model (60; the seven methods: 40, as selected)")),
    "--epsilon": dict(type=float, default=0.5,
                      help="SmoothAdv's ε, an l2 radius in pixel space (0.5)"),
    "--steps": dict(type=int, default=4, help="SmoothAdv's PGD steps T (4)"),
    "--m-train": dict(type=int, default=2, help="SmoothAdv's noise draws m (2)"),
    "--n": dict(type=int, default=100_000, help="certification samples (100000)"),
    "--batch": dict(type=int, default=1_000,
                    help="noisy samples per forward (1000: fastest for the MLP on a CPU)"),
    "--methods": dict(nargs="+", default=["gaussian", "smoothadv"], help=(
        "default gaussian smoothadv: the main job (the MLP). Any other list, or all: the "
        "training methods side by side (gaussian smoothadv stability macer consistency "
        "smoothmix catrs) on the digits_cnn, each with its lr and weight chosen on a validation "
        "split, over --seeds, with paired 95%% intervals against Gaussian")),
    "--seeds": dict(type=int, nargs="+", default=None,
                    help="the seven methods: training and certification seeds (0 1 2)"),
    "--workers": dict(type=int, default=None, help=(
        "the seven methods: stages run side by side, each with its share of the cores "
        "(default: 2, or 1 on one core)")),
    "--denoised": dict(action="store_true", help=(
        "denoised smoothing instead: a classifier trained without noise, certified alone, "
        "behind an MSE DnCNN and behind Stab+MSE, beside a Gaussian-trained model (Salman et "
        "al. 2020's pattern; σ 0.25 0.5 by default)")),
    "--norm": dict(choices=["l2", "l1"], default="l2", help=(
        "l1: ℓ1 certificates instead (Gaussian and uniform-noise training; uniform and "
        "box-constrained certificates beside the Gaussian model's ℓ2 radius; σ 0.5 1.0 by "
        "default)")),
    "--write-sweep": dict(metavar="FILE", default=None, help=(
        "write the demo's sweep file (the shipped grid with these options) to FILE and stop, "
        "e.g. for smoothadv sweep run FILE --engine slurm")),
    "--quick": dict(action="store_true",
                    help="n = 10,000 and half the epochs: about a fifth of the full run's time"),
}


def _demo_args(p: argparse.ArgumentParser) -> None:
    for flag, keywords in DEMO_OPTIONS.items():
        p.add_argument(flag, **keywords)
    add_common(p)


@command("demo", "the paper's central comparison at small scale (the main job): Gaussian "
         "augmentation vs SmoothAdv on scikit-learn's bundled digits, trained and certified",
         _demo_args)
def run_demo_cmd(args: argparse.Namespace) -> int:
    from ..errors import UserError, check_positive_int, check_sigma

    if args.norm == "l1" and args.denoised:
        raise UserError("--norm l1 and --denoised are two demos: give one")
    methods = _methods(args.methods)
    seven = not args.denoised and args.norm == "l2" and not set(methods) <= {
        "gaussian", "smoothadv"}
    if not seven and (args.seeds or args.workers):
        raise UserError("--seeds and --workers belong to the seven-method demo (--methods all)")
    for sigma in args.sigmas or []:
        check_sigma(sigma)
    for name in ("epochs", "steps", "m_train", "n", "batch", "workers"):
        if getattr(args, name) is not None:
            check_positive_int(getattr(args, name), f"--{name.replace('_', '-')}")
    if not args.epsilon >= 0:
        raise UserError(f"--epsilon must be a non-negative l2 radius, got {args.epsilon}")
    if seven:
        return _run_seven(args, methods)
    from ..demos.l1 import run_l1_demo
    from ..demos.main import DemoConfig, run_demo, run_denoised_demo

    l1 = args.norm == "l1"
    sigmas = args.sigmas or ([0.25, 0.5] if args.denoised else [0.5, 1.0] if l1 else [0.25])
    runner = run_l1_demo if l1 else run_denoised_demo if args.denoised else run_demo
    runner(DemoConfig(
        out=args.out or DemoConfig.out, sigmas=tuple(sigmas), epochs=args.epochs or 60,
        epsilon=args.epsilon, steps=args.steps, m_train=args.m_train, quick=args.quick,
        n=args.n, batch=args.batch, seed=args.seed, methods=tuple(methods), device=args.device,
        progress=not args.no_progress), write_sweep=args.write_sweep)
    return 0


def _methods(given: list[str]) -> list[str]:
    from ..demos.methods import ALL

    return list(ALL) if given == ["all"] else given


def _run_seven(args: argparse.Namespace, methods: list[str]) -> int:
    import os

    from ..demos.methods import EPOCHS, SEEDS, SIGMAS, MethodsDemo, run_methods_demo

    epochs = args.epochs or EPOCHS
    run_methods_demo(MethodsDemo(
        out=args.out or MethodsDemo.out, methods=tuple(methods),
        sigmas=tuple(args.sigmas or SIGMAS),
        seeds=tuple(args.seeds if args.seeds is not None else SEEDS),
        epochs=max(1, epochs // 2) if args.quick else epochs,
        n=10_000 if args.quick else args.n, batch=args.batch,
        workers=args.workers or min(2, os.cpu_count() or 1), device=args.device,
        progress=not args.no_progress), write_sweep=args.write_sweep)
    return 0
