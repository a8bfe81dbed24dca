"""What several sub-commands share: the command registry, common options, loading a model
for evaluation, and the evaluation runner behind certify, predict and attack."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UserError

EPS_HELP = (
    "l2 radius in pixel space (images in [0,1]); the paper's code used units of 1/256: "
    "its eps_64 is 0.25, eps_127 0.496, eps_255 0.996, eps_512 2.0"
)

COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable]] = {}


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Decorator: register ``run(args) -> int`` as sub-command ``name``."""

    def wrap(run: Callable[[argparse.Namespace], int]) -> Callable:
        COMMANDS[name] = (help, add_arguments, run)
        return run

    return wrap


def warn(message: str) -> None:
    print(message, file=sys.stderr)


COMPILE_HELP = (
    "compile the base model with torch.compile (--compile), or not (--no-compile); default: "
    "compile when the run is estimated to take at least 3× the compile time (eager on "
    "failure, with one line saying so)"
)


def add_compile(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help=COMPILE_HELP)


def compile_choice(args: argparse.Namespace) -> str:
    value = getattr(args, "compile", None)
    return "auto" if value is None else ("on" if value else "off")


def maybe_compile(smooth, args: argparse.Namespace, sample, total_samples: int) -> str:
    """Wrap ``smooth``'s base classifier for compiled inference when ``--compile`` (or the
    auto rule) says so; returns the reason, for the run's config."""
    from .. import distributed as D
    from ..compile import compile_for_inference, should_compile

    decision, why = should_compile(compile_choice(args), smooth.base_classifier, sample,
                                   args.batch, total_samples, smooth.device)
    if decision:
        smooth.base_classifier = compile_for_inference(smooth.base_classifier, args.batch)
    if D.is_main() and not getattr(args, "no_progress", False):
        print(f"smoothadv: {why}", file=sys.stderr)
    return why


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Dataset and selection options of certify, predict and attack."""
    from ..data import list_datasets

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


NORMALIZATION_HELP = (
    "the model's input layer: normalize ((x-mean)/std, Cohen et al.), center (x-mean, the "
    "SmoothAdv code's InputCenterLayer, behind which most of that paper's released models were "
    "trained), none (raw [0,1] images, MACER's original code) or auto (measure: classify 128 "
    "noisy labelled images with each layer and keep the clearly most accurate; refuse when too "
    "close to call). Our checkpoints record their layer (a contradicting value is an error); "
    "default for files that record none, such as the paper's: measure as auto, falling back "
    "to normalize when too close to call. Every run prints the layer it used")


def add_normalization_arg(p: argparse.ArgumentParser, default_text: str | None = None) -> None:
    from ..models import list_normalizations

    p.add_argument("--input-normalization", default=None,
                   choices=[*list_normalizations(), "auto"],
                   help=default_text or NORMALIZATION_HELP)


def say(message: str) -> None:
    """One informational line on stderr, from the main process only."""
    from .. import distributed as D

    if D.is_main():
        print(f"smoothadv: {message}", file=sys.stderr)


def load_model(path: str, requested: str | None, dataset, sigma: float | None, seed: int,
               device) -> tuple[Any, dict[str, Any]]:
    """A checkpoint's model behind the input layer chosen for it (recorded, asked for, or
    measured on ``dataset`` under noise ``sigma``), announced in one line; returns
    (model, meta)."""
    from ..models import load_checkpoint

    model, meta = load_checkpoint(path, device=device, normalization=requested, data=dataset,
                                  sigma=sigma, seed=seed)
    say(meta["normalization_choice"].describe(path))
    return model, meta


def model_config(meta: dict[str, Any]) -> dict[str, Any]:
    """What a record file's config says of the model: architecture and input layer."""
    choice = meta.get("normalization_choice")
    out = dict(arch=meta["arch"])
    if choice is not None:
        out.update(input_normalization=choice.kind, input_normalization_source=choice.source,
                   input_normalization_accuracies=choice.accuracies)
    for key in ("denoiser", "classifier", "top_up"):
        if meta.get(key) is not None:
            out[key] = meta[key]
    return out


def check_before_writing(smooth, dataset, indices) -> None:
    """Refuse what would fail on the first input before any output file is created (e.g.
    --sound on images off the 8-bit grid)."""
    if indices:
        smooth.noise.prepare(dataset[indices[0]][0])


