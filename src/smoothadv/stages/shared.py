"""Certifying several models on shared noise: M certify configs that differ only in their
model, run as one pass whose noise is drawn once (:meth:`~smoothadv.smoothing.smooth.Smooth.
certify_shared`).

Each record it writes is the record ``smoothadv certify`` writes for that config alone, row for
row (the ``time`` column aside: the group's time split evenly), with the same config document
beside it (the same content hash), so a record certified here resumes, is refused or is reported
exactly as one certified alone. It is an execution choice, never a different certificate: a
sweep asks for it with ``shared_noise = true``.

Which configs can share (:func:`shareable`): fixed-n CERTIFY with Cohen et al.'s one-sided
Clopper–Pearson bound, one shard, no denoiser and no compiling (a compiled model may round
differently from the eager one that certifies alone); and they must agree on everything but the
model (:func:`share_key`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from ..configs import file_fingerprint
from ..errors import UserError
from ..records.loops import run_shared_records, select_indices
from ..runtime.precision import at_precision, check_precision
from .evaluation import CertifyConfig, claim_record, record_watch, write_record_config
from .modes import FIXED
from .registry import StageResult, say

MODEL_FIELDS = ("checkpoint", "out")  # what the configs of one group may differ in


def shareable(cfg: CertifyConfig) -> bool:
    """Whether ``cfg`` can be certified on noise shared with other models (module docstring)."""
    return (cfg.certify_mode() is FIXED and cfg.checkpoint is not None
            and cfg.classifier is None and cfg.denoiser is None and cfg.shards == 1
            and cfg.compile != "on" and not cfg.randomized_cp and not cfg.two_sided
            and not cfg.box)


def share_key(cfg: CertifyConfig) -> str:
    """What configs certified together must share: every option but the model and the record
    path (JSON, for grouping)."""
    body = {k: v for k, v in cfg.to_dict().items() if k not in MODEL_FIELDS}
    return json.dumps(body, sort_keys=True, default=str)


def run_shared_certification(configs: Sequence[CertifyConfig]) -> list[StageResult]:
    """Certify every config of ``configs`` (shareable, one share key) on the same noisy
    samples; returns each one's record and closing line. Resumes as ``certify`` does: an input
    is certified again only where some record lacks it."""
    if not configs:
        raise UserError("no certify config to run on shared noise")
    first = configs[0]
    for cfg in configs:
        if not shareable(cfg):
            raise UserError(f"{cfg.out}: only fixed-n CERTIFY of a checkpoint (no denoiser, "
                            "shards or compiling) is certified on shared noise")
        if share_key(cfg) != share_key(first):
            raise UserError(f"{cfg.out} and {first.out} differ in more than their model: "
                            "they cannot share noise")
    loaded = [cfg.load() for cfg in configs]
    smooth, dataset, _, device = loaded[0]
    for cfg, (other, *_) in zip(configs, loaded):
        if (other.sigma, other.num_classes) != (smooth.sigma, smooth.num_classes):
            raise UserError(f"{cfg.out} smooths at σ = {other.sigma:g} over "
                            f"{other.num_classes} classes, {first.out} at σ = "
                            f"{smooth.sigma:g} over {smooth.num_classes}: give certify.sigma "
                            "to certify them together")
    notice = check_precision(first.precision, device)
    if notice:
        say(notice)
    models = [at_precision(s.base_classifier, first.precision) for s, *_ in loaded]
    indices = select_indices(len(dataset), first.skip, first.max)
    if indices:
        smooth.noise.prepare(dataset[indices[0]][0])
    for cfg, (_, _, meta, _) in zip(configs, loaded):
        fingerprint = file_fingerprint(cfg.checkpoint)
        claim_record(cfg, fingerprint)
        write_record_config(cfg, smooth, meta, device, fingerprint, len(indices),
                            f"off: certified on noise shared by {len(configs)} models",
                            certified_with=[c.checkpoint for c in configs])
    outs = run_shared_records(smooth, models, dataset, indices, [c.out for c in configs],
                              n0=first.n0, n=first.n, alpha=first.alpha,
                              batch_size=first.batch, seed=first.seed, progress=first.progress,
                              watch=[record_watch(c, Path(c.out), indices) for c in configs])
    return [StageResult(Path(out), f"certify: {len(indices)} inputs in {out}") for out in outs]


__all__ = ["run_shared_certification", "share_key", "shareable"]
