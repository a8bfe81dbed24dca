"""The one training loop for every method (:mod:`smoothadv.methods`: Gaussian augmentation,
SmoothAdv, stability, MACER, consistency, SmoothMix, CAT-RS), with optional pre-training,
self-training on pseudo-labelled data, resume, and DDP under ``torchrun``.

The data come from :mod:`.data`, the model from :func:`smoothadv.models.build_model`, the run
folder (config, log, atomic checkpoint) from
:class:`smoothadv.runtime.rundir.RunFolder`; what is here is the loop. Each loaded batch is
split into the method's mini-batches; each gets its
standard-normal noise [b, m, C, H, W] from the run's generator, the method's loss and one
optimizer step. Defaults follow the paper: SGD with momentum 0.9, weight decay 1e-4, lr 0.1
decayed ×0.1 every ``lr_step`` epochs, batch 256 (``lr_delay`` = 1 reproduces the CAT-RS,
consistency and SmoothMix code, which steps its scheduler with ``step(epoch)`` after each epoch,
so that each lr lasts one epoch longer: 0–50, 51–100, …).
"""

from __future__ import annotations

import contextlib
import copy
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.data.distributed import DistributedSampler
from tqdm import tqdm

from ..configs import config_document
from ..errors import UserError
from ..methods import TrainingMethod, create_method
from ..models import (
    build_model,
    has_conv,
    normalize_state_dict,
    read_checkpoint,
    save_checkpoint,
    to_channels_last,
    wants_channels_last,
)
from ..noise import GaussianNoise, create_noise
from ..runtime import distributed as D
from ..runtime.backends import device_facts
from ..runtime.forecast import Forecast
from ..runtime.precision import autocast, check_precision
from ..runtime.rundir import RunFolder
from ..smoothing.smooth import Smooth, input_seed, make_generator
from .config import TrainConfig
from .data import assemble_data

COMPILE_MIN_STEPS = 500
CHECKPOINT_NAME = "checkpoint.pth.tar"
LOG_SECONDS = 1.0  # the progress bar reads the running loss from the device at most this often

LOG_COLUMNS = ("epoch", "seconds", "lr", "train_loss", "train_acc", "test_loss", "test_acc",
               "test_adv_acc", "epsilon")


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_state() -> dict[str, Any]:
    """The generators' states at the end of an epoch, stored in the checkpoint for the record.
    Resuming does not need them: every epoch reseeds from (seed, epoch, rank) first."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(),
                             "numpy": torch.from_numpy(np.random.get_state()[1].astype(np.int64)),
                             "python": repr(random.getstate())}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


# ------------------------------------------------------------------------------- loop


def fit_batch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    method: TrainingMethod,
    smooth: Smooth,
    x: torch.Tensor,
    y: torch.Tensor,
    epoch: int,
    weight: float = 1.0,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    soft_targets: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
    scaler: torch.amp.GradScaler | None = None,
    noise_source: GaussianNoise | None = None,
    terms: dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Every optimizer step one loaded batch gives under ``method``.

    ``model`` is what is trained (maybe DDP-wrapped or compiled); ``smooth.base_classifier``
    is the model the method's eval-mode passes (attacks) run on. The batch is split into the
    method's mini-batches; each draws standard-normal noise [b, m, C, H, W] from
    ``generator`` (the default generator when None), computes ``method.loss`` and takes one
    step (through ``scaler`` under fp16 autocast). ``soft_targets`` [B, K] are split alongside
    (CAT-RS). ``noise_source`` (any :mod:`smoothadv.noise` float source; Gaussian when None)
    draws the noise: ε with x + σ·ε the noisy inputs (``training_noise``).
    Returns (summed loss, number correct) as 0-dim float64 tensors on the batch's
    device — nothing is read back to the host, so a CUDA step never waits for the GPU — and
    the number of trained samples. ``terms``, when given, accumulates the method's own terms
    (its logs but ``loss``, ``correct`` and ``count``: MACER's ``cl`` and ``rl``, stability's
    ``xent`` and ``stability``, …) weighted as the loss is, by each step's count, so that the
    terms' epoch means relate as the loss's parts do.
    """
    loss_sum = torch.zeros((), dtype=torch.float64, device=x.device)
    correct = torch.zeros((), dtype=torch.float64, device=x.device)
    count = 0
    tensors = (x, y) if soft_targets is None else (x, y, soft_targets)
    draws_per_image = method.draws_at(epoch)
    noise_source = noise_source or GaussianNoise(method.sigma)
    for part in method.minibatches(*tensors):
        xb, yb = part[0], part[1]
        draws = {"soft_targets": part[2]} if soft_targets is not None else {}
        noise = noise_source.training_noise(xb, draws_per_image, generator)
        model.train()
        with autocast():
            loss, logs = method.loss(model, xb, yb, noise, epoch,
                                     attack_model=smooth.base_classifier, generator=generator,
                                     **draws)
        optimizer.zero_grad(set_to_none=True)
        if scaler is None:
            (weight * loss).backward()
            optimizer.step()
        else:
            scaler.scale(weight * loss).backward()
            scaler.step(optimizer)
            scaler.update()
        # a method's logs are 0-dim tensors (floats from a method written elsewhere work too)
        loss_sum += torch.as_tensor(logs["loss"], dtype=torch.float64,
                                    device=x.device) * logs["count"]
        correct += torch.as_tensor(logs["correct"], dtype=torch.float64, device=x.device)
        count += logs["count"]
        if terms is not None:
            for name, value in logs.items():
                if name not in ("loss", "correct", "count"):
                    weighted = torch.as_tensor(value, dtype=torch.float64,
                                               device=x.device) * logs["count"]
                    terms[name] = terms[name] + weighted if name in terms else weighted
    return loss_sum, correct, count


