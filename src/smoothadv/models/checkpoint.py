"""Checkpoints: atomic saving, safe loading of ours and of the paper's files.

Format (a ``torch.save`` dict, readable with ``weights_only=True``): ``arch``, ``state_dict``
(of ``Sequential(input layer, net)``, keys ``1.*``, as the paper's code writes it),
``epoch``, ``optimizer``, and metadata: ``dataset``, ``num_classes``, ``in_channels``,
``image_size``, ``normalization`` (the input layer's kind: ``normalize``, ``center`` or
``none``), ``mean``, ``std``, ``sigma``, ``method``, ``hparams``; training adds ``scheduler``
and ``rng`` for resuming. The paper's files record no ``normalization``: see
:func:`resolve_normalization`.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from ..data.constants import ARCH_DEFAULTS
from ..errors import UserError
from .normalize import (
    DEFAULT_NORMALIZATION,
    INPUT_LAYERS,
    create_input_layer,
    input_layer_kind,
    list_normalizations,
)
from .registry import create_network

META_KEYS = ("dataset", "num_classes", "in_channels", "image_size", "normalization", "mean",
             "std", "sigma", "method", "hparams")


def create_model(
    name: str,
    num_classes: int,
    *,
    mean: tuple[float, ...] | None = None,
    std: tuple[float, ...] | None = None,
    image_size: int | None = None,
    dataset: str | None = None,
    normalization: str = DEFAULT_NORMALIZATION,
) -> nn.Sequential:
    """``Sequential(input layer, network)``: pixel-space [B,C,H,W] in [0,1] → logits [B,K].

    ``normalization`` is the input layer's kind (``normalize``: (x − mean)/std, ``center``:
    x − mean, ``none``: identity). ``len(mean)`` gives the number of input channels. With
    ``dataset`` (e.g. "cifar10"), mean, std and image size default to that dataset's;
    otherwise mean and std are required (every kind records them).
    """
    if dataset is not None:
        from ..data.datasets import get_dataset_spec

        spec = get_dataset_spec(dataset)
        mean = spec.mean if mean is None else mean
        std = spec.std if std is None else std
        image_size = spec.image_size if image_size is None else image_size
    if mean is None or std is None:
        raise UserError("create_model needs mean and std, or a dataset to take them from")
    image_size = 32 if image_size is None else image_size
    net = create_network(name, num_classes, in_channels=len(mean), image_size=image_size)
    return nn.Sequential(create_input_layer(normalization, mean, std), net)


def has_conv(model: nn.Module) -> bool:
    """True when the model has 2-D convolutions (where the memory layout matters)."""
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def wants_channels_last(model: nn.Module) -> bool:
    """True for conv nets, unless a module of it says ``channels_last = False``."""
    return has_conv(model) and all(getattr(m, "channels_last", True) is not False
                                   for m in model.modules())


def to_channels_last(model: nn.Module) -> nn.Module:
    """Channels-last memory format for conv nets (measured faster on CPU: 1.2× training,
    1.2–2.5× inference, see ``bench/bench_channels_last.py``) that do not opt out
    (:func:`wants_channels_last`); other models unchanged."""
    return model.to(memory_format=torch.channels_last) if wants_channels_last(model) else model


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> None:
    """``torch.save`` to a temporary file in the same folder, then rename over ``path``.

    A reader never sees a half-written file, and a crash leaves the old file intact. Tensors
    are written as CPU tensors (:func:`to_cpu`), whatever device they were on.
    """
    obj = to_cpu(obj)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


# Architectures the paper's code wraps in DataParallel inside its Sequential: their state
# dicts are written with ``1.module.*`` keys, the layout the paper's loader expects.
DATAPARALLEL_ARCHS = frozenset({"resnet50"})


def paper_state_dict(model: nn.Module, arch: str) -> dict[str, torch.Tensor]:
    """``model``'s state dict in the paper's layout: ``1.*`` keys (``0.*`` is the
    parameter-free normalization layer), ``1.module.*`` for :data:`DATAPARALLEL_ARCHS`."""
    state = model.state_dict()
    if arch in DATAPARALLEL_ARCHS:
        state = {re.sub(r"^1\.", "1.module.", k): v for k, v in state.items()}
    return state


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module,
    *,
    arch: str,
    epoch: int,
    meta: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``model`` (a ``create_model`` Sequential, maybe DDP-wrapped) atomically.

    ``meta`` holds the metadata keys of :data:`META_KEYS` (plain Python values). The state
    dict has the paper's layout (:func:`paper_state_dict`), so the paper's code loads it.
    """
    model = getattr(model, "module", model)
    ckpt: dict[str, Any] = {
        "arch": arch,
        "epoch": int(epoch),
        "state_dict": paper_state_dict(model, arch),
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
    }
    for key in META_KEYS:
        if key in meta:
            ckpt[key] = meta[key]
    if ckpt.get("normalization") is None and input_layer_kind(model) is not None:
        ckpt["normalization"] = input_layer_kind(model)  # ours always record their layer
    if extra:
        ckpt.update(extra)
    atomic_torch_save(ckpt, path)