def write_config(path: Path, args: argparse.Namespace, **extra: Any) -> None:
    """Write the resolved configuration (arguments plus derived values) as JSON."""
    from .. import distributed as D

    if not D.is_main():
        return
    config = {k: v for k, v in vars(args).items() if k != "func"}
    if "input_normalization" in config:  # what was asked; the resolved kind may follow
        config["input_normalization_requested"] = config.pop("input_normalization")
    config.update(extra)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config, indent=2, default=str) + "\n", encoding="utf-8")


def validate_sampling_args(args: argparse.Namespace) -> None:
    """Check numeric arguments before anything is loaded, so mistakes fail at once."""
    from ..errors import check_alpha, check_positive_int, check_sigma

    if getattr(args, "sigma", None) is not None:
        check_sigma(args.sigma)
    check_alpha(args.alpha)
    check_positive_int(args.n, "--n")
    check_positive_int(args.batch, "--batch")
    if hasattr(args, "n0"):
        check_positive_int(args.n0, "--n0")
    if args.skip < 1:
        raise UserError(f"--skip must be at least 1, got {args.skip}")


DENOISE_HELP = (
    "denoised smoothing: put a denoiser in front of the classifier, dncnn:CKPT (smoothadv "
    "train-denoiser) or diffusion:PATH_OR_HUB_ID (a diffusers UNet2DModel and its scheduler, "
    "e.g. google/ddpm-cifar10-32; one denoising step at the timestep of σ)")
CLASSIFIER_HELP = (
    "the classifier instead of the positional checkpoint: a smoothadv checkpoint, "
    "timm:NAME[:pretrained] or torchvision:NAME[:WEIGHTS] (weights are downloaded only when "
    "named; without them the network has random weights)")


def add_denoise_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("denoised smoothing", "certify any classifier: x ↦ f(D(x + δ))")
    g.add_argument("--denoiser", default=None, help=DENOISE_HELP)
    g.add_argument("--classifier", default=None, help=CLASSIFIER_HELP)
    g.add_argument("--no-top-up", dest="top_up", action="store_false",
                   help="diffusion: do not add the small missing variance inside the denoiser "
                        "(the model then sees a level slightly below the one it expects; "
                        "the exact-σ variant of Jeong & Shin 2023)")


def load_denoised(args: argparse.Namespace, device):
    """(base classifier f(D(·)), num_classes, meta) for --denoiser / --classifier runs."""
    from ..denoise.compose import Classifier, compose, load_classifier, load_denoiser

    if args.classifier and args.checkpoint:
        raise UserError("give the classifier once: the positional checkpoint or --classifier")
    spec = args.classifier or args.checkpoint
    if spec is None:
        raise UserError("give a checkpoint or --classifier")
    if args.sigma is None:
        raise UserError("denoised smoothing needs --sigma")
    if spec.startswith(("timm:", "torchvision:")):
        classifier = load_classifier(spec, device)
        meta = dict(classifier.meta, num_classes=classifier.num_classes)
    else:
        model, meta = load_model(spec, getattr(args, "input_normalization", None), None, None,
                                 args.seed, device)
        classifier = Classifier(model, None, meta["image_size"], meta["num_classes"], meta)
    denoiser = (load_denoiser(args.denoiser, args.sigma, device, top_up=args.top_up)
                if args.denoiser else None)
    meta = dict(meta, denoiser=args.denoiser, classifier=spec,
                top_up=args.top_up if args.denoiser else None)
    return compose(classifier, denoiser), classifier.num_classes, meta


