"""The evaluation stages: ``certify`` (CERTIFY, Cohen et al. Algorithm 2, or sequential
certification at given radii), ``predict`` (PREDICT, Algorithm 1) and ``attack`` (SmoothAdv
on g, then PREDICT on the attacked points), each one config and one runner.

One runner serves all three and every sampling mode (fixed n, sequential, sound): load the
model and data (:mod:`.eval_setup`), select the inputs, refuse what would fail on the first input
before any file is written, decide on compiling, keep the config beside the record file
(``OUT.config.json``), write one row per input (resumable, sharded under ``torchrun``) and
return the closing summary line.

A record file belongs to one configuration: running into a record file whose config has
another content hash (or was certified from another checkpoint file's content) is refused
in one line naming the options that differ, unless ``overwrite`` is set.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..attacks.smoothadv import DDN_DECISIONS, ESTIMATORS, attack_from_options, list_attacks
from ..configs import StageConfig, config_document, file_fingerprint, setting, stage_config
from ..errors import UserError, check_alpha, check_epsilon, check_positive_int, check_sigma
from ..models.ensemble import Ensemble, check_members
from ..noise import DEFAULT_TEMPLATE, check_l1_options, check_smoothing, check_template
from ..records.examples import ExampleSaver
from ..records.files import (
    CERTIFY_COLUMNS,
    PREDICT_COLUMNS,
    ThreatModel,
    check_record_target,
    read_records,
)
from ..records.loops import (
    ATTACK_COLUMNS,
    SEQUENTIAL_COLUMNS,
    run_records,
    run_sequential_records,
    select_indices,
)
from ..records.watch import RecordWatch
from ..runtime import distributed as D
from ..runtime.backends import device_facts, same_stream
from ..runtime.compile import compile_for_inference, should_compile
from ..runtime.loggers import Loggers, check_loggers
from ..runtime.precision import PRECISIONS, at_precision, check_precision
from ..smoothing.sequences import list_sequences
from ..smoothing.sequential import DEFAULT_ALPHA_SPLIT, SequentialCertifier
from ..smoothing.smooth import Smooth, input_seed, make_generator
from .eval_setup import load_for_eval, model_facts
from .modes import DERANDOMIZED, SEQUENTIAL, CertifyMode, check_mode, choose_mode
from .registry import StageResult, register_stage, say


@stage_config
class EvalConfig(StageConfig):
    """What certify, predict and attack share: the model, the data and PREDICT's sampling."""

    # the files read are hashed by what they are, not where they lie (configs.input_identity)
    checkpoint: str | None = setting(None, input=True)  # ours or the paper's; or classifier
    # timm:NAME[:pretrained], torchvision:NAME[:WEIGHTS] or a checkpoint (+ denoiser)
    classifier: str | None = setting(None, input=True)
    denoiser: str | None = setting(None, input=True)  # dncnn:CKPT or diffusion:PATH_OR_HUB_ID
    # an ensemble's checkpoints, in order (models/ensemble.py), and its K-consensus (0: off)
    members: tuple[str, ...] = setting((), added=True, input=True)
    consensus: int = setting(0, added=True)
    top_up: bool = True
    class_map: str | None = None  # classifier classes → data set classes (imagenet-cifar10)
    dataset: str | None = None  # None: the checkpoint's
    data_root: str | None = None
    split: str = "test"
    skip: int = 1
    max: int = -1
    shard: int = 0  # with shards = K: the shard-th of K interleaved parts of the selection
    shards: int = 1
    sigma: float | None = None  # None: the checkpoint's training σ
    n: int = 100_000
    alpha: float = 0.001
    input_normalization: str | None = None
    precision: str = "fp32"  # fp32 (the authors'), bf16 or fp16 autocast (a departure)
    sound: bool = False  # integer rounded-Gaussian noise on the 8-bit grid
    # sound, derandomized or splitting: each input x replaced by x̃ = round(255x)/255 before
    # certifying. Preprocessing only: the certificate is that path's own, about x̃ (recorded in
    # the config); tests/test_conformance.py checks that it adds no certificate path
    round_inputs: bool = False
    # ℓ1 certificates (added after the first records: hashed only when not the default)
    noise: str = setting("gaussian", added=True)  # gaussian, uniform, laplace, splitting
    norm: str = setting("l2", added=True)  # l2 (Gaussian), l1, linf
    seed: int = 0
    out: str = setting("", result=False)
    # how, not what: rows do not depend on these
    batch: int = setting(1000, result=False)
    compile: str = setting("auto", result=False)
    device: str = setting("auto", result=False)
    deterministic: bool = setting(False, result=False)  # cuDNN/cuBLAS (runtime/backends.py)
    dist_timeout: float | None = setting(None, result=False)  # minutes (runtime/distributed.py)
    progress: bool = setting(True, result=False)
    overwrite: bool = setting(False, result=False)
    log: tuple[str, ...] = setting((), result=False)  # tensorboard, wandb, csv (loggers.py)

    def validate(self) -> None:
        if not self.out:
            raise UserError("give the record file: --out FILE")
        if self.log:
            check_loggers(self.log)
        if self.members or self.consensus:
            check_ensemble(self)
        if self.sigma is not None:
            check_sigma(self.sigma)
        check_alpha(self.alpha)
        check_positive_int(self.n, "--n")
        check_positive_int(self.batch, "--batch")
        if self.skip < 1:
            raise UserError(f"--skip must be at least 1, got {self.skip}")
        if self.max != -1 and self.max < 1:
            raise UserError(f"--max must be a positive number of inputs (-1: all), got "
                            f"{self.max}")
        if self.shards < 1 or not 0 <= self.shard < self.shards:
            raise UserError(f"--shard must lie in [0, --shards), got {self.shard} of "
                            f"{self.shards}")
        if self.split not in ("train", "test"):
            raise UserError(f"--split must be train or test, got {self.split!r}")
        if self.compile not in ("auto", "on", "off"):
            raise UserError(f"compile must be auto, on or off, got {self.compile!r}")
        if self.round_inputs and not (self.sound or self.noise == "splitting"
                                      or self.certify_mode() is DERANDOMIZED):
            raise UserError("--round-inputs goes with --sound, --derandomized or --noise "
                            "splitting (its randomized certificate on the inputs the "
                            "deterministic one certifies)")
        check_smoothing(self.noise, self.norm, self.sound)
        if self.precision not in PRECISIONS:
            raise UserError(f"unknown precision {self.precision!r}; choose "
                            f"{', '.join(PRECISIONS)}")

    # ------------------------------------------------------------------ per stage

    def load(self):
        return load_for_eval(self, sound=self.sound, round_inputs=self.round_inputs,
                             noise=self.noise, norm=self.norm)

    def samples_per_input(self) -> int:
        return self.n

    def facts(self) -> dict[str, Any]:
        return {}

    # what each stage adds to the one runner (overridden by certify and attack)

    def certify_mode(self) -> CertifyMode | None:
        """The certification mode (:mod:`.modes`); None for predict and attack."""
        return None

    def record_options(self) -> dict[str, Any]:
        """Keyword arguments of :func:`~smoothadv.records.loops.run_records` for this stage."""
        return {}

    def threat(self, norm: str) -> ThreatModel:
        """The set the radii of this stage's records certify over."""
        return ThreatModel.of(norm, False, False)

    def hooks(self, smooth: Smooth) -> tuple[dict[str, Any], Any]:
        """(hooks for :func:`~smoothadv.records.loops.run_records`, a function to call after
        the loop or None): nothing but for attack."""
        return {}, None


