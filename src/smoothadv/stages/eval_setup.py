"""Loading models for evaluation stages: a checkpoint behind its input layer (recorded, asked
for, or measured), or a denoiser in front of any classifier; the data set checked against
the model before any work."""

from __future__ import annotations

import math
from typing import Any

import torch

from ..data.datasets import check_input_shape, create_dataset, get_dataset_spec
from ..denoise.compose import Classifier, compose, load_classifier, load_denoiser, map_classes
from ..errors import UserError
from ..models import load_checkpoint, read_checkpoint
from ..models.checkpoint import checkpoint_dataset, checkpoint_io
from ..noise import GridRounded
from ..runtime import distributed as D
from ..smoothing.smooth import Smooth
from .registry import say


def load_model(path: str, requested: str | None, dataset, sigma: float | None, seed: int,
               device) -> tuple[Any, dict[str, Any]]:
    """A checkpoint's model behind the input layer chosen for it (recorded, asked for, or
    measured on ``dataset`` under noise ``sigma``), announced in one line; returns
    (model, meta)."""
    model, meta = load_checkpoint(path, device=device, normalization=requested, data=dataset,
                                  sigma=sigma, seed=seed)
    say(meta["normalization_choice"].describe(path))
    return model, meta


def model_facts(meta: dict[str, Any]) -> dict[str, Any]:
    """What a record file's config says of the model: architecture and input layer."""
    choice = meta.get("normalization_choice")
    out = dict(arch=meta["arch"])
    if choice is not None:
        out.update(input_normalization=choice.kind, input_normalization_source=choice.source,
                   input_normalization_accuracies=choice.accuracies)
    for key in ("denoiser", "classifier", "top_up", "class_map", "members", "members_sha256",
                "consensus"):
        if meta.get(key) is not None:
            out[key] = meta[key]
    return out


def load_denoised(cfg, device):
    """(base classifier f(D(·)), num_classes, meta) for a config with ``denoiser`` or
    ``classifier`` set."""
    if cfg.classifier and cfg.checkpoint:
        raise UserError("give the classifier once: the positional checkpoint or --classifier")
    if cfg.members:  # an ensemble behind the denoiser
        return _denoised_ensemble(cfg, device)
    spec = cfg.classifier or cfg.checkpoint
    if spec is None:
        raise UserError("give a checkpoint or --classifier")
    if cfg.sigma is None:
        raise UserError("denoised smoothing needs --sigma")
    if spec.startswith(("timm:", "torchvision:")):
        classifier = load_classifier(spec, device)
        meta = dict(classifier.meta, num_classes=classifier.num_classes)
    else:
        model, meta = load_model(spec, cfg.input_normalization, None, None, cfg.seed, device)
        classifier = Classifier(model, None, meta["image_size"], meta["num_classes"], meta)
    if cfg.class_map:
        classifier = map_classes(classifier, cfg.class_map)
        meta = dict(meta, class_map=cfg.class_map, num_classes=classifier.num_classes)
    denoiser = (load_denoiser(cfg.denoiser, cfg.sigma, device, top_up=cfg.top_up)
                if cfg.denoiser else None)
    meta = dict(meta, denoiser=cfg.denoiser, classifier=spec,
                top_up=cfg.top_up if cfg.denoiser else None)
    return compose(classifier, denoiser), classifier.num_classes, meta


def distinct_members(members) -> list[str | None]:
    """The members' content fingerprints, refusing in one line a file listed twice under
    another path."""
    from ..configs import file_fingerprint

    prints = [file_fingerprint(path) for path in members]
    for i, fingerprint in enumerate(prints):
        if fingerprint is not None and fingerprint in prints[:i]:
            twin = members[prints.index(fingerprint)]
            raise UserError(f"{members[i]} and {twin} are the same checkpoint (equal "
                            "content): an ensemble lists each member once")
    return prints