def load_for_eval(args: argparse.Namespace):
    """(smooth, dataset, meta, device) from a checkpoint and the data arguments; the
    checkpoint's input shape is checked against the data set's before any work."""
    from .. import distributed as D
    from ..data import check_input_shape, create_dataset, get_dataset_spec
    from ..models import read_checkpoint
    from ..models.checkpoint import checkpoint_dataset, checkpoint_io
    from ..smoothing import Smooth

    device = D.resolve_device(args.device)
    D.init_process_group(device)
    if getattr(args, "denoiser", None) or getattr(args, "classifier", None):
        return _load_denoised_for_eval(args, device)
    if args.checkpoint is None:
        raise UserError("give a checkpoint (or --classifier)")
    ckpt = read_checkpoint(args.checkpoint)
    name = args.dataset or checkpoint_dataset(ckpt)
    if name is None:
        raise UserError("the checkpoint names no dataset: give --dataset")
    spec = get_dataset_spec(name)
    sigma = args.sigma if args.sigma is not None else ckpt.get("sigma")
    if sigma is None:
        raise UserError("the checkpoint records no sigma: give --sigma")
    io = checkpoint_io(ckpt)
    if spec.num_classes and spec.num_classes != io["num_classes"]:
        raise UserError(
            f"checkpoint has {io['num_classes']} classes, dataset {name} {spec.num_classes}"
        )
    dataset = create_dataset(name, args.split, args.data_root)
    check_input_shape(io, dataset, name, args.checkpoint)
    model, meta = load_model(args.checkpoint, args.input_normalization, dataset, sigma,
                             args.seed, device)
    if getattr(args, "round_inputs", False):
        if not getattr(args, "sound", False):
            raise UserError("--round-inputs goes with --sound")
        from ..noise import GridRounded

        dataset = GridRounded(dataset)
    smooth = Smooth(model, meta["num_classes"], sigma, sound=getattr(args, "sound", False))
    return smooth, dataset, meta, device


def _load_denoised_for_eval(args: argparse.Namespace, device):
    from ..data import create_dataset, get_dataset_spec
    from ..smoothing import Smooth

    if args.dataset is None:
        raise UserError("denoised smoothing needs --dataset")
    spec = get_dataset_spec(args.dataset)
    base, num_classes, meta = load_denoised(args, device)
    dataset = create_dataset(args.dataset, args.split, args.data_root)
    if spec.num_classes and spec.num_classes != num_classes:
        raise UserError(f"the classifier has {num_classes} classes, dataset {args.dataset} "
                        f"{spec.num_classes}")
    if len(dataset):
        import torch

        try:
            with torch.no_grad():
                base(dataset[0][0][None].to(device))
        except RuntimeError as err:
            raise UserError("the denoiser and classifier do not fit this data set's images: "
                            + str(err).strip().splitlines()[0]) from None
    if getattr(args, "round_inputs", False):
        raise UserError("--round-inputs is not available with denoised smoothing")
    smooth = Smooth(base, num_classes, args.sigma, sound=getattr(args, "sound", False))
    return smooth, dataset, meta, device


def sampling_args(p: argparse.ArgumentParser, with_n0: bool) -> None:
    """Options of certify and predict (the paper's names and defaults)."""
    p.add_argument("checkpoint", nargs="?", default=None,
                   help="model checkpoint (ours or the paper's .pth.tar); or give --classifier")
    add_data_args(p)
    p.add_argument("--sigma", type=float, default=None,
                   help="noise level σ (default: the checkpoint's training σ)")
    if with_n0:
        p.add_argument("--n0", type=int, default=100,
                       help="samples to select the class (100); any n0, n ≥ 1 is valid")
    p.add_argument("--n", "--num-samples", dest="n", type=int, default=100_000,
                   help="noise samples (CERTIFY: those estimating p_A; 100000); under "
                        "torchrun write --num-samples, since torchrun takes --n for its own")
    p.add_argument("--alpha", type=float, default=0.001, help="failure probability (0.001)")
    p.add_argument("--batch", type=int, default=1000, help="noisy samples per forward (1000)")
    p.add_argument("--out", required=True, help="record file (TSV); an existing one is resumed")
    p.add_argument("--sound", action="store_true",
                   help="sound certification in floating point: inputs on the 8-bit grid, "
                        "integer rounded-Gaussian noise, certificates that hold for the float "
                        "computation (see the README)")
    p.add_argument("--round-inputs", action="store_true",
                   help="with --sound: round inputs that are off the 8-bit grid to it (the "
                        "record's config says so); without it such inputs are refused")
    add_normalization_arg(p)
    add_denoise_args(p)
    add_compile(p)
    add_common(p)