def check_ensemble(cfg: EvalConfig) -> None:
    """An ensemble's members: at least two, none listed twice, not beside a single checkpoint
    or --classifier; its K-consensus between 2 and the number of members (one line each)."""
    if cfg.consensus and not cfg.members:
        raise UserError("--consensus K needs an ensemble: give at least two checkpoints")
    if cfg.checkpoint or cfg.classifier:
        raise UserError("an ensemble is given by its checkpoints alone (not with --classifier)")
    seen: dict[str, str] = {}
    for member in cfg.members:
        key = str(Path(member).resolve())
        if key in seen:
            raise UserError(f"{member} is listed twice in the ensemble")
        seen[key] = member
    check_members(len(cfg.members), cfg.consensus)


@stage_config
class CertifyConfig(EvalConfig):
    """CERTIFY over a data set, or sequential certification (``sequential``)."""

    stage = "certify"

    n0: int = 100
    randomized_cp: bool = False
    sequential: bool = False
    radii: tuple[float, ...] | None = None
    budget: int = 100_000
    sequence: str = "betting"
    labelled: bool = False
    alpha_split: float | None = None  # None: DEFAULT_ALPHA_SPLIT
    anytime_tol: float | None = None
    two_sided: bool = setting(False, added=True)  # uniform/splitting: λ(p̲_A − p̄_B) too
    box: bool = setting(False, added=True)  # the box-constrained ℓ1 radius (post hoc)
    derandomized: bool = setting(False, added=True)  # Levine & Feizi: exact, no α
    # derandomized: the per-pixel offset template (seed0 by default, or zero); "" elsewhere.
    # Set for every derandomized config, so records of the old zero-template, open-radius
    # certificate (which lack it) never share a hash with new ones
    template: str = setting("", added=True)

    def certify_mode(self) -> CertifyMode:
        return choose_mode(self.sequential, self.derandomized)

    def validate(self) -> None:
        super().validate()
        mode = self.certify_mode()
        given = {f.name for f in dataclasses.fields(self)
                 if getattr(self, f.name) != _DEFAULTS[f.name]}
        check_mode(mode, given, both=self.sequential and self.derandomized)
        check_positive_int(self.n0, "--n0")
        check_l1_options(self.noise, self.norm, self.two_sided, self.box)
        if mode is DERANDOMIZED:
            if self.noise != "splitting":
                raise UserError("--derandomized is Levine & Feizi's certificate for --noise "
                                "splitting")
            object.__setattr__(self, "template", check_template(self.template or
                                                                DEFAULT_TEMPLATE))
        if mode is not SEQUENTIAL:
            return
        check_positive_int(self.budget, "--budget")
        if self.sequence not in list_sequences():
            raise UserError(f"unknown sequence {self.sequence!r}; choose "
                            f"{', '.join(list_sequences())}")
        if not self.radii and self.anytime_tol is None:
            raise UserError("--sequential needs --radii (or --anytime-tol)")
        if self.radii is not None:
            object.__setattr__(self, "radii", tuple(sorted(set(self.radii))))

    def record_options(self) -> dict[str, Any]:
        options = {"two_sided": self.two_sided, "box": self.box,
                   "derandomized": self.derandomized,
                   **({"template": self.template} if self.derandomized else {})}
        return {"n0": self.n0, "randomized": self.randomized_cp, "certify_options": options}

    def threat(self, norm: str) -> ThreatModel:
        return ThreatModel.of(norm, self.box, self.derandomized)

    def samples_per_input(self) -> int:
        if self.sequential:  # sequential runs average about a tenth of their budget
            return self.budget // 10 + (0 if self.labelled else self.n0)
        return self.n + self.n0


