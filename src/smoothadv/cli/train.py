"""``smoothadv train``: train a base classifier with any registered method (Gaussian
augmentation, SmoothAdv, stability, MACER, consistency, SmoothMix, CAT-RS, or one a user
registers). The method options' flags are generated from the methods' declarations."""

from __future__ import annotations

import argparse

from .common import (
    add_common,
    add_device_args,
    add_shared,
    command,
    config_from_args,
    run_config,
)

OPTION_GROUP = "method options"


def method_option_flags() -> dict[str, tuple]:
    """{option name: (flag, type, choices, help)} over every registered method: one flag per
    option name, its help saying which methods have it and their defaults."""
    from ..methods import list_methods, method_spec

    flags: dict[str, dict] = {}
    for name in list_methods():
        for opt in method_spec(name).options:
            entry = flags.setdefault(opt.name, {"flag": opt.cli_flag, "type": opt.type,
                                                "choices": set(), "open": False, "help": []})
            if opt.choices is None:
                entry["open"] = True
            else:
                entry["choices"].update(opt.choices)
            entry["help"].append(f"{name}: {opt.help} (default {opt.describe_default()})")
    return {k: (v["flag"], v["type"],
                None if v["open"] else sorted(v["choices"]), "; ".join(v["help"]))
            for k, v in flags.items()}