def run_eval(kind: str, args: argparse.Namespace, make_attack=None,
             randomized: bool = False) -> int:
    """certify / predict / attack over the selected inputs, then one summary line."""
    from .. import distributed as D
    from ..evaluate import run_records, select_indices
    from ..records import read_records

    validate_sampling_args(args)
    smooth, dataset, meta, device = load_for_eval(args)
    indices = select_indices(len(dataset), args.skip, args.max)
    per_input = args.n + (getattr(args, "n0", 0) if kind == "certify" else 0)
    check_before_writing(smooth, dataset, indices)
    compiled = (maybe_compile(smooth, args, dataset[0][0], len(indices) * per_input)
                if indices else "no input")
    out = Path(args.out)
    write_config(out.with_name(out.name + ".config.json"), args, sigma=smooth.sigma,
                 device=str(device), **model_config(meta), num_inputs=len(indices),
                 radius_rounding="down", randomized_cp=randomized,
                 noise=smooth.noise.kind, compiled=compiled)
    hooks, finish = make_attack(smooth, args) if make_attack else ({}, None)
    run_records(
        kind, smooth, dataset, indices, out, n0=getattr(args, "n0", 100), n=args.n,
        alpha=args.alpha, batch_size=args.batch, seed=args.seed,
        progress=not args.no_progress, randomized=randomized, **hooks,
    )
    if finish is not None:
        finish()
    if D.is_main():
        print(summary_line(kind, read_records(out), args))
    D.destroy_process_group()
    return 0


def summary_line(kind: str, rec, args: argparse.Namespace) -> str:
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


# ------------------------------------------------------------------ attack options


ESTIMATOR_HELP = (
    "gradient of the soft loss: grad (back-propagate; default), no_grad (the paper's "
    "gradient-free estimator -mean_i p_y(x'+d_i) d_i) or no_grad_cv (a departure: with a "
    "control variate). With m = 1 every choice uses the exact gradient, as the paper's code "
    "does"
)


def add_attack_args(p: argparse.ArgumentParser, m_flag: str, m_default: int,
                    steps_default: int, eps_default: float = 0.5,
                    gamma_default: float | None = None) -> None:
    """Options shared by ``attack`` and ``train``: the SmoothAdv attack's hyper-parameters
    (defaults: the paper's)."""
    from ..attacks import ESTIMATORS, list_attacks

    p.add_argument("--attack", default="pgd", choices=list_attacks(),
                   help="SmoothAdv-PGD or SmoothAdv-DDN (default: pgd)")
    p.add_argument("--epsilon", type=float, default=eps_default,
                   help=f"{EPS_HELP} (default: {eps_default})")
    p.add_argument("--steps", type=int, default=steps_default,
                   help=f"attack steps T (default: {steps_default})")
    p.add_argument(m_flag, type=int, default=m_default, dest="num_noise", metavar="M",
                   help=f"noise draws m per input for the soft classifier ({m_default})")
    p.add_argument("--estimator", default="grad", choices=ESTIMATORS, help=ESTIMATOR_HELP)
    p.add_argument("--no-grad-attack", dest="estimator", action="store_const",
                   const="no_grad", help="the paper's flag: same as --estimator no_grad")
    p.add_argument("--ddn-gamma", type=float, default=gamma_default,
                   help="DDN norm update factor γ (default: "
                   + ("1-(3/510/ε)^(1/T), the paper's evaluation setting, no floor)"
                      if gamma_default is None
                      else f"{gamma_default}, the paper's training setting)"))
    if gamma_default is None:  # evaluation
        p.add_argument("--ddn-init-norm", type=float, default=1.0,
                       help="DDN initial norm budget, not capped at ε (default: 1.0, the "
                            "paper's 256/256)")
    else:  # training
        p.add_argument("--ddn-init-norm", type=float, default=None,
                       help="DDN initial norm budget (default: the epoch's ε, as the paper's "
                            "training loop sets it)")
    p.add_argument("--ddn-decision", default="vote", choices=["vote", "soft"],
                   help="DDN's 'already adversarial' test: vote (the paper: majority of the "
                        "m hard labels) or soft (a departure: argmax of G)")
    p.add_argument("--ddn-strict-epsilon", action="store_true",
                   help="a departure: DDN rounds its answer toward x so that it never leaves "
                        "the ε-ball (the paper rounds to nearest, which can exceed ε by a hair)")


def build_attack(args: argparse.Namespace):
    """The attack object the parsed options describe."""
    from ..attacks import attack_from_options

    return attack_from_options(args.attack, epsilon=args.epsilon, steps=args.steps,
                               num_noise_vectors=args.num_noise, estimator=args.estimator,
                               ddn_gamma=args.ddn_gamma, ddn_init_norm=args.ddn_init_norm,
                               ddn_decision=args.ddn_decision,
                               strict_epsilon=args.ddn_strict_epsilon)
