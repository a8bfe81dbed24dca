"""Denoised smoothing's base classifier: y ↦ f(D(y)) as one eval-mode ``nn.Module``, and the
classifiers and denoisers the command line names.

The composition (denoiser, resize to the classifier's input size with bicubic antialiasing,
the classifier's own normalization, the classifier) maps pixel-space noisy inputs [B,C,H,W] to
logits [B,K]; certify, predict, sequential, sound, attack, compile and torchrun use it like any
base classifier. Specs:

- classifiers: a smoothadv checkpoint path (its input layer included); ``timm:NAME[:pretrained]``
  (timm's pretrained config gives input size, mean and std; weights are downloaded only with
  ``:pretrained``); ``torchvision:NAME[:WEIGHTS]`` (e.g. ``torchvision:resnet50:DEFAULT``;
  without WEIGHTS random weights and the ImageNet constants).
- denoisers: ``dncnn:CKPT`` (``smoothadv train-denoiser``) or ``diffusion:PATH_OR_HUB_ID`` (a
  diffusers UNet2DModel and its scheduler, e.g. ``google/ddpm-cifar10-32``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data.constants import IMAGENET_MEAN, IMAGENET_STD
from ..errors import UserError
from ..models import NormalizeLayer


class DenoisedClassifier(nn.Module):
    """f(D(y)): ``denoiser`` (may be None: the classifier alone), a resize to ``input_size``
    when the images differ, ``normalize`` (None when the classifier brings its own), then
    ``classifier``. Always in eval mode (``train()`` is a no-op): nothing in it is trained by
    certification or attacks."""

    def __init__(self, classifier: nn.Module, denoiser: nn.Module | None = None,
                 input_size: int | None = None, normalize: nn.Module | None = None) -> None:
        super().__init__()
        self.denoiser = denoiser
        self.classifier = classifier
        self.normalize = normalize
        self.input_size = input_size
        super().train(False)

    def train(self, mode: bool = True) -> DenoisedClassifier:
        return self  # the pipeline stays in eval mode

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        z = self.denoiser(y) if self.denoiser is not None else y
        if self.input_size is not None and z.shape[-1] != self.input_size:
            z = F.interpolate(z, size=(self.input_size, self.input_size), mode="bicubic",
                              antialias=True, align_corners=False)
        if self.normalize is not None:
            z = self.normalize(z)
        return self.classifier(z)


@dataclass
class Classifier:
    """A loaded classifier: the module (pixel space in when ``normalize`` is None), its
    normalization layer, input size, class count and what to record."""

    module: nn.Module
    normalize: nn.Module | None
    input_size: int | None
    num_classes: int
    meta: dict


def load_classifier(spec: str, device: str | torch.device = "cpu", **load_kw) -> Classifier:
    """The classifier a spec names (module docstring), on ``device``, in eval mode."""
    if spec.startswith("timm:"):
        return _timm(spec[5:], device)
    if spec.startswith("torchvision:"):
        return _torchvision(spec[12:], device)
    from ..models import load_checkpoint

    model, meta = load_checkpoint(spec, device=device, **load_kw)
    return Classifier(model, None, meta["image_size"], meta["num_classes"], meta)


def _timm(rest: str, device) -> Classifier:
    try:
        import timm
    except ImportError:  # pragma: no cover - the extra is installed by make test
        raise UserError("timm classifiers need the optional 'timm' package: "
                        "pip install 'smoothadv[denoise]'") from None
    name, _, weights = rest.partition(":")
    if weights not in ("", "pretrained"):
        raise UserError(f"timm:{rest}: the weights part is ':pretrained' or nothing")
    try:
        model = timm.create_model(name, pretrained=weights == "pretrained")
    except Exception as err:  # noqa: BLE001 — timm raises RuntimeError/KeyError for names
        raise UserError(f"cannot build timm model {name!r}: "
                        f"{str(err).strip().splitlines()[0]}") from None
    config = timm.data.resolve_data_config({}, model=model)
    size = int(config["input_size"][-1])
    norm = NormalizeLayer(config["mean"], config["std"])
    return Classifier(model.to(device).eval(), norm.to(device), size, model.num_classes,
                      {"arch": f"timm:{name}", "weights": weights or "random",
                       "mean": config["mean"], "std": config["std"], "input_size": size})


def _torchvision(rest: str, device) -> Classifier:
    import torchvision

    name, _, weights = rest.partition(":")
    try:
        model = torchvision.models.get_model(name, weights=weights or None)
    except (ValueError, KeyError, AttributeError) as err:
        raise UserError(f"cannot build torchvision model {name!r}: "
                        f"{str(err).strip().splitlines()[0]}") from None
    except OSError as err:  # URLError and friends: the weights are not in the cache
        raise UserError(f"cannot fetch torchvision weights {name}:{weights} "
                        f"({type(err).__name__}); put the file in "
                        f"{torch.hub.get_dir()}/checkpoints or run where it can be "
                        "downloaded") from None
    size = 224
    if weights:
        transforms = torchvision.models.get_model_weights(name)[weights].transforms()
        size = int(getattr(transforms, "crop_size", [224])[0])
    norm = NormalizeLayer(IMAGENET_MEAN, IMAGENET_STD)
    classes = getattr(model, "num_classes", None) or int(list(model.modules())[-1].out_features)
    return Classifier(model.to(device).eval(), norm.to(device), size, classes,
                      {"arch": f"torchvision:{name}", "weights": weights or "random",
                       "input_size": size})


def load_denoiser(spec: str, sigma: float, device: str | torch.device = "cpu",
                  top_up: bool = True) -> nn.Module:
    """The denoiser a spec names: ``dncnn:CKPT`` or ``diffusion:PATH_OR_HUB_ID``."""
    kind, _, target = spec.partition(":")
    if kind == "dncnn":
        from .dncnn import load_dncnn

        return load_dncnn(target, device)[0]
    if kind == "diffusion":
        from .diffusion import load_diffusers

        return load_diffusers(target, sigma, top_up=top_up, device=device)
    raise UserError(f"unknown denoiser {spec!r}: give dncnn:CKPT or diffusion:PATH_OR_HUB_ID")


def map_classes(classifier: Classifier, spec: str) -> Classifier:
    """``classifier`` with its head mapped onto a data set's classes (:mod:`.classmaps`)."""
    from .classmaps import ClassMapped, load_class_map

    groups = load_class_map(spec, classifier.num_classes)
    module = ClassMapped(classifier.module, groups).to(next(iter(
        classifier.module.parameters()), torch.zeros(())).device).eval()
    return Classifier(module, classifier.normalize, classifier.input_size, len(groups),
                      dict(classifier.meta, class_map=spec))


def compose(classifier: Classifier, denoiser: nn.Module | None) -> DenoisedClassifier:
    """The base classifier f(D(·)) for certification."""
    return DenoisedClassifier(classifier.module, denoiser, classifier.input_size,
                              classifier.normalize)

