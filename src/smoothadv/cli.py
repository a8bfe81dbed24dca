"""The ``smoothadv`` command line: sub-commands, each thin over the library.

Arguments are parsed inside :func:`main` only. Every sub-command registers itself with
:func:`command`; user errors print one line (``smoothadv: error: …``) and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from .errors import UserError

EPS_HELP = (
    "l2 radius in pixel space (images in [0,1]); the paper's code used units of 1/256: "
    "its eps_64 is 0.25, eps_127 0.496, eps_255 0.996, eps_512 2.0"
)

_COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Decorator: register ``run(args) -> int`` as sub-command ``name``."""

    def wrap(run: Callable[[argparse.Namespace], int]) -> Callable:
        _COMMANDS[name] = (help, add_arguments, run)
        return run

    return wrap


# ----------------------------------------------------------------------------- helpers


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Dataset and selection options of certify, predict and attack."""
    from .data import list_datasets

    p.add_argument("--dataset", default=None,
                   help=f"one of {', '.join(list_datasets())} (default: the checkpoint's)")
    p.add_argument("--data-root", default=None,
                   help="data folder (e.g. ../shared/data/cifar10); default: download to the cache")
    p.add_argument("--split", default="test", choices=["train", "test"],
                   help="dataset split (default: test)")
    p.add_argument("--skip", type=int, default=1, help="take every SKIP-th input (default: 1)")
    p.add_argument("--max", "--max-index", dest="max", type=int, default=-1,
                   help="stop before this input index, -1 for all (default: -1); "
                        "--max-index under torchrun")


def write_config(path: Path, args: argparse.Namespace, **extra: Any) -> None:
    """Write the resolved configuration (arguments plus derived values) as JSON."""
    from . import distributed as D

    if not D.is_main():
        return
    config = {k: v for k, v in vars(args).items() if k != "func"}
    config.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")


def validate_sampling_args(args: argparse.Namespace) -> None:
    """Check numeric arguments before anything is loaded, so mistakes fail at once."""
    from .errors import check_alpha, check_positive_int, check_sigma

    if getattr(args, "sigma", None) is not None:
        check_sigma(args.sigma)
    check_alpha(args.alpha)
    check_positive_int(args.n, "--n")
    check_positive_int(args.batch, "--batch")
    if hasattr(args, "n0"):
        check_positive_int(args.n0, "--n0")
        if args.n0 > args.n:
            raise UserError(f"--n0 ({args.n0}) must not exceed --n ({args.n})")
    if args.skip < 1:
        raise UserError(f"--skip must be at least 1, got {args.skip}")


def load_for_eval(args: argparse.Namespace):
    """(smooth, dataset, meta, device) from a checkpoint and the data arguments."""
    from . import distributed as D
    from .data import create_dataset, get_dataset_spec
    from .models import load_checkpoint
    from .smoothing import Smooth

    device = D.resolve_device(args.device)
    D.init_process_group(device)
    model, meta = load_checkpoint(args.checkpoint, device=device)
    name = args.dataset or meta.get("dataset")
    if name is None:
        raise UserError("the checkpoint names no dataset: give --dataset")
    spec = get_dataset_spec(name)
    dataset = create_dataset(name, args.split, args.data_root)
    sigma = args.sigma if args.sigma is not None else meta.get("sigma")
    if sigma is None:
        raise UserError("the checkpoint records no sigma: give --sigma")
    if spec.num_classes and spec.num_classes != meta["num_classes"]:
        raise UserError(
            f"checkpoint has {meta['num_classes']} classes, dataset {name} {spec.num_classes}"
        )
    return Smooth(model, meta["num_classes"], sigma), dataset, meta, device


# ------------------------------------------------------------------- certify / predict


def _sampling_args(p: argparse.ArgumentParser, with_n0: bool) -> None:
    """Options of certify and predict (the paper's names and defaults)."""
    p.add_argument("checkpoint", help="model checkpoint (ours or the paper's .pth.tar)")
    add_data_args(p)
    p.add_argument("--sigma", type=float, default=None,
                   help="noise level σ (default: the checkpoint's training σ)")
    if with_n0:
        p.add_argument("--n0", type=int, default=100, help="samples to select the class (100)")
    p.add_argument("--n", "--num-samples", dest="n", type=int, default=100_000,
                   help="noise samples (CERTIFY: those estimating p_A; 100000); under "
                        "torchrun write --num-samples, since torchrun takes --n for its own")
    p.add_argument("--alpha", type=float, default=0.001, help="failure probability (0.001)")
    p.add_argument("--batch", type=int, default=1000, help="noisy samples per forward (1000)")
    p.add_argument("--out", required=True, help="record file (TSV); an existing one is resumed")
    add_common(p)


@command("certify", "certify inputs with CERTIFY (Cohen et al., Algorithm 2)",
         lambda p: _sampling_args(p, with_n0=True))
def run_certify(args: argparse.Namespace) -> int:
    return _run_eval("certify", args)


@command("predict", "classify inputs with PREDICT (Cohen et al., Algorithm 1)",
         lambda p: _sampling_args(p, with_n0=False))
def run_predict(args: argparse.Namespace) -> int:
    return _run_eval("predict", args)


def _run_eval(kind: str, args: argparse.Namespace, make_attack=None) -> int:
    from . import distributed as D
    from .evaluate import run_records, select_indices
    from .records import read_records

    validate_sampling_args(args)
    smooth, dataset, meta, device = load_for_eval(args)
    indices = select_indices(len(dataset), args.skip, args.max)
    out = Path(args.out)
    write_config(out.with_name(out.name + ".config.json"), args, sigma=smooth.sigma,
                 device=str(device), arch=meta["arch"], num_inputs=len(indices))
    hooks, finish = make_attack(smooth, args) if make_attack else ({}, None)
    run_records(
        kind, smooth, dataset, indices, out, n0=getattr(args, "n0", 100), n=args.n,
        alpha=args.alpha, batch_size=args.batch, seed=args.seed,
        progress=not args.no_progress, **hooks,
    )
    if finish is not None:
        finish()
    if D.is_main():
        print(_summary(kind, read_records(out), args))
    D.destroy_process_group()
    return 0


def _summary(kind: str, rec, args: argparse.Namespace) -> str:
    """The closing line of certify, predict and attack."""
    if rec.is_empty:
        return f"{kind}: no input selected; {rec.path} has a header only"
    head = f"{kind}: {len(rec)} inputs in {rec.path}; "
    if kind == "attack":
        clean = float((rec["cleanPredict"] == rec["label"]).mean())
        return (head + f"clean accuracy of g {clean:.3f}, empirical robust accuracy at "
                f"eps={args.epsilon:g}: {float(rec['correct'].mean()):.3f}, mean l2 of "
                f"perturbations {float(rec['l2'].mean()):.4f}")
    return (head + f"accuracy of g {float(rec['correct'].mean()):.3f}, abstained "
            f"{float((rec['predict'] == -1).mean()):.3f}")


# ------------------------------------------------------------------------------- attack


def add_attack_args(p: argparse.ArgumentParser, m_flag: str, m_default: int,
                    steps_default: int, eps_default: float = 0.5,
                    gamma_default: float | None = None) -> None:
    """Options shared by ``attack`` and ``train``: the SmoothAdv attack's hyper-parameters."""
    from .attacks import list_attacks

    p.add_argument("--attack", default="pgd", choices=list_attacks(),
                   help="SmoothAdv-PGD or SmoothAdv-DDN (default: pgd)")
    p.add_argument("--epsilon", type=float, default=eps_default,
                   help=f"{EPS_HELP} (default: {eps_default})")
    p.add_argument("--steps", type=int, default=steps_default,
                   help=f"attack steps T (default: {steps_default})")
    p.add_argument(m_flag, type=int, default=m_default, dest="num_noise", metavar="M",
                   help=f"noise draws m per input for the soft classifier ({m_default})")
    p.add_argument("--no-grad-attack", action="store_true",
                   help="estimate the gradient without back-propagating through the model")
    p.add_argument("--ddn-gamma", type=float, default=gamma_default,
                   help="DDN norm update factor γ (default: "
                   + ("1-(3/510/ε)^(1/T), the paper's evaluation setting)" if gamma_default
                      is None else f"{gamma_default}, the paper's training setting)"))
    p.add_argument("--ddn-init-norm", type=float, default=1.0,
                   help="DDN initial norm, capped at ε (default: 1.0)")


def build_attack(args: argparse.Namespace):
    """The attack object the parsed options describe."""
    from .attacks import attack_from_options

    return attack_from_options(args.attack, epsilon=args.epsilon, steps=args.steps,
                               num_noise_vectors=args.num_noise, no_grad=args.no_grad_attack,
                               ddn_gamma=args.ddn_gamma, ddn_init_norm=args.ddn_init_norm)


def _attack_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="model checkpoint (ours or the paper's .pth.tar)")
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
    add_common(p)