_DEFAULTS = {f.name: f.default for f in dataclasses.fields(CertifyConfig)}


@stage_config
class PredictConfig(EvalConfig):
    """PREDICT over a data set."""

    stage = "predict"


@stage_config
class AttackConfig(EvalConfig):
    """SmoothAdv-PGD or -DDN on g (m = ``num_noise`` draws per input), then PREDICT on the
    attacked points; the paper's evaluation defaults."""

    stage = "attack"

    attack: str = "pgd"
    epsilon: float = 0.5
    steps: int = 20
    num_noise: int = 32
    estimator: str = "grad"
    ddn_gamma: float | None = None  # None: 1 − (3/510/ε)^(1/T), the paper's evaluation
    ddn_init_norm: float = 1.0
    ddn_decision: str = "vote"
    ddn_strict_epsilon: bool = False
    base_attack: bool = False
    attack_batch: int = 16
    save_examples: str | None = setting(None, result=False)

    def validate(self) -> None:
        super().validate()
        if self.noise != "gaussian" or self.norm != "l2":
            raise UserError("the attacks are ℓ2 attacks on the Gaussian-smoothed classifier: "
                            "attack takes neither --noise nor --norm")
        check_epsilon(self.epsilon)
        check_positive_int(self.steps, "--steps")
        check_positive_int(self.num_noise, "--m-test")
        check_positive_int(self.attack_batch, "--attack-batch")
        for name, value, choices in (("--attack", self.attack, list_attacks()),
                                     ("--estimator", self.estimator, ESTIMATORS),
                                     ("--ddn-decision", self.ddn_decision, DDN_DECISIONS)):
            if value not in choices:
                raise UserError(f"{name} must be one of {', '.join(choices)}, got {value!r}")

    def facts(self) -> dict[str, Any]:
        return {"epsilon": self.epsilon}

    def hooks(self, smooth: Smooth) -> tuple[dict[str, Any], Any]:
        return attack_hooks(smooth, self)

    def build_attack(self):
        """The attack object the config describes."""
        return attack_from_options(self.attack, epsilon=self.epsilon, steps=self.steps,
                                   num_noise_vectors=self.num_noise, estimator=self.estimator,
                                   ddn_gamma=self.ddn_gamma, ddn_init_norm=self.ddn_init_norm,
                                   ddn_decision=self.ddn_decision,
                                   strict_epsilon=self.ddn_strict_epsilon)


