"""What the sub-commands share: the command registry, the option groups several commands
take, and turning parsed flags into a stage config (``config_from_args``). Commands only parse
flags into a config and call the library (:mod:`smoothadv.stages`)."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


# ------------------------------------------------------------------ flags → config


def compile_choice(args: argparse.Namespace) -> str:
    value = getattr(args, "compile", None)
    return "auto" if value is None else ("on" if value else "off")


def config_from_args(cls: type, args: argparse.Namespace, **overrides: Any):
    """The config of class ``cls`` that the parsed flags describe: every flag whose
    destination is a field of ``cls`` (``--no-progress`` → ``progress``, ``--compile`` →
    ``compile``), then ``overrides``."""
    names = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in vars(args).items() if k in names}
    if "members" in names and isinstance(values.get("checkpoint"), list):
        values.update(_checkpoints(values.pop("checkpoint"), getattr(args, "members_file",
                                                                      None)))
    if "progress" in names and hasattr(args, "no_progress"):
        values["progress"] = not args.no_progress
    if "compile" in names and hasattr(args, "compile"):
        values["compile"] = compile_choice(args)
    values.update(overrides)
    return cls(**values)


def _checkpoints(given: list[str], members_file: str | None) -> dict[str, Any]:
    """The positional checkpoints (and ``--members-file``'s lines) as config fields: one is
    ``checkpoint``, several are an ensemble's ``members``."""
    paths = list(given)
    if members_file:
        from ..errors import UserError

        try:
            text = Path(members_file).read_text(encoding="utf-8")
        except OSError as err:
            raise UserError(f"--members-file {members_file}: {err.strerror}") from None
        paths += [ln.strip() for ln in text.splitlines()
                  if ln.strip() and not ln.strip().startswith("#")]
    if len(paths) > 1:
        return {"members": tuple(paths), "checkpoint": None}
    return {"checkpoint": paths[0] if paths else None}


def add_checkpoints(p: argparse.ArgumentParser) -> None:
    """The model of certify, predict and attack: one checkpoint, or several (an ensemble)."""
    p.add_argument("checkpoint", nargs="*", default=[],
                   help="model checkpoint (ours or the paper's .pth.tar); several make an "
                        "ensemble (their mean logits, docs/ensembles.md); or give --classifier")
    p.add_argument("--members-file", default=None, metavar="FILE",
                   help="the ensemble's checkpoints, one per line (# comments), after any given")
    p.add_argument("--consensus", type=int, default=0, metavar="K",
                   help="ensembles: K-consensus aggregation, the other members skipped for a "
                        "noisy sample on which the first K agree (0: off)")


def stage_command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                  config: str) -> None:
    """Register sub-command ``name`` that parses its flags into the stage config class
    ``smoothadv.stages.<config>`` and runs it."""

    def run(args: argparse.Namespace) -> int:
        from .. import stages

        return run_config(config_from_args(getattr(stages, config), args))

    command(name, help, add_arguments)(run)


def run_config(config) -> int:
    """Run a stage config and print what it says."""
    from ..stages import run_stage

    result = run_stage(config)
    if result.text:
        print(result.text)
    return 0


# ------------------------------------------------------------------ option groups


COMPILE_HELP = (
    "compile the base model with torch.compile (--compile), or not (--no-compile); default: "
    "compile when the run is estimated to take at least 3× the compile time (eager on "
    "failure, with one line saying so)"
)


def add_compile(p: argparse.ArgumentParser) -> None:
    p.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help=COMPILE_HELP)


def add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--device", default="auto",
                   help="auto (CUDA when present, else CPU), cpu, cuda or cuda:N")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")


def add_device_args(p: argparse.ArgumentParser, distributed: bool = True) -> None:
    """``--deterministic``, and ``--dist-timeout`` for the commands that run under torchrun."""
    p.add_argument("--deterministic", action="store_true",
                   help="deterministic cuDNN/cuBLAS algorithms on CUDA, so that a repeated or "
                        "resumed run gives the same bits on the same GPU model (slower; the CPU "
                        "is deterministic already)")
    if not distributed:
        return
    p.add_argument("--dist-timeout", type=float, default=None, metavar="MINUTES",
                   help="under torchrun: how long a rank may wait for the others in a "
                        "collective (default: $SMOOTHADV_DIST_TIMEOUT or 120)")