def to_cpu(obj: Any) -> Any:
    """``obj`` with every tensor inside (dicts, lists, tuples) copied to the CPU and detached:
    a checkpoint written on a GPU loads on any machine, the paper's code's ``torch.load``
    without ``map_location`` included."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return type(obj)((k, to_cpu(v)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)) and not hasattr(obj, "_fields"):
        return type(obj)(to_cpu(v) for v in obj)
    return obj


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """Load a checkpoint dict on the CPU with ``weights_only=True`` (never runs code).

    Raises :class:`UserError` for a missing, unreadable or unsafe file.
    """
    path = Path(path)
    if path.is_dir():
        inside = sorted(p.name for p in path.glob("*.pth*"))[:3]
        hint = f" ({', '.join(inside)} inside)" if inside else ""
        raise UserError(f"{path} is a folder, not a checkpoint{hint}: give the file, e.g. "
                        f"{path / (inside[0] if inside else 'checkpoint.pth.tar')}")
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for corrupt or unsafe files
        raise UserError(f"{path} is not a readable checkpoint: {_why_unreadable(err)}") from None
    if not isinstance(ckpt, dict):
        raise UserError(f"checkpoint {path} is not a dict")
    if "state_dict" not in ckpt:
        raise UserError(f"checkpoint {path} has no 'state_dict'")
    if "arch" not in ckpt:
        raise UserError(f"checkpoint {path} has no 'arch'")
    return ckpt


def _why_unreadable(err: Exception) -> str:
    """A short reason for a failed ``torch.load`` (torch's own messages run to paragraphs)."""
    text = str(err)
    if "Weights only load failed" in text or "weights_only" in text:
        return ("it holds Python objects beyond tensors and plain data, which loading with "
                "weights_only=True refuses (a checkpoint may never run code)")
    if "zip archive" in text or "central directory" in text:
        return "the file is truncated or corrupt (not a complete torch.save archive)"
    if isinstance(err, (EOFError,)) or "Ran out of input" in text:
        return "the file ends early (truncated)"
    return f"not a torch.save file ({type(err).__name__})"


def normalize_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Map the paper's and DataParallel/DDP layouts onto ours (``1.<network key>``).

    Drops every ``module.`` component and prefixes ``1.`` where a bare network state dict is
    given.
    """
    out = {}
    for key, value in state_dict.items():
        key = re.sub(r"(^|\.)module\.", r"\1", key)
        out[key] = value
    if not any(k.startswith("1.") for k in out):
        out = {f"1.{k}": v for k, v in out.items()}
    return {k: v for k, v in out.items() if k.startswith("1.")}


def checkpoint_normalization(ckpt: dict[str, Any]) -> tuple[tuple | None, tuple | None]:
    """(mean, std) a checkpoint's weights expect: its own, else its architecture's default
    (the paper's files store none); (None, None) when neither is known."""
    defaults = ARCH_DEFAULTS.get(ckpt["arch"], {})
    mean, std = ckpt.get("mean", defaults.get("mean")), ckpt.get("std", defaults.get("std"))
    return (None, None) if mean is None or std is None else (tuple(mean), tuple(std))


def infer_shape(state_dict: dict[str, torch.Tensor]) -> tuple[int, int]:
    """(in_channels, num_classes) from the first conv/linear weight and the last linear weight."""
    weights = [v for k, v in state_dict.items() if k.endswith("weight") and v.dim() >= 2]
    if not weights:
        raise UserError("checkpoint state dict holds no layer weights")
    first, last = weights[0], weights[-1]
    in_channels = first.shape[1] if first.dim() == 4 else 1
    return int(in_channels), int(last.shape[0])


@dataclass(frozen=True)
class NormalizationChoice:
    """Which input layer a loaded model got, and why (``source``: ``recorded`` in the
    checkpoint, ``flag`` given by the user, ``default`` for a file that records none, or
    ``auto``, measured; ``accuracies`` holds the measurement's per-kind accuracies)."""

    kind: str
    source: str
    accuracies: dict[str, float] | None = None

    @property
    def recorded(self) -> bool:
        return self.source == "recorded"

    def describe(self, path: str | os.PathLike) -> str:
        """One line for the user: the layer used and how to choose another."""
        if self.recorded:
            return f"input layer: {self.kind} (recorded in {path})"
        how = {"flag": "as --input-normalization asked",
               "default": "the default for checkpoints that record none"
                          + ("; the measurement was too close to call" if self.accuracies
                             else ""),
               "auto": "measured, the clearly most accurate"}[self.source]
        line = f"input layer: {self.kind} ({how}; {Path(path).name} records no input layer"
        if self.accuracies:
            line += "; accuracy under noise: " + ", ".join(
                f"{k} {v:.3f}" for k, v in sorted(self.accuracies.items()))
        others = [k for k in list_normalizations() if k != self.kind]
        return line + f"); choose another with --input-normalization {'|'.join(others)}"


def resolve_normalization(ckpt: dict[str, Any], requested: str | None,
                          path: str | os.PathLike = "checkpoint") -> NormalizationChoice:
    """The input-layer kind for a checkpoint dict, without measuring.

    A recorded kind wins; a requested kind that contradicts it is a :class:`UserError` naming
    both (``auto`` and None accept the recorded one). For a file that records none (the
    paper's), the requested kind is used, or ``normalize`` when none is requested.
    ``requested='auto'`` for such a file is answered by the caller, who has the data to
    measure with (:func:`smoothadv.models.probe.choose_normalization`); here it raises.
    """
    if requested is not None and requested != "auto":
        INPUT_LAYERS.get(requested)  # an unknown kind fails here, naming the choices
    recorded = ckpt.get("normalization")
    if recorded is not None:
        if requested not in (None, "auto", recorded):
            raise UserError(f"checkpoint {path} was trained with input layer {recorded!r}; "
                            f"--input-normalization {requested} contradicts it")
        return NormalizationChoice(recorded, "recorded")
    if requested == "auto":
        raise UserError(f"checkpoint {path} records no input layer: measuring it ('auto') "
                        "needs labelled data")
    if requested is None:
        return NormalizationChoice(DEFAULT_NORMALIZATION, "default")
    return NormalizationChoice(requested, "flag")


def checkpoint_dataset(ckpt: dict[str, Any]) -> str | None:
    """The data set a checkpoint dict names, else its architecture's default, else None."""
    return ckpt.get("dataset", ARCH_DEFAULTS.get(ckpt["arch"], {}).get("dataset"))


def checkpoint_io(ckpt: dict[str, Any]) -> dict[str, int]:
    """``in_channels``, ``image_size`` and ``num_classes`` of a checkpoint dict, read without
    building the model (to check them against a data set before any work)."""
    in_channels, num_classes = infer_shape(normalize_state_dict(ckpt["state_dict"]))
    defaults = ARCH_DEFAULTS.get(ckpt["arch"], {})
    return dict(in_channels=in_channels,
                image_size=int(ckpt.get("image_size", defaults.get("image_size", 32))),
                num_classes=int(ckpt.get("num_classes", num_classes)))


def build_from_checkpoint(ckpt: dict[str, Any], path: str | os.PathLike,
                          choice: NormalizationChoice, device: str | torch.device = "cpu",
                          ) -> tuple[nn.Sequential, dict[str, Any]]:
    """The model of a checkpoint dict behind the input layer ``choice.kind`` (see
    :func:`load_checkpoint`)."""
    arch = ckpt["arch"]
    state = normalize_state_dict(ckpt["state_dict"])
    defaults = ARCH_DEFAULTS.get(arch, {})
    in_channels, num_classes = infer_shape(state)
    meta: dict[str, Any] = {"arch": arch, "epoch": ckpt.get("epoch")}
    meta["dataset"] = checkpoint_dataset(ckpt)
    meta["num_classes"] = int(ckpt.get("num_classes", num_classes))
    meta["image_size"] = int(ckpt.get("image_size", defaults.get("image_size", 32)))
    mean, std = checkpoint_normalization(ckpt)
    if mean is None or std is None:
        raise UserError(
            f"checkpoint {path} stores no normalization constants and architecture {arch!r} "
            "has no default"
        )
    meta["mean"], meta["std"] = tuple(mean), tuple(std)
    if len(meta["mean"]) != in_channels:
        raise UserError(f"checkpoint {path}: {len(mean)} mean values for {in_channels} channels")
    meta["in_channels"] = in_channels
    for key in ("sigma", "method", "hparams"):
        meta[key] = ckpt.get(key)
    meta["normalization"] = choice.kind
    meta["normalization_choice"] = choice
    model = create_model(
        arch, meta["num_classes"], mean=meta["mean"], std=meta["std"],
        image_size=meta["image_size"], normalization=choice.kind,
    )
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        raise UserError(
            f"checkpoint {path} does not fit architecture {arch!r}: "
            + str(err).strip().splitlines()[0]
        ) from None
    return to_channels_last(model.to(device)).eval(), meta
