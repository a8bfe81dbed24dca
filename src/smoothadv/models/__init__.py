"""Models: a registry of architectures, the normalisation layer and checkpoints."""

from . import cifar_resnet as _cifar_resnet  # noqa: F401  (registers architectures)
from . import small as _small  # noqa: F401
from .checkpoint import (
    atomic_torch_save,
    checkpoint_normalisation,
    create_model,
    has_conv,
    load_checkpoint,
    normalize_state_dict,
    read_checkpoint,
    save_checkpoint,
    to_channels_last,
)
from .normalize import NormalizeLayer
from .registry import create_network, list_models, register_model

__all__ = [
    "NormalizeLayer",
    "atomic_torch_save",
    "checkpoint_normalisation",
    "create_model",
    "create_network",
    "has_conv",
    "list_models",
    "load_checkpoint",
    "normalize_state_dict",
    "read_checkpoint",
    "register_model",
    "save_checkpoint",
    "to_channels_last",
]