@command("attack", "empirical robustness: attack g with SmoothAdv, then PREDICT",
         _attack_args)
def run_attack(args: argparse.Namespace) -> int:
    return _run_eval("attack", args, make_attack=_attack_hooks)


def _attack_hooks(smooth, args: argparse.Namespace):
    import torch

    from .errors import check_positive_int
    from .examples import ExampleSaver
    from .smoothing import input_seed, make_generator

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
        return attack(smooth, x, y, noise=noise)

    saver = ExampleSaver(args.save_examples) if args.save_examples else None
    hooks = dict(attack=run, on_attacked=saver, group=args.attack_batch)
    return hooks, (saver.finish if saver else None)


# -------------------------------------------------------------------------------- train


def _train_args(p: argparse.ArgumentParser) -> None:
    from .data import list_datasets
    from .methods import list_methods
    from .models import list_models

    p.add_argument("--dataset", required=True, help=f"one of {', '.join(list_datasets())}")
    p.add_argument("--data-root", default=None, help="data folder (default: download)")
    p.add_argument("--arch", default=None,
                   help=f"one of {', '.join(list_models())} (default: the dataset's)")
    p.add_argument("--method", default="gaussian", choices=list_methods(),
                   help="gaussian (Cohen et al.) or smoothadv (Salman et al.)")
    p.add_argument("--sigma", type=float, default=0.25, help="training noise σ (0.25)")
    p.add_argument("--epochs", type=int, default=90, help="epochs (90)")
    p.add_argument("--batch", type=int, default=256, help="batch size (256)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (0.1)")
    p.add_argument("--lr-step", type=int, default=30, help="decay lr ×0.1 every N epochs (30)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (0.9)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay (1e-4)")
    add_attack_args(p, "--m-train", 1, 10, eps_default=0.25, gamma_default=0.05)
    p.add_argument("--multi-noise", action="store_true",
                   help="train on all m noisy copies of each attacked image")
    p.add_argument("--warmup", type=int, default=0,
                   help="grow ε linearly from 0 over the first K epochs (0)")
    p.add_argument("--pretrained", default=None,
                   help="start from this checkpoint (ours or the paper's); a head with another "
                        "class count is replaced")
    p.add_argument("--extra-data", default=None,
                   help="pseudo-labelled images (.pt from pseudo-label, or Carmon et al.'s "
                        "pickle; a pickle can run code: trusted files only)")
    p.add_argument("--extra-weight", type=float, default=1.0,
                   help="weight of the pseudo-labelled loss (1.0)")
    p.add_argument("--resume", action="store_true",
                   help="continue from OUT/checkpoint.pth.tar, appending to OUT/log.tsv")
    p.add_argument("--workers", type=int, default=0, help="data loader processes (0)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="channels-last memory format for conv nets (default: on; measured "
                        "faster on CPU)")
    p.add_argument("--amp", action="store_true",
                   help="bfloat16 autocast on CUDA (noise is added in float32 first)")
    p.add_argument("--train-subset", type=int, default=None,
                   help="train on a fixed random subset of this size")
    p.add_argument("--test-subset", type=int, default=None,
                   help="evaluate on a fixed random subset of this size")
    p.add_argument("--eval-adv-max", type=int, default=500,
                   help="test inputs attacked for the per-epoch attacked accuracy (500)")
    p.add_argument("--out", required=True, help="run directory")
    add_common(p)


@command("train", "train a base classifier: Gaussian augmentation or SmoothAdv", _train_args)
def run_train(args: argparse.Namespace) -> int:
    from .train import TrainConfig, train

    cfg = TrainConfig(
        dataset=args.dataset, out=args.out, arch=args.arch, data_root=args.data_root,
        method=args.method, sigma=args.sigma, epochs=args.epochs, batch=args.batch,
        lr=args.lr, lr_step=args.lr_step, momentum=args.momentum,
        weight_decay=args.weight_decay, attack=args.attack, epsilon=args.epsilon,
        steps=args.steps, m_train=args.num_noise, multi_noise=args.multi_noise,
        warmup=args.warmup, no_grad_attack=args.no_grad_attack, ddn_gamma=args.ddn_gamma,
        ddn_init_norm=args.ddn_init_norm, pretrained=args.pretrained,
        extra_data=args.extra_data, extra_weight=args.extra_weight, resume=args.resume,
        workers=args.workers, channels_last=args.channels_last, amp=args.amp,
        train_subset=args.train_subset, test_subset=args.test_subset,
        eval_adv_max=args.eval_adv_max, seed=args.seed, device=args.device,
        progress=not args.no_progress,
    )
    path = train(cfg)
    print(f"checkpoint: {path}")
    return 0


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
    from . import distributed as D
    from .data import create_dataset
    from .models import load_checkpoint
    from .train import pseudo_label

    device = D.resolve_device(args.device)
    teacher, _ = load_checkpoint(args.teacher, device=device)
    dataset = create_dataset(args.dataset, args.split, args.data_root)
    path = pseudo_label(teacher, dataset, args.out, args.batch, not args.no_progress)
    print(f"pseudo-labels of {len(dataset)} images written to {path}")
    return 0


# ------------------------------------------------------------------------------ analyze


def _analyze_args(p: argparse.ArgumentParser) -> None:
    from .analysis import list_formats

    p.add_argument("paths", nargs="+",
                   help="record files of certify, predict or attack; a folder means every one "
                        "below it")
    p.add_argument("--radii", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="radii of the table (default: 0 0.25 0.5 0.75 1.0)")
    p.add_argument("--labels", nargs="+", default=None, help="one label per record file")
    p.add_argument("--envelope", action="store_true",
                   help="best model per radius, with its clean accuracy (the paper's tables)")
    p.add_argument("--format", default="text", choices=list_formats(),
                   help="table format (default: text)")
    p.add_argument("--plot", default=None, help="write certified-accuracy curves (.png/.pdf)")
    p.add_argument("--max-radius", type=float, default=None, help="x-axis limit of the plot")
    p.add_argument("--alpha", type=float, default=None,
                   help="the certificates' α: adds high-probability lower bounds")
    p.add_argument("--confidence", type=float, default=0.001,
                   help="γ of the lower bounds: they hold with probability ≥ 1−γ (0.001)")
    p.add_argument("--name", default="envelope", help="row name of the envelope table")


@command("analyze", "certified-accuracy tables, envelopes, ACR and plots from record files "
         "(and empirical robust accuracy from attack records)",
         _analyze_args)
def run_analyze(args: argparse.Namespace) -> int:
    from . import analysis as A

    if any(r < 0 for r in args.radii):
        raise UserError("--radii must be non-negative")
    files = A.expand_paths(args.paths, kinds=("certify", "predict"))
    labels = args.labels if args.labels is not None else [None] * len(files)
    if len(labels) != len(files):
        raise UserError(f"{len(labels)} labels for {len(files)} record files")
    groups: dict[str, tuple[list, list]] = {}
    for f, label in zip(files, labels):
        kind = A.record_kind(f)
        if kind is None:
            raise UserError(f"{f}: not a certification or prediction record file")
        groups.setdefault(kind, ([], []))
        groups[kind][0].append(f)
        groups[kind][1].append(label)
    if "certify" in groups:
        cert_files, cert_labels = groups["certify"]
        summaries = A.load_summaries(cert_files, args.radii,
                                     cert_labels if args.labels else None, args.alpha,
                                     args.confidence, warn=_warn)
        cells = A.envelope(summaries) if args.envelope else None
        if cells is not None:
            print(A.render(A.envelope_table(cells, args.name), args.format))
            if args.format == "text":
                print()
                print(A.render(A.envelope_sources(cells), "text"))
        else:
            print(A.render(A.summary_table(summaries), args.format))
        if args.plot:
            path = A.plot_curves(summaries, args.plot, cells, max_radius=args.max_radius)
            print(f"plot written to {path}", file=sys.stderr)
    if "predict" in groups:
        pred_files, pred_labels = groups["predict"]
        empirical = A.load_empirical(pred_files, pred_labels if args.labels else None,
                                     warn=_warn)
        if empirical:
            if "certify" in groups and args.format == "text":
                print("\nempirical robustness (PREDICT on attacked points):")
            print(A.render(A.empirical_table(empirical), args.format))
    return 0


def _warn(message: str) -> None:
    print(message, file=sys.stderr)


# --------------------------------------------------------------------------------- demo


def _demo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="runs/demo", help="run directory (default: runs/demo)")
    p.add_argument("--sigmas", type=float, nargs="+", default=[0.25],
                   help="noise levels σ to compare at (default: 0.25)")
    p.add_argument("--epochs", type=int, default=60, help="training epochs per model (60)")
    p.add_argument("--epsilon", type=float, default=0.5,
                   help="SmoothAdv's ε, an l2 radius in pixel space (0.5)")
    p.add_argument("--steps", type=int, default=4, help="SmoothAdv's PGD steps T (4)")
    p.add_argument("--m-train", type=int, default=2, help="SmoothAdv's noise draws m (2)")
    p.add_argument("--n", type=int, default=100_000, help="certification samples (100000)")
    p.add_argument("--batch", type=int, default=1_000,
                   help="noisy samples per forward (1000: fastest for the MLP on a CPU)")
    p.add_argument("--quick", action="store_true",
                   help="n = 10,000 and half the epochs: a one-minute run")
    add_common(p)


@command("demo", "the main job: Gaussian vs SmoothAdv on the bundled digits, certified",
         _demo_args)
def run_demo_cmd(args: argparse.Namespace) -> int:
    from .demo import DemoConfig, run_demo
    from .errors import check_sigma

    for sigma in args.sigmas:
        check_sigma(sigma)
    run_demo(DemoConfig(out=args.out, sigmas=tuple(args.sigmas), epochs=args.epochs,
                        epsilon=args.epsilon, steps=args.steps, m_train=args.m_train,
                        quick=args.quick, n=args.n, batch=args.batch, seed=args.seed,
                        device=args.device, progress=not args.no_progress))
    return 0


# --------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="smoothadv",
        description="Randomized smoothing and SmoothAdv: train, certify, attack and analyse "
        "provably l2-robust classifiers.",
    )
    from . import __version__

    parser.add_argument("--version", action="version", version=f"smoothadv {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (help_text, add_arguments, run) in _COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(p)
        p.set_defaults(func=run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except UserError as err:
        print(f"smoothadv: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("smoothadv: interrupted; re-run the same command to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