def add_data_args(p: argparse.ArgumentParser) -> None:
    """Dataset and selection options of certify, predict and attack."""
    from ..data.datasets import list_datasets

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
    p.add_argument("--shards", type=int, default=1,
                   help="split the selected inputs into K interleaved shards (each a job of "
                        "its own; smoothadv sweep merges them); default 1")
    p.add_argument("--shard", type=int, default=0, help="which shard to certify, 0…K−1")


NORMALIZATION_HELP = (
    "the model's input layer: normalize ((x-mean)/std), center (x-mean, the SmoothAdv "
    "code's InputCenterLayer), none (raw [0,1] images) or auto (measure it on noisy labelled "
    "images); default: the recorded layer, else measured. See docs/certification.md")


def add_normalization_arg(p: argparse.ArgumentParser, default_text: str | None = None) -> None:
    from ..models import list_normalizations

    p.add_argument("--input-normalization", default=None,
                   choices=[*list_normalizations(), "auto"],
                   help=default_text or NORMALIZATION_HELP)


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
    g.add_argument("--class-map", default=None,
                   help="use a classifier with another label set on the data set's classes: "
                        "imagenet-cifar10 (the ImageNet synsets of each CIFAR-10 class; logit "
                        "of a class = logsumexp of its synsets' logits) or a JSON file "
                        "[[indices of class 0], …]")
    g.add_argument("--no-top-up", dest="top_up", action="store_false",
                   help="diffusion: do not add the small missing variance inside the denoiser "
                        "(the model then sees a level slightly below the one it expects; "
                        "the exact-σ variant of Jeong & Shin 2023)")


PRECISION_HELP = (
    "arithmetic of the base classifier: fp32 (the authors' code; default), tf32 (CUDA: TF32 "
    "matrix products), bf16 (CPU and CUDA) or fp16 (CUDA) autocast, departures: the certificate "
    "is then that of the classifier evaluated in that precision, and the record's config says "
    "so")


def add_precision(p: argparse.ArgumentParser) -> None:
    from ..runtime.precision import PRECISIONS

    p.add_argument("--precision", default="fp32", choices=list(PRECISIONS),
                   help=PRECISION_HELP)