# ------------------------------------------------------------------------- attack hooks


def attack_hooks(smooth: Smooth, cfg: AttackConfig):
    """({attack, on_attacked, group} for :func:`~smoothadv.records.loops.run_records`, finish).

    Seeding rule (so that resumed and sharded runs repeat every attack): input idx draws its
    m noise vectors from ``input_seed(seed + 1, idx)``; the random directions that replace
    zero gradients come from ``input_seed(seed + 2, first idx of the chunk)``. With
    ``base_attack`` the base classifier is attacked through one draw of zero noise.
    """
    attack = cfg.build_attack()

    def run(x, y, idxs):
        if cfg.base_attack:
            noise = torch.zeros((x.shape[0], 1, *x.shape[1:]), device=x.device)
        else:
            noise = torch.cat([
                smooth.sample_noise(x[j : j + 1], cfg.num_noise,
                                    make_generator(input_seed(cfg.seed + 1, i), x.device))
                for j, i in enumerate(idxs)
            ])
        gen = make_generator(input_seed(cfg.seed + 2, idxs[0]), x.device)
        return attack(smooth, x, y, noise=noise, generator=gen)

    saver = ExampleSaver(cfg.save_examples) if cfg.save_examples else None
    hooks = dict(attack=run, on_attacked=saver, group=cfg.attack_batch)
    return hooks, (saver.finish if saver else None)


# ------------------------------------------------------------------------- the record's config


RECORD_COLUMNS = {"certify": CERTIFY_COLUMNS, "predict": PREDICT_COLUMNS,
                  "attack": ATTACK_COLUMNS}


def config_path(out: str | Path) -> Path:
    out = Path(out)
    return out.with_name(out.name + ".config.json")


