"""The configuration of a training run (stage ``train``): one typed, hashable config.

The method's own hyper-parameters live in ``options`` and are resolved on construction by
the method's declarations (:mod:`smoothadv.methods.registry`): every option the method has is
filled in with the authors' default at this σ, so a run's config and hash are the same
whether a default was written out or left implicit; an option the method does not have is a
one-line error that lists the method's options.
"""

from __future__ import annotations

from typing import Any

from ..configs import StageConfig, setting, stage_config
from ..errors import UserError, check_positive_int, check_sigma
from ..methods import method_spec
from ..models import list_normalizations
from ..noise import check_noise
from ..runtime.precision import PRECISIONS


@stage_config
class TrainConfig(StageConfig):
    """Everything a training run depends on (kept in the run folder's ``config.json``)."""

    stage = "train"
    extendable = ("epochs",)  # a run continues to more epochs (the schedule ignores the total)

    dataset: str
    out: str = setting(result=False)
    arch: str | None = None
    data_root: str | None = None
    method: str = "gaussian"
    sigma: float = 0.25
    # the training noise (gaussian, uniform, laplace, splitting): hashed only when not gaussian
    noise: str = setting("gaussian", added=True)
    # the method's, resolved (its files hashed by what they are: configs.input_identity)
    options: dict[str, Any] = setting(default_factory=dict, input=("soft_targets",))
    epochs: int = 90
    batch: int = 256
    # skip each epoch's last batch when it is short (a departure; hashed only when on)
    drop_last: bool = setting(False, added=True)
    lr: float = 0.1
    lr_step: int = 30
    lr_gamma: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-4
    lr_delay: int = 0  # epochs by which each lr drop comes later (1: step(epoch) code)
    lr_milestones: tuple[int, ...] | None = None  # drops at these epochs instead of lr_step
    pretrained: str | None = setting(None, input=True)
    # the input layer (normalize / center / none; auto measures a pre-trained file that
    # records none); None: a pre-trained checkpoint's recorded kind, else normalize
    input_normalization: str | None = None
    extra_data: str | None = setting(None, input=True)
    extra_weight: float = 1.0
    channels_last: bool = True
    precision: str = "fp32"  # of the training steps: fp32, tf32 (CUDA), bf16, fp16 (CUDA)
    amp: bool = False  # the older flag: bf16 autocast on CUDA only (ignored on a CPU)
    train_subset: int | None = None
    test_subset: int | None = None
    eval_adv_max: int = 500
    seed: int = 0
    # how and where, not what: left out of the content hash
    compile: str = setting("auto", result=False)  # "on", "off" or "auto" (see README)
    resume: bool = setting(False, result=False)  # continue a run that records no config
    overwrite: bool = setting(False, result=False)  # discard a run of another configuration
    workers: int | None = setting(None, result=False)  # None: 0 on a CPU, more on CUDA
    device: str = setting("auto", result=False)
    deterministic: bool = setting(False, result=False)  # cuDNN/cuBLAS (runtime/backends.py)
    dist_timeout: float | None = setting(None, result=False)  # minutes (runtime/distributed.py)
    progress: bool = setting(True, result=False)
    log: tuple[str, ...] = setting((), result=False)  # tensorboard, wandb, csv (loggers.py)

    def validate(self) -> None:
        check_sigma(self.sigma)
        spec = method_spec(self.method)
        spec.check_noise(check_noise(self.noise))
        options = spec.resolve(self.sigma, self.options)
        object.__setattr__(self, "options", options)
        for need in spec.needs:
            if options.get(need) is None:
                raise UserError(f"--method {self.method} needs "
                                f"--{need.replace('_', '-')} FILE: the vote distribution of a "
                                "σ = 0.25 Gaussian teacher per training image (write it with "
                                "`smoothadv soft-labels`)")
        for name in ("epochs", "batch", "lr_step"):
            check_positive_int(getattr(self, name), f"--{name.replace('_', '-')}")
        for name in ("num_noise", "steps"):
            if options.get(name):
                check_positive_int(options[name], "--m-train" if name == "num_noise"
                                   else "--steps")
        if self.lr_delay < 0:
            raise UserError("--lr-delay must be ≥ 0")
        if self.lr <= 0:
            raise UserError(f"--lr must be positive, got {self.lr}")
        if not 0 < self.lr_gamma <= 1:
            raise UserError(f"--lr-gamma must lie in (0, 1], got {self.lr_gamma}")
        if not 0 <= self.momentum < 1:
            raise UserError(f"--momentum must lie in [0, 1), got {self.momentum}")
        if not self.weight_decay >= 0:
            raise UserError(f"--weight-decay must be ≥ 0, got {self.weight_decay}")
        for name in ("train_subset", "test_subset"):
            if getattr(self, name) is not None:
                check_positive_int(getattr(self, name), f"--{name.replace('_', '-')}")
        if options.get("warmup") is not None and options["warmup"] < 0:
            raise UserError("--warmup must be ≥ 0")
        if self.extra_weight < 0:
            raise UserError("--extra-weight must be ≥ 0")
        if self.log:
            from ..runtime.loggers import check_loggers

            check_loggers(self.log)
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; choose "
                            f"{', '.join(PRECISIONS)}")
        if self.amp and self.precision != "fp32":
            raise UserError("--amp is --precision bf16 on CUDA: give one of them")
        if self.compile not in ("auto", "on", "off"):
            raise UserError(f"compile must be auto, on or off, got {self.compile!r}")
        if self.input_normalization not in (None, "auto", *list_normalizations()):
            raise UserError(f"unknown input normalization {self.input_normalization!r}; "
                            f"choose one of {', '.join(list_normalizations())}, auto")
        if self.input_normalization == "auto" and self.pretrained is None:
            raise UserError("--input-normalization auto measures a pre-trained checkpoint's "
                            "layer: it needs --pretrained (a fresh model takes normalize, "
                            "center or none)")
        deferred = options.get("deferred")
        if deferred and deferred >= self.epochs:
            raise UserError(f"--deferred {deferred} is at or past the last epoch (--epochs "
                            f"{self.epochs}): {self.method}'s weight would be 0 for the whole "
                            f"run, which is noise augmentation; give --deferred below "
                            f"{self.epochs} (0: never deferred) or more --epochs")
        method = spec.build(sigma=self.sigma, **options)  # the builder's own checks
        if method.split == "floor" and method.num_noise > self.batch:
            raise UserError(f"--m-train ({method.num_noise}) cannot exceed --batch "
                            f"({self.batch}): {self.method} splits each batch into m steps")

    @property
    def soft_targets(self) -> str | None:
        """The per-image soft targets file of a method that needs one (CAT-RS)."""
        return self.options.get("soft_targets")