def _denoised_ensemble(cfg, device):
    """(f(D(·)) with f the ensemble of ``cfg.members``, num_classes, meta): the members must
    agree on classes, input size and input layer."""
    if cfg.sigma is None:
        raise UserError("denoised smoothing needs --sigma")
    prints = distinct_members(cfg.members)
    loaded = [load_model(p, cfg.input_normalization, None, None, cfg.seed, device)
              for p in cfg.members]
    if len({(m["num_classes"], m["image_size"]) for _, m in loaded}) > 1:
        raise UserError("the members differ in their classes or input size: an ensemble's "
                        "members take the same inputs")
    ensemble, meta = _ensemble(cfg, [m for m, _ in loaded], [m for _, m in loaded], prints,
                               device)
    classifier = Classifier(ensemble, None, meta["image_size"], meta["num_classes"], meta)
    if cfg.class_map:
        classifier = map_classes(classifier, cfg.class_map)
        meta = dict(meta, class_map=cfg.class_map, num_classes=classifier.num_classes)
    denoiser = load_denoiser(cfg.denoiser, cfg.sigma, device, top_up=cfg.top_up)
    meta = dict(meta, denoiser=cfg.denoiser, top_up=cfg.top_up)
    return compose(classifier, denoiser), classifier.num_classes, meta


def load_for_eval(cfg, sound: bool = False, round_inputs: bool = False,
                  noise: str = "gaussian", norm: str = "l2"):
    """(smooth, dataset, meta, device) for an evaluation config (checkpoint, or denoiser and
    classifier; data set and split; σ): the checkpoint's input shape and class count are
    checked against the data set's before any work."""
    device = D.setup_device(cfg.device, precision=cfg.precision,
                            deterministic=cfg.deterministic, timeout=cfg.dist_timeout)
    if cfg.members and not cfg.denoiser:
        return _load_ensemble_for_eval(cfg, device, sound, round_inputs, noise, norm)
    if cfg.denoiser or cfg.classifier or cfg.class_map:
        return _load_denoised_for_eval(cfg, device, sound, round_inputs, noise, norm)
    if cfg.checkpoint is None:
        raise UserError("give a checkpoint (or --classifier)")
    ckpt = read_checkpoint(cfg.checkpoint)
    name = cfg.dataset or checkpoint_dataset(ckpt)
    if name is None:
        raise UserError("the checkpoint names no dataset: give --dataset")
    spec = get_dataset_spec(name)
    sigma = cfg.sigma if cfg.sigma is not None else ckpt.get("sigma")
    if sigma is None:
        raise UserError("the checkpoint records no sigma: give --sigma")
    trained = ckpt.get("sigma")
    if cfg.sigma is not None and trained is not None and not math.isclose(cfg.sigma,
                                                                          float(trained)):
        say(f"note: smoothing at σ = {cfg.sigma:g} a model trained at σ = {float(trained):g} "
            "(valid, but usually weaker than a model trained at the σ it is certified at)")
    io = checkpoint_io(ckpt)
    if spec.num_classes and spec.num_classes != io["num_classes"]:
        raise UserError(
            f"checkpoint has {io['num_classes']} classes, dataset {name} {spec.num_classes}"
        )
    dataset = create_dataset(name, cfg.split, cfg.data_root)
    check_input_shape(io, dataset, name, cfg.checkpoint)
    model, meta = load_model(cfg.checkpoint, cfg.input_normalization, dataset, sigma,
                             cfg.seed, device)
    if round_inputs:
        dataset = GridRounded(dataset)
    smooth = Smooth(model, meta["num_classes"], sigma, sound=sound, noise=noise, norm=norm)
    return smooth, dataset, meta, device