def claim_record(cfg: EvalConfig, fingerprint: str | None) -> None:
    """Make sure ``cfg.out`` belongs to ``cfg``: a record file written under another
    configuration (another content hash or checkpoint content) is refused in one line, or
    removed with ``overwrite``. Records without a hashed config (older files) are resumed.
    Under torchrun every rank checks, so that all refuse together (a refusal on rank 0 alone
    would leave the others waiting at the merge); only rank 0 removes files."""
    out, conf = Path(cfg.out), config_path(cfg.out)
    # nothing is written beside or into a file before it is known to be this program's record:
    # a folder or a file of another kind (a checkpoint, notes) is refused, with --overwrite too
    columns = SEQUENTIAL_COLUMNS if cfg.certify_mode() is SEQUENTIAL else \
        RECORD_COLUMNS[cfg.stage]
    state = check_record_target(out, columns)
    if cfg.overwrite:
        if D.is_main():
            for path in (out, conf, *out.parent.glob(out.name + ".part*")):
                path.unlink(missing_ok=True)
        D.barrier()  # no rank reads the old files while rank 0 removes them
        return
    if not (out.exists() or conf.exists()):
        return
    if state == "ours" and not conf.exists():
        raise UserError(f"--out {out} holds records without a {conf.name} beside it (not "
                        "written by smoothadv, or its config was removed): they cannot be "
                        "resumed as this configuration; choose another --out, or pass "
                        "--overwrite to replace them")
    try:
        document = json.loads(conf.read_text(encoding="utf-8")) if conf.exists() else {}
    except ValueError:
        raise UserError(f"{conf} is not a readable record config: choose another --out, or "
                        "pass --overwrite to replace the record") from None
    if not isinstance(document, dict):
        raise UserError(f"{conf} is not a record config: choose another --out, or pass "
                        "--overwrite to replace the record")
    if "config_hash" not in document or state == "new":
        return
    differ: list[str] = []
    if document["config_hash"] != cfg.content_hash():
        try:
            theirs = type(cfg).from_dict(document.get("config", {}))
            differ = cfg.differences(theirs)
        except UserError:
            differ = ["stage"]
    if fingerprint and document.get("checkpoint_sha256") not in (None, fingerprint):
        differ.append("the checkpoint's content")
    if differ:
        raise UserError(f"{out} holds records of another configuration (differs in "
                        f"{', '.join(differ) or 'its hash'}): write to a new --out, or "
                        "pass --overwrite to discard them")


def _rows_done(out: Path, indices: list[int]) -> int:
    """How many of ``indices`` the record ``out`` already holds (0 when it does not exist or
    cannot be read yet): the work a resumed run skips."""
    try:
        if not out.is_file() or out.stat().st_size == 0:
            return 0
        return len(set(read_records(out)["idx"].tolist()) & set(indices))
    except UserError:
        return 0


def _mixed_streams(out: Path, conf: Path, now: dict[str, Any]) -> bool:
    """Whether the record ``out`` now holds rows of two kinds of device (their noise streams
    differ: CPU and CUDA, or two GPU models;
    :func:`smoothadv.runtime.backends.same_stream`), saying so in one line when a resume starts
    the mix. Every row stays a valid certificate; what is lost is
    that a one-device run would repeat the file row for row. Sticky once set."""
    if not (out.exists() and conf.exists()):
        return False
    try:
        before = json.loads(conf.read_text(encoding="utf-8"))
    except ValueError:
        return False
    if before.get("mixed_streams"):
        return True
    if same_stream(before, now):
        return False
    say(f"{out}: its rows so far were drawn on {before.get('device_type')} "
        f"({before.get('device_model')}), the rest on {now['device_type']} "
        f"({now['device_model']}); each row is valid, but the file will not repeat row for row "
        "on one device (the config records mixed_streams)")
    return True


# ------------------------------------------------------------------------- the runner