def _train_args(p: argparse.ArgumentParser) -> None:
    from ..data.datasets import list_datasets
    from ..methods import list_methods, method_spec
    from ..models import list_models, list_normalizations
    from ..noise import NOISE_CHOICES

    p.add_argument("--dataset", required=True, help=f"one of {', '.join(list_datasets())}")
    p.add_argument("--data-root", default=None, help="data folder (default: download)")
    p.add_argument("--arch", default=None,
                   help=f"one of {', '.join(list_models())} (default: the dataset's)")
    p.add_argument("--method", default="gaussian", choices=list_methods(),
                   help="; ".join(f"{n}: {method_spec(n).summary}" for n in list_methods())
                   + " (default gaussian; each method's options below, with its authors' "
                     "CIFAR-10 defaults)")
    p.add_argument("--sigma", type=float, default=0.25,
                   help="training noise σ, the per-coordinate standard deviation (0.25)")
    p.add_argument("--noise", default="gaussian", choices=list(NOISE_CHOICES),
                   help="training noise: gaussian (default) or, for ℓ1 models, uniform, laplace "
                        "or splitting (methods gaussian — then noise augmentation — stability "
                        "and clean take any; the others refuse all but gaussian)")
    p.add_argument("--epochs", type=int, default=90, help="epochs (90)")
    p.add_argument("--batch", type=int, default=256,
                   help="batch size per process (256; under torchrun the global batch is "
                        "this × the number of processes)")
    p.add_argument("--lr", type=float, default=0.1, help="learning rate (0.1)")
    p.add_argument("--lr-step", type=int, default=30,
                   help="decay the lr every N epochs (30; the paper's --lr_step_size)")
    p.add_argument("--lr-gamma", type=float, default=0.1,
                   help="lr decay factor at each step (0.1; the paper's --gamma)")
    p.add_argument("--momentum", type=float, default=0.9, help="SGD momentum (0.9)")
    p.add_argument("--weight-decay", type=float, default=1e-4, help="weight decay (1e-4)")
    p.add_argument("--lr-milestones", type=int, nargs="+", default=None,
                   help="drop the lr ×γ at these epochs instead of every --lr-step (MACER's "
                        "original: 200 400)")
    p.add_argument("--drop-last", action="store_true",
                   help="skip each epoch's last batch when it is short (a departure: the "
                        "authors' loaders keep it; digits' 1,348 images at batch 64 leave 4, "
                        "which destabilises BatchNorm training)")
    p.add_argument("--lr-delay", type=int, default=0,
                   help="epochs by which each lr drop comes later (0; 1 reproduces the CAT-RS, "
                        "consistency and SmoothMix code's step(epoch): lr 0.1 for epochs 0-50)")
    g = p.add_argument_group(
        OPTION_GROUP, "each method's own hyper-parameters (an option the chosen method does "
        "not have is refused); defaults are the method's authors' CIFAR-10 settings")
    for name, (flag, typ, choices, text) in method_option_flags().items():
        if typ is bool:
            g.add_argument(flag, dest=name, action=argparse.BooleanOptionalAction,
                           default=None, help=text)
        else:
            g.add_argument(flag, dest=name, type=typ, choices=choices, default=None,
                           help=text.replace("%", "%%"))
    g.add_argument("--no-grad-attack", dest="estimator", action="store_const",
                   const="no_grad", help="the paper's flag: same as --estimator no_grad")
    p.add_argument("--pretrained", default=None,
                   help="start from this checkpoint (ours or the paper's); a head with another "
                        "class count is replaced")
    p.add_argument("--input-normalization", default=None,
                   choices=[*list_normalizations(), "auto"],
                   help="the model's input layer: normalize ((x-mean)/std, Cohen et al.; the "
                        "default), center (x-mean, the SmoothAdv code's InputCenterLayer) or "
                        "none (raw [0,1] images, MACER's original code); recorded in the "
                        "checkpoint. With --pretrained: default the pre-trained file's recorded "
                        "layer; auto measures a file that records none (same class count)")
    p.add_argument("--extra-data", default=None,
                   help="pseudo-labelled images (.pt from pseudo-label, or Carmon et al.'s "
                        "pickle; a pickle can run code: trusted files only)")
    p.add_argument("--extra-weight", type=float, default=1.0,
                   help="weight of the pseudo-labelled loss (1.0)")
    p.add_argument("--resume", action="store_true",
                   help="continue a run folder that records no configuration (an older "
                        "smoothadv's); a folder of the same configuration always resumes, so "
                        "the same command after an interruption continues the run")
    p.add_argument("--overwrite", action="store_true",
                   help="discard a run of another configuration in OUT and start this one")
    add_shared(p, "--log")
    p.add_argument("--workers", type=int, default=None,
                   help="data loader processes (default: 0 on the CPU; on CUDA min(8, CPU cores "
                        "per local rank), with pinned memory)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True,
                   help="channels-last memory format for conv nets (default: on; measured "
                        "faster on CPU)")
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile the training steps and the attack's passes (--compile) "
                        "or not (--no-compile); default: compile conv nets for runs of at least "
                        "500 optimizer steps; eager on failure")
    p.add_argument("--precision", default="fp32", choices=["fp32", "tf32", "bf16", "fp16"],
                   help="arithmetic of the training steps and their attacks: fp32 (the "
                        "authors'; default), tf32 (CUDA: TF32 matrix products), bf16 (CPU and "
                        "CUDA) or fp16 (CUDA, with a gradient scaler) autocast; noise is added "
                        "in fp32 first")
    p.add_argument("--amp", action="store_true",
                   help="the older flag: bf16 autocast on CUDA only (same as --precision bf16 "
                        "there; nothing on a CPU)")
    p.add_argument("--train-subset", type=int, default=None,
                   help="train on a fixed random subset of this size")
    p.add_argument("--test-subset", type=int, default=None,
                   help="evaluate on a fixed random subset of this size")
    p.add_argument("--eval-adv-max", type=int, default=500,
                   help="test inputs attacked for the per-epoch attacked accuracy (500)")
    p.add_argument("--out", required=True, help="run directory")
    add_common(p)
    add_device_args(p)


def train_config_from_args(args: argparse.Namespace):
    """The :class:`~smoothadv.train.TrainConfig` the parsed flags describe: the method options
    given (flags left unset take the method's defaults)."""
    from ..train import TrainConfig

    options = {name: getattr(args, name) for name in method_option_flags()
               if getattr(args, name, None) is not None}
    return config_from_args(TrainConfig, args, options=options)


@command("train", "train a base classifier: Gaussian, SmoothAdv, stability, MACER, "
         "consistency, SmoothMix or CAT-RS", _train_args)
def run_train(args: argparse.Namespace) -> int:
    return run_config(train_config_from_args(args))