def _load_denoised_for_eval(cfg, device, sound: bool, round_inputs: bool,
                            noise: str = "gaussian", norm: str = "l2"):
    if cfg.dataset is None:
        raise UserError("denoised smoothing needs --dataset")
    spec = get_dataset_spec(cfg.dataset)
    base, num_classes, meta = load_denoised(cfg, device)
    dataset = create_dataset(cfg.dataset, cfg.split, cfg.data_root)
    if spec.num_classes and spec.num_classes != num_classes:
        raise UserError(f"the classifier has {num_classes} classes, dataset {cfg.dataset} "
                        f"{spec.num_classes}: map them with --class-map (imagenet-cifar10 or "
                        "a JSON file; see docs/denoised.md)")
    if len(dataset):
        try:
            with torch.no_grad():
                base(dataset[0][0][None].to(device))
        except RuntimeError as err:
            raise UserError("the denoiser and classifier do not fit this data set's images: "
                            + str(err).strip().splitlines()[0]) from None
    if round_inputs:
        raise UserError("--round-inputs is not available with denoised smoothing")
    smooth = Smooth(base, num_classes, cfg.sigma, sound=sound, noise=noise, norm=norm)
    return smooth, dataset, meta, device


def _load_ensemble_for_eval(cfg, device, sound: bool, round_inputs: bool,
                            noise: str = "gaussian", norm: str = "l2"):
    """(smooth, dataset, meta, device) for an ensemble (``cfg.members``): every member must
    agree on the data set, the classes, the input shape and the input layer (its kind and
    constants), and no file may be given twice (by content); σ is ``--sigma`` or the members'
    common training σ. Refused in one line before any file is written."""
    ckpts = [read_checkpoint(path) for path in cfg.members]
    prints = distinct_members(cfg.members)
    names = {checkpoint_dataset(c) for c in ckpts} - {None}
    if len(names) > 1:
        raise UserError("the members were trained on different data sets "
                        f"({', '.join(sorted(names))})")
    name = cfg.dataset or (names.pop() if names else None)
    if name is None:
        raise UserError("the members name no dataset: give --dataset")
    ios = [checkpoint_io(c) for c in ckpts]
    shapes = {(io["num_classes"], io.get("in_channels"), io.get("image_size")) for io in ios}
    if len(shapes) > 1:
        raise UserError("the members differ in their classes or input shape "
                        f"({', '.join(str(s) for s in sorted(shapes, key=str))})")
    trained = {float(c["sigma"]) for c in ckpts if c.get("sigma") is not None}
    sigma = cfg.sigma if cfg.sigma is not None else (trained.pop() if len(trained) == 1
                                                     else None)
    if sigma is None:
        raise UserError("the members record no common σ: give --sigma")
    spec = get_dataset_spec(name)
    if spec.num_classes and spec.num_classes != ios[0]["num_classes"]:
        raise UserError(f"the members have {ios[0]['num_classes']} classes, dataset {name} "
                        f"{spec.num_classes}")
    dataset = create_dataset(name, cfg.split, cfg.data_root)
    models, metas = [], []
    for path in cfg.members:
        check_input_shape(ios[0], dataset, name, path)
        model, meta = load_model(path, cfg.input_normalization, dataset, sigma, cfg.seed, device)
        models.append(model)
        metas.append(meta)
    ensemble, meta = _ensemble(cfg, models, metas, prints, device)
    if round_inputs:
        dataset = GridRounded(dataset)
    smooth = Smooth(ensemble, meta["num_classes"], sigma, sound=sound, noise=noise, norm=norm)
    return smooth, dataset, meta, device


def _ensemble(cfg, models: list, metas: list[dict[str, Any]], prints: list[str | None],
              device: torch.device):
    """(the :class:`~smoothadv.models.ensemble.Ensemble` of ``models`` on ``device``, its
    meta), the members' input layers (kind and constants) refused in one line where they
    differ; the meta names the members, their fingerprints and the consensus."""
    from ..models.ensemble import Ensemble

    layers = {(m["normalization"], tuple(m["mean"]), tuple(m["std"])) for m in metas}
    if len(layers) > 1:
        raise UserError("the members differ in their input layer (" + "; ".join(
            f"{kind} mean {mean} std {std}" for kind, mean, std in sorted(layers, key=str))
            + "): an ensemble's members take the same inputs")
    meta = dict(metas[0], arch="ensemble of " + ", ".join(m["arch"] for m in metas),
                members=list(cfg.members), members_sha256=prints, consensus=cfg.consensus)
    return Ensemble(models, cfg.consensus).to(device), meta