def run_evaluation(cfg: EvalConfig) -> StageResult:
    """Run a certify, predict or attack config; returns the record file and the summary."""
    smooth, dataset, meta, device = cfg.load()
    ensemble = smooth.base_classifier if isinstance(smooth.base_classifier, Ensemble) else None
    notice = check_precision(cfg.precision, device)
    if notice:
        say(notice)
    smooth.base_classifier = at_precision(smooth.base_classifier, cfg.precision)
    mode = cfg.certify_mode()
    indices = select_indices(len(dataset), cfg.skip, cfg.max)[cfg.shard::cfg.shards]
    if indices:  # refuse what fails on the first input before any file is written
        smooth.noise.prepare(dataset[indices[0]][0])
        if mode is DERANDOMIZED:
            smooth.noise.offset_inputs(dataset[indices[0]][0], cfg.template)
    if cfg.deterministic and cfg.noise == "splitting" and mode is not DERANDOMIZED:
        say("--deterministic fixes cuDNN's algorithms; Levine & Feizi's deterministic ℓ1 "
            "certificate is --derandomized")
    facts: dict[str, Any] = {}
    certifier = None
    if mode is SEQUENTIAL:
        certifier = _sequential_certifier(smooth, cfg, dataset, indices)
        facts = dict(mode="sequential", radii=list(cfg.radii or ()),
                     alpha_seq=certifier.alpha_seq, alpha_end=certifier.alpha_end)
    fingerprint = file_fingerprint(cfg.checkpoint or cfg.classifier)
    claim_record(cfg, fingerprint)
    compiled = "no input"
    if indices:
        left = len(indices) - _rows_done(Path(cfg.out), indices)
        # the deterministic certificate evaluates K offsets, known once σ is resolved
        per_input = (smooth.noise.offsets_count if mode is DERANDOMIZED
                     else cfg.samples_per_input())
        compiled = _maybe_compile(smooth, cfg, dataset[indices[0]][0], left * per_input)
    options = cfg.record_options()
    out = Path(cfg.out)
    if D.is_main():
        write_record_config(cfg, smooth, meta, device, fingerprint, len(indices), compiled,
                            **facts)
    watch = record_watch(cfg, out, indices)
    if certifier is not None:
        run_sequential_records(certifier, dataset, indices, out, seed=cfg.seed,
                               progress=cfg.progress, watch=watch)
    else:
        hooks, finish = cfg.hooks(smooth)
        run_records(cfg.stage, smooth, dataset, indices, out, n=cfg.n, alpha=cfg.alpha,
                    batch_size=cfg.batch, seed=cfg.seed, progress=cfg.progress, **options,
                    **hooks, watch=watch)
        if finish is not None:
            finish()
    text = ""
    if D.is_main():
        rec = read_records(out)
        text = summary_line(cfg, rec)
        if ensemble is not None and ensemble.consensus:
            text += (f"; {ensemble.consensus}-consensus skipped {ensemble.saved():.1%} of the "
                     "member evaluations")
        if certifier is not None and not rec.is_empty:
            samples = rec["samples"]
            text += (f"; samples per input: mean {samples.mean():,.0f}, median "
                     f"{float(np.median(samples)):,.0f}")
    D.destroy_process_group()
    return StageResult(out, text)


def record_watch(cfg: EvalConfig, out: Path, indices: list[int]) -> RecordWatch | None:
    """The running figures of ``out`` for the loggers ``cfg.log`` asks for (main process;
    None without loggers): in the record's folder under its name, the config as
    hyper-parameters, counting the rows an earlier run wrote (under torchrun, those of rank
    0's share: the record file's and its part file's)."""
    if not cfg.log or not D.is_main():
        return None
    kept: dict[int, tuple[int, int, float]] = {}
    share = D.shard(indices)  # under torchrun rank 0's inputs: the figures are its share's
    files = [out] + ([D.part_path(out, 0)] if D.world_size() > 1 else [])
    for path in files:
        if not path.exists() or path.stat().st_size == 0:
            continue
        rec = read_records(path)
        wanted = np.isin(rec["idx"], share)
        radius = rec["radius"] if "radius" in rec.columns else np.zeros(len(rec))
        for i, p, y, r in zip(rec["idx"][wanted], rec["predict"][wanted],
                              rec["label"][wanted], radius[wanted]):
            kept[int(i)] = (int(p), int(y), float(r))
    loggers = Loggers(cfg.log, out.parent, cfg.to_dict(), name=out.name.removesuffix(".tsv"))
    return RecordWatch(loggers, cfg.stage, kept=kept.values())


def write_record_config(cfg: EvalConfig, smooth: Smooth, meta: dict[str, Any],
                        device: torch.device, fingerprint: str | None, num_inputs: int,
                        compiled: str, **facts: Any) -> Path:
    """``OUT.config.json``: ``cfg`` with its content hash and what the run resolved (σ, the
    model's facts, the checkpoint's fingerprint, the number of inputs selected, the noise, the
    threat model, the device); returns its path. Main process only."""
    out = Path(cfg.out)
    conf = config_path(out)
    if not conf.parent.exists():
        say(f"creating the folder {conf.parent.resolve()} for the record file")
    conf.parent.mkdir(parents=True, exist_ok=True)
    hardware = device_facts(device, cfg.deterministic)
    hardware["mixed_streams"] = _mixed_streams(out, conf, hardware)
    document = config_document(
        cfg, sigma=smooth.sigma, device=str(device), **model_facts(meta),
        checkpoint_sha256=fingerprint, num_inputs=num_inputs, radius_rounding="down",
        randomized_cp=cfg.record_options().get("randomized", False), noise=smooth.noise.kind,
        compiled=compiled, norm=smooth.norm, threat_model=cfg.threat(smooth.norm).as_dict(),
        **smooth.noise.facts(), **hardware, **cfg.facts(), **facts)
    conf.write_text(json.dumps(document, indent=2, default=str) + "\n", encoding="utf-8")
    return conf