class Trainer:
    """Runs the epochs of a :class:`TrainConfig`: data, model, optimizer and method are built
    by their own modules; the trainer holds them and loops."""

    step_forecast: Forecast | None = None  # set by run() (main process)
    steps_done = 0
    # with loggers: the method's own terms summed over an epoch's steps (fit_batch's terms),
    # then their epoch means
    epoch_terms: dict[str, Any] | None = None

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.method = method = create_method(cfg.method, sigma=cfg.sigma, **cfg.options)
        if cfg.precision == "fp16" and method.input_gradients:
            # decided: no fp16 for attacks; the input gradients of the attack or adversarial
            # step would run under autocast without loss scaling and could underflow to 0
            raise UserError(f"--precision fp16 with {cfg.method}: its training step takes "
                            "gradients with respect to the input, which fp16 without loss "
                            "scaling lets underflow; use --precision bf16 (fp32's range) or "
                            "fp32")
        self.device = D.setup_device(cfg.device, precision=cfg.precision,
                                     deterministic=cfg.deterministic, join=False)
        self.distributed = D.init_process_group(self.device, cfg.dist_timeout)
        self.out = Path(cfg.out)
        self.folder = RunFolder(self.out, CHECKPOINT_NAME, LOG_COLUMNS)
        same_run = self.folder.claim(cfg, overwrite=cfg.overwrite, resume=cfg.resume,
                                     main=D.is_main())
        data = assemble_data(cfg, self.device)
        self.data = data
        self.spec, self.num_classes = data.spec, data.num_classes
        self.train_set, self.test_set = data.train_set, data.test_set
        self.labelled, self.extra, self.test_loader = data.labelled, data.extra, data.test
        built = build_model(cfg.arch or data.spec.default_arch, data.num_classes,
                            data.image_size, data.train, data.spec.mean, data.spec.std,
                            pretrained=cfg.pretrained, normalization=cfg.input_normalization,
                            sigma=cfg.sigma, seed=cfg.seed,
                            announce=print if D.is_main() else None)
        self.arch, self.image_size = built.arch, built.image_size
        self.mean, self.std = built.mean, built.std
        self.normalization, self.fresh = built.normalization, built.fresh
        model = built.model.to(self.device)
        self.channels_last = cfg.channels_last and wants_channels_last(model)
        if self.channels_last:
            model = to_channels_last(model)
        self.model = model
        self.ddp = model
        if self.distributed:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = nn.parallel.DistributedDataParallel(model, device_ids=ids)
        self.optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                         weight_decay=cfg.weight_decay)
        self.scheduler = _scheduler(self.optimizer, cfg)
        warmup = cfg.options.get("warmup")
        if warmup and warmup > cfg.epochs and D.is_main():
            print(f"smoothadv: note: --warmup {warmup} is longer than the run (--epochs "
                  f"{cfg.epochs}): what it warms up reaches only {cfg.epochs / warmup:.0%} "
                  "of its value")
        self.noise = create_noise(cfg.noise, cfg.sigma)
        # --amp, the older flag, is bf16 on CUDA and nothing on a CPU
        self.precision = ("bf16" if cfg.amp and self.device.type == "cuda" else cfg.precision)
        notice = check_precision(self.precision, self.device)
        if notice and D.is_main():
            print(f"smoothadv: {notice}")
        self.scaler = (torch.amp.GradScaler(self.device.type) if self.precision == "fp16"
                       else None)
        self.start_epoch = 0
        self.resumed = False
        if same_run or cfg.resume:
            self._resume()
        self.step_model, attacked = self.ddp, model
        self.compiled = self._compile_decision()
        if self.compiled and self.distributed:
            # under DDP a rank that falls back to eager mid-step would leave the others in a
            # collective: compiled code is tried on each rank first, and used only if it worked
            # on every rank (one decision for all)
            self.compiled = D.all_ranks(self._compiled_step_works())
            if not self.compiled and D.is_main():
                print("smoothadv: the compiled training step failed on some rank; every rank "
                      "trains eagerly", file=sys.stderr)
        if self.compiled:
            # measured (bench 8): compiling the training steps alone is slower than eager on
            # the CPU; compiling them together with the attack's passes is 1.2× faster
            from ..runtime.compile import compile_for_training

            self.step_model, failure = compile_for_training(self.ddp)
            if failure is None:
                attacked, _ = compile_for_training(model)
            else:
                self.compiled = False
        self.smooth = Smooth(attacked, self.num_classes, cfg.sigma)
        # compiled code fails lazily, at its first step (an inductor or Triton error): until
        # one step has run, each batch is guarded and falls back to eager (see _fit_guarded);
        # under DDP the trial above proved it on every rank instead
        self.compile_proven = not self.compiled or self.distributed

    def _compiled_step_works(self) -> bool:
        """Whether a compiled forward and backward of this rank's model runs, on a batch of
        zeros of the training shape (no collective; weights, buffers and random state are left
        as they were)."""
        from ..runtime.compile import compile_for_training

        saved = (copy.deepcopy(self.model.state_dict()), torch.get_rng_state())
        try:
            compiled, failure = compile_for_training(self.model)
            if failure is not None:
                return False
            x = torch.zeros(2, *self.train_set[0][0].shape, device=self.device)
            self.model.train()
            with self._autocast():
                compiled(self._to_device(x)).float().sum().backward()
            return True
        except Exception as err:  # noqa: BLE001 — any failure of compiled code: eager
            print(f"smoothadv: rank {D.rank()}: the compiled training step failed "
                  f"({type(err).__name__})", file=sys.stderr)
            return False
        finally:
            self.model.load_state_dict(saved[0])
            torch.set_rng_state(saved[1])
            self.optimizer.zero_grad(set_to_none=True)

    def _compile_decision(self) -> bool:
        """``compile``: on, off, or auto = on for conv nets whose run has at least
        :data:`COMPILE_MIN_STEPS` optimizer steps (long enough to repay a compile of 15–30 s)."""
        cfg = self.cfg
        if cfg.compile != "auto":
            return cfg.compile == "on"
        steps = (cfg.epochs - self.start_epoch) * len(self.labelled)
        return has_conv(self.model) and steps >= COMPILE_MIN_STEPS

    @property
    def checkpoint_path(self) -> Path:
        return self.folder.checkpoint

    def _resume(self) -> None:
        """Continue from the run's checkpoint; with none yet (a run killed before its first
        epoch ended) start from scratch, so that re-running the same command always works."""
        if not self.checkpoint_path.exists():
            if D.is_main():
                print(f"no checkpoint at {self.checkpoint_path} yet; starting the run")
            return
        if D.is_main():
            print(f"resuming {self.out} from its checkpoint")
        self.resumed = True
        ckpt = read_checkpoint(self.checkpoint_path)
        self.model.load_state_dict(normalize_state_dict(ckpt["state_dict"]))
        self.optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt.get("scheduler"):
            self.scheduler.load_state_dict(ckpt["scheduler"])
        if self.scaler is not None and ckpt.get("grad_scaler"):
            self.scaler.load_state_dict(ckpt["grad_scaler"])
        self.start_epoch = int(ckpt["epoch"])

    def _autocast(self):
        return autocast(self.precision, self.device.type)

    def _to_device(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, non_blocking=True)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    # ----------------------------------------------------------------------- one epoch

    def train_epoch(self, epoch: int) -> tuple[float, float]:
        """One pass over the labelled data (alternating with extra batches); returns the
        mean loss and accuracy over every trained sample."""
        cfg = self.cfg
        seed = cfg.seed * 1000 + epoch
        _seed_everything(seed + 7919 * D.rank())
        sources = self._batches(epoch, seed)
        self.epoch_terms = {} if cfg.log else None
        total_loss = torch.zeros((), dtype=torch.float64, device=self.device)
        total_correct = torch.zeros((), dtype=torch.float64, device=self.device)
        total = 0
        total_batches = self.batches_per_epoch()
        show = cfg.progress and D.is_main()
        bar = tqdm(sources, total=total_batches, desc=f"epoch {epoch + 1}/{cfg.epochs}",
                   unit="batch", disable=not show, dynamic_ncols=True, mininterval=0.5)
        shown = time.perf_counter()
        for kind, batch in bar:
            x = self._to_device(batch[0])
            y = batch[1].to(self.device, non_blocking=True)
            soft = (batch[2].to(self.device, x.dtype, non_blocking=True) if len(batch) > 2
                    else None)
            weight = cfg.extra_weight if kind == "extra" else 1.0
            loss_sum, correct, count = self._fit_guarded(x, y, epoch, weight, soft)
            total_loss += loss_sum
            total_correct += correct
            total += count
            if self.step_forecast is not None:
                self.steps_done += 1
                self.step_forecast.done(self.steps_done)
            if show and time.perf_counter() - shown >= LOG_SECONDS:
                # the one read-back of the running sums per interval (a host-device sync)
                shown = time.perf_counter()
                loss_now, correct_now = torch.stack([total_loss, total_correct]).tolist()
                bar.set_postfix(loss=f"{loss_now / max(total, 1):.3f}",
                                acc=f"{correct_now / max(total, 1):.3f}", refresh=False)
        # every rank's samples count: the logged figures are over the whole epoch's data
        sums = D.sum_over_ranks(torch.stack([total_loss, total_correct,
                                             torch.tensor(float(total), dtype=torch.float64,
                                                          device=self.device)]))
        loss_all, correct_all, count_all = sums.tolist()
        if self.epoch_terms:  # the method's own terms, epoch means (the same keys every rank)
            names = sorted(self.epoch_terms)
            means = D.sum_over_ranks(torch.stack([self.epoch_terms[k] for k in names]))
            self.epoch_terms = {k: v / max(count_all, 1) for k, v in zip(names, means.tolist())}
        return loss_all / max(count_all, 1), correct_all / max(count_all, 1)

    def batches_per_epoch(self) -> int:
        """Loaded batches of one epoch on this rank: the labelled ones, and as many extra
        (pseudo-labelled) ones as alternate with them."""
        total = len(self.labelled)
        if self.extra is not None:
            total += min(len(self.labelled), len(self.extra))
        return total

    def _fit_guarded(self, x: torch.Tensor, y: torch.Tensor, epoch: int, weight: float,
                     soft: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, int]:
        """:func:`fit_batch` on this batch; until a compiled step has succeeded once, a failure
        of the compiled model (inductor, Triton, an unsupported operator: they surface at the
        first forward or backward) restores the weights, optimizer, scaler and random state
        from before the batch, says so in one line, and redoes the batch eagerly — the run then
        equals an eager run from that batch on."""
        def step():
            terms: dict[str, torch.Tensor] | None = {} if self.epoch_terms is not None else None
            result = fit_batch(self.step_model, self.optimizer, self.method, self.smooth, x, y,
                               epoch, weight, self._autocast, soft_targets=soft,
                               scaler=self.scaler, noise_source=self.noise, terms=terms)
            for name, value in (terms or {}).items():  # a batch redone eagerly counts once
                before = self.epoch_terms.get(name)
                self.epoch_terms[name] = value if before is None else before + value
            return result

        if self.compile_proven:
            return step()
        saved = (copy.deepcopy(self.model.state_dict()),
                 copy.deepcopy(self.optimizer.state_dict()),
                 self.scaler.state_dict() if self.scaler is not None else None,
                 torch.get_rng_state(),
                 torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)
        try:
            result = step()
        except Exception as err:  # noqa: BLE001 — any failure of compiled code: go eager
            first = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
            print(f"smoothadv: the compiled training step failed ({type(err).__name__}: "
                  f"{first}); training eagerly", file=sys.stderr)
            self.model.load_state_dict(saved[0])
            self.optimizer.load_state_dict(saved[1])
            if self.scaler is not None:
                self.scaler.load_state_dict(saved[2])
            torch.set_rng_state(saved[3])
            if saved[4] is not None:
                torch.cuda.set_rng_state_all(saved[4])
            self.optimizer.zero_grad(set_to_none=True)
            self.step_model, self.smooth.base_classifier = self.ddp, self.model
            self.compiled = False
            result = step()
        self.compile_proven = True
        return result

    def _batches(self, epoch: int, seed: int):
        """This epoch's batches, read lazily: ("labelled", (x, y)), alternating with
        ("extra", (x, y)) while pseudo-labelled batches last. Shuffling is seeded per epoch,
        so a resumed run sees the same order as an uninterrupted one."""
        self.labelled.generator.manual_seed(seed)
        if isinstance(self.labelled.sampler, DistributedSampler):
            self.labelled.sampler.set_epoch(epoch)
        extra = None
        if self.extra is not None:
            self.extra.generator.manual_seed(seed + 1)
            if isinstance(self.extra.sampler, DistributedSampler):
                self.extra.sampler.set_epoch(epoch)
            extra = iter(self.extra)
        for batch in self.labelled:
            yield "labelled", batch
            if extra is not None:
                more = next(extra, None)
                if more is not None:
                    yield "extra", more

    @torch.no_grad()
    def evaluate(self, epoch: int) -> tuple[float, float, float]:
        """(loss, accuracy) of f under noise σ on the test split, and, for SmoothAdv, the
        accuracy of f on x′ + δ with x′ attacked at this epoch's ε (first ``eval_adv_max``
        test inputs; NaN otherwise).

        Shared by the ranks: rank r loads and evaluates the test batches r, r + W, …
        (:func:`~smoothadv.train.data.rank_batches`) and the sums meet in one all-reduce, so no
        rank idles while another evaluates. Test batch i draws its noise
        from its own generator (seeded from the run's seed and i), so the figures do not depend
        on the number of ranks. Every rank evaluates with rank 0's buffers (BatchNorm's running
        statistics, which drift apart over the ranks in training), so the figures are those of
        the saved checkpoint. Sums stay on the device until that one read-back."""
        cfg = self.cfg
        model = self.model
        D.broadcast_buffers(model)  # rank 0's running statistics: those the checkpoint holds
        model.eval()
        sums = torch.zeros(5, dtype=torch.float64, device=self.device)
        eps = self.method.epsilon_at(epoch)
        attack = self.method.attack
        world, rank = D.world_size(), D.rank()
        for j, (x, y) in enumerate(self.test_loader):  # this rank's batches only
            i = rank + j * world  # the batch's number in the split
            start = i * cfg.batch  # test inputs before it (the adversarial share: the first)
            g = make_generator(input_seed(cfg.seed + 17, i), self.device)
            x, y = self._to_device(x), y.to(self.device, non_blocking=True)
            noisy = x + cfg.sigma * self.noise.training_noise(x, 1, g)[:, 0]
            with self._autocast():
                logits = model(noisy).float()
            sums[0] += F.cross_entropy(logits, y, reduction="sum").double()
            sums[1] += (logits.argmax(1) == y).sum()
            sums[2] += y.shape[0]
            if attack is not None and eps > 0 and start < cfg.eval_adv_max:
                keep = int(min(y.shape[0], cfg.eval_adv_max - start))
                xk, yk = x[:keep], y[:keep]
                noise = self.smooth.sample_noise(xk, self.method.draws_at(epoch), g)
                x_adv = attack(self.smooth, xk, yk, noise=noise, generator=g, epsilon=eps)
                with self._autocast():
                    logits = model(x_adv + noise[:, 0]).float()
                sums[3] += (logits.argmax(1) == yk).sum()
                sums[4] += keep
        loss_sum, correct, total, adv_correct, adv_total = D.sum_over_ranks(sums).tolist()
        adv_acc = adv_correct / adv_total if adv_total else float("nan")
        return loss_sum / max(total, 1), correct / max(total, 1), adv_acc

    # ----------------------------------------------------------------------- whole run

    def metadata(self) -> dict[str, Any]:
        """What the checkpoint records beside the weights (the paper's keys and ours)."""
        cfg = self.cfg
        return dict(dataset=cfg.dataset, num_classes=self.num_classes,
                    in_channels=len(self.mean), image_size=self.image_size,
                    normalization=self.normalization.kind,
                    mean=self.mean, std=self.std, sigma=cfg.sigma,
                    method=cfg.method,
                    hparams={k: v for k, v in cfg.to_dict().items() if k in cfg.result_fields()})

    def document(self) -> dict[str, Any]:
        """The run's ``config.json``: the config and what the run resolved."""
        return config_document(self.cfg, arch=self.arch, device=str(self.device),
                               world_size=D.world_size(),
                               global_batch=self.cfg.batch * D.world_size(),
                               input_layer=self.normalization.kind, fresh_weights=self.fresh,
                               **device_facts(self.device, self.cfg.deterministic))

    def _start_forecasts(self, main: bool) -> None:
        """Two estimates of the run's time (main process; said with ``progress``): the
        training steps alone, once a few steps after the first two are timed, and the whole
        run, from its first epoch (steps and evaluation)."""
        say = (lambda m: tqdm.write(f"smoothadv: {m}", file=sys.stderr)) if self.cfg.progress \
            else None
        epochs = self.cfg.epochs - self.start_epoch
        steps = self.batches_per_epoch()
        self.steps_done = 0
        self.step_forecast = (Forecast("train (training steps alone; each epoch's evaluation "
                                       "comes on top)", steps * epochs, "step", warmup=2,
                                       say=say) if main and epochs > 0 else None)
        self.epoch_forecast = Forecast("train", epochs, "epoch", warmup=0, min_seconds=0,
                                       say=say)

    def run(self) -> Path:
        """Train from ``start_epoch`` to ``epochs``; every rank trains and evaluates its share,
        rank 0 logs and checkpoints each epoch. The other ranks go on to the next epoch meanwhile
        (its first gradient all-reduce waits for rank 0); all meet once more at the end, so that
        every rank returns with the last checkpoint written."""
        cfg = self.cfg
        main = D.is_main()
        loggers = None
        if main:
            self.folder.start(self.document(), self.start_epoch if self.resumed else None)
            if cfg.log:
                from ..runtime.loggers import Loggers

                loggers = Loggers(cfg.log, self.out, cfg.to_dict())
        final: dict[str, float] = {}
        self._start_forecasts(main)
        for epoch in range(self.start_epoch, cfg.epochs):
            t0 = time.perf_counter()
            lr = self.optimizer.param_groups[0]["lr"]
            train_loss, train_acc = self.train_epoch(epoch)
            self.scheduler.step()
            test_loss, test_acc, adv_acc = self.evaluate(epoch)
            if main:
                seconds = time.perf_counter() - t0
                self.folder.append((epoch + 1, f"{seconds:.2f}", f"{lr:.6g}", f"{train_loss:.4f}",
                                    f"{train_acc:.4f}", f"{test_loss:.4f}", f"{test_acc:.4f}",
                                    f"{adv_acc:.4f}", f"{self.method.epsilon_at(epoch):.4f}"))
                self.epoch_forecast.done(epoch + 1 - self.start_epoch)
                if loggers is not None:  # the log row's figures, unrounded
                    final = {"train_loss": train_loss, "train_acc": train_acc,
                             "test_loss": test_loss, "test_acc": test_acc}
                    loggers.scalars(epoch + 1, {
                        **final, "lr": lr, "seconds": seconds, "epsilon":
                        self.method.epsilon_at(epoch),
                        **{f"term/{k}": v for k, v in (self.epoch_terms or {}).items()},
                        **({} if math.isnan(adv_acc) else {"test_adv_acc": adv_acc})})
                save_checkpoint(self.checkpoint_path, self.model, arch=self.arch,
                                epoch=epoch + 1, meta=self.metadata(),
                                optimizer=self.optimizer,
                                extra={"scheduler": self.scheduler.state_dict(),
                                       "config_hash": cfg.content_hash(),
                                       "grad_scaler": (self.scaler.state_dict()
                                                       if self.scaler else None),
                                       "rng": _rng_state()})
                if cfg.progress:
                    tqdm.write(f"epoch {epoch + 1}: train loss {train_loss:.3f} acc "
                               f"{train_acc:.3f} | test (noise σ={cfg.sigma:g}) loss "
                               f"{test_loss:.3f} acc {test_acc:.3f}"
                               + ("" if math.isnan(adv_acc) else f" | attacked {adv_acc:.3f}"))
        if loggers is not None:
            loggers.close(final)
        D.barrier()
        return self.checkpoint_path


def _scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    """StepLR (×γ every ``lr_step`` epochs); with ``lr_delay`` = d each drop comes d epochs
    later: lr at epoch e = lr·γ^⌊max(e − d, 0)/lr_step⌋ (d = 1: the step(epoch) code)."""
    if cfg.lr_milestones:
        return torch.optim.lr_scheduler.MultiStepLR(
            optimizer, [v + cfg.lr_delay for v in cfg.lr_milestones], cfg.lr_gamma)
    if cfg.lr_delay == 0:
        return torch.optim.lr_scheduler.StepLR(optimizer, cfg.lr_step, cfg.lr_gamma)
    step, gamma, delay = cfg.lr_step, cfg.lr_gamma, cfg.lr_delay
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda e: gamma ** (max(e - delay, 0) // step))


def train(cfg: TrainConfig) -> Path:
    """Run a whole training as configured; returns the checkpoint path."""
    trainer = Trainer(cfg)
    try:
        return trainer.run()
    finally:
        D.destroy_process_group()