def add_out_args(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument("--out", required=True,
                   help=f"{what}; an existing one of the same configuration is resumed, one of "
                        "another configuration is refused")
    p.add_argument("--overwrite", action="store_true",
                   help="discard an existing record file of another configuration")


def sampling_args(p: argparse.ArgumentParser, with_n0: bool) -> None:
    """Options of certify and predict (the paper's names and defaults)."""
    from ..noise import NOISE_CHOICES, NORMS

    add_checkpoints(p)
    add_data_args(p)
    p.add_argument("--sigma", type=float, default=None,
                   help="noise level σ (default: the checkpoint's training σ)")
    if with_n0:
        p.add_argument("--n0", type=int, default=100,
                       help="samples to select the class (100); any n0, n ≥ 1 is valid")
    p.add_argument("--n", "--num-samples", dest="n", type=int, default=100_000,
                   help=("noise samples (those estimating p_A; 100000)" if with_n0 else
                         "noise samples of PREDICT's test (100000)")
                   + "; under torchrun write --num-samples, since torchrun takes --n")
    add_shared(p, "--alpha", "--batch", "--log")
    add_out_args(p, "record file (TSV)")
    add_switches(p, {
        "--sound": "sound certification in floating point: inputs on the 8-bit grid, integer "
                   "rounded-Gaussian noise, certificates that hold for the float computation "
                   "(see docs/certification.md)",
        "--round-inputs": "with --sound or --derandomized: round inputs that are off the 8-bit "
                          "grid to it (the record's config says so; without it such inputs are "
                          "refused); with --noise splitting also for the randomized "
                          "certificate, to certify the inputs the deterministic one certifies"})
    p.add_argument("--noise", default="gaussian", choices=list(NOISE_CHOICES),
                   help="noise of the smoothed classifier: gaussian (default), or for ℓ1 "
                        "certificates uniform (cube [-λ,λ], λ = √3σ), laplace (scale σ/√2) or "
                        "splitting (Levine & Feizi); σ is the per-coordinate standard deviation")
    p.add_argument("--norm", default="l2", choices=list(NORMS),
                   help="norm of the certified radius: l2 (Gaussian; default), l1, or linf "
                        "(Gaussian: the ℓ2 radius over √d; others: the ℓ1 radius over d)")
    add_model_args(p)


def add_switches(p: argparse.ArgumentParser | argparse._ArgumentGroup,
                 switches: dict[str, str]) -> None:
    """On/off options (``store_true``), declared as data: flag → help."""
    for flag, text in switches.items():
        p.add_argument(flag, action="store_true", help=text)


def add_model_args(p: argparse.ArgumentParser) -> None:
    """How the base classifier is built and run: input layer, denoiser, precision, compile,
    seed and progress, device (certify, predict and attack)."""
    add_normalization_arg(p)
    add_denoise_args(p)
    add_precision(p)
    add_compile(p)
    add_common(p)
    add_device_args(p)


def _formats() -> list[str]:
    from ..analysis.tables import list_formats

    return list_formats()


# Options several commands take, declared once: flag → add_argument's keywords (a callable
# ``choices`` is called when the parser is built, so that --help loads no more than it needs).
SHARED_OPTIONS: dict[str, dict[str, Any]] = {
    "--format": {"default": "text", "choices": _formats,
                 "help": "table format (default: text); csv and json keep every column"},
    "--mix-threats": {"action": "store_true", "help": (
        "put records of different threat models in one table (radii on ℝ^d, on the box "
        "[0,1]^d with --box, on the 8-bit grid with --derandomized: refused otherwise, since "
        "their balls hold different images)")},
    "--as-written": {"action": "store_true", "help": (
        "compare radii as written, as the paper's analysis did (reproduces its tables "
        "exactly); by default a radius rounded to nearest (the paper's logs) loses half a unit "
        "in its last digit first, so a row written 0.500 is not counted at r=0.5. Our own "
        "files are rounded down and unaffected")},
    "--alpha": {"type": float, "default": 0.001,
                "help": "failure probability of each certificate or PREDICT test (0.001)"},
    "--batch": {"type": int, "default": 1000, "help": "noisy samples per forward (1000)"},
    "--log": {"aliases": ("--loggers",), "dest": "log", "nargs": "+", "default": (),
              "choices": lambda: _loggers(), "help": (
        "also log the run's figures (training: each epoch's; certify, predict, attack: the "
        "record's running accuracy, certified accuracy, samples/s) to TensorBoard (FOLDER/"
        "tensorboard), Weights & Biases (offline without an API key) or a CSV file; pip install "
        "'smoothadv[watch]' (docs/watching.md); under torchrun write --loggers, since torchrun "
        "takes --log for its own --log-dir")},
}


def _loggers() -> list[str]:
    from ..runtime.loggers import LOGGERS

    return LOGGERS.names()


def add_shared(p: argparse.ArgumentParser | argparse._ArgumentGroup, *flags: str) -> None:
    """Add the :data:`SHARED_OPTIONS` named by ``flags``."""
    for flag in flags:
        keywords = dict(SHARED_OPTIONS[flag])
        if callable(keywords.get("choices")):
            keywords["choices"] = keywords["choices"]()
        p.add_argument(flag, *keywords.pop("aliases", ()), **keywords)


ESTIMATOR_HELP = (
    "gradient of the soft loss: grad (back-propagate; default), no_grad (the paper's "
    "gradient-free estimator -mean_i p_y(x'+d_i) d_i) or no_grad_cv (a departure: with a "
    "control variate). With m = 1 every choice uses the exact gradient, as the paper's code "
    "does"
)