def _sequential_certifier(smooth: Smooth, cfg: CertifyConfig, dataset,
                          indices: list[int]) -> SequentialCertifier:
    """The sequential certifier of ``cfg``; radii it cannot reach at the budget are refused
    (all of them) or warned about (some)."""
    radii = list(cfg.radii or ())
    certifier = SequentialCertifier(
        smooth, radii, cfg.alpha, budget=cfg.budget, sequence=cfg.sequence,
        labelled=cfg.labelled, n0=cfg.n0, batch_size=cfg.batch, anytime_tol=cfg.anytime_tol,
        alpha_split=DEFAULT_ALPHA_SPLIT if cfg.alpha_split is None else cfg.alpha_split,
        dims=dataset[indices[0]][0].numel() if indices else None)
    if indices:  # the sound sampler's share of α is set aside now, so the config records
        certifier.check_sampler(dataset[indices[0]][0].numel())  # the split actually used
    unreachable = [r for r in radii if r > certifier.radius_cap]
    if unreachable:
        cap = (f"with --budget {cfg.budget:,} at σ = {smooth.sigma:g} no radius above "
               f"{certifier.radius_cap:.3f} can be certified")
        if len(unreachable) == len(radii):
            raise UserError(f"{cap}: every radius asked for ({', '.join(map(str, radii))}) is "
                            "beyond it; lower --radii or raise --budget")
        say(f"warning: {cap}; radii {', '.join(map(str, unreachable))} will not be certified "
            "(inputs that reach them spend the whole budget)")
    return certifier


def _maybe_compile(smooth: Smooth, cfg: EvalConfig, sample: torch.Tensor,
                   total_samples: int) -> str:
    """Wrap the base classifier for compiled inference when ``compile`` (or the auto rule)
    says so; returns the reason, for the record's config, and says it in one line."""
    decision, why = should_compile(cfg.compile, smooth.base_classifier, sample, cfg.batch,
                                   total_samples, smooth.device)
    agreed = D.rank_zero_says(decision)  # one decision for every rank: rank 0's, recorded
    if agreed != decision:
        why = f"rank 0 decided {'to compile' if agreed else 'not to compile'}"
    decision = agreed
    if decision:
        smooth.base_classifier = compile_for_inference(smooth.base_classifier, cfg.batch)
    say(f"compile: {why} (the estimate times one batch now; a busy machine skews it)"
        if cfg.compile == "auto" else f"compile: {why}")
    return why


def summary_line(cfg: EvalConfig, rec) -> str:
    """The closing line of certify, predict and attack."""
    kind = cfg.stage
    if rec.is_empty:
        return f"{kind}: no input selected; {rec.path} has a header only"
    head = f"{kind}: {len(rec)} inputs in {rec.path}; "
    if kind == "attack":
        clean = float((rec["cleanPredict"] == rec["label"]).mean())
        return (head + f"clean accuracy of g {clean:.3f}, empirical robust accuracy at "
                f"eps={cfg.epsilon:g}: {float(rec['correct'].mean()):.3f}, mean l2 of "
                f"perturbations {float(rec['l2'].mean()):.4f}")
    return (head + f"accuracy of g {float(rec['correct'].mean()):.3f}, abstained "
            f"{float((rec['predict'] == -1).mean()):.3f}")


for _config in (CertifyConfig, PredictConfig, AttackConfig):
    register_stage(_config, run_evaluation)
