"""Models: a registry of architectures, the input layers (normalize / center / none) and
checkpoints.

Four functions make a model, each from what its caller has:

- :func:`~.registry.create_network` (an architecture's name): the bare network, untrained,
  normalized inputs in, logits out;
- :func:`create_model` (a name and the normalization constants): that network behind its
  input layer, pixel-space inputs in [0,1];
- :func:`build_model` (a training config's data): the model a training run starts from, its
  input layer chosen or measured from the data, optionally from pre-trained weights;
- :func:`load_checkpoint` (a file, ours or the paper's): the trained model ready for use,
  behind the input layer the checkpoint records, or that is asked for or measured.
"""

from . import cifar_resnet as _cifar_resnet  # noqa: F401  (registers architectures)
from . import small as _small  # noqa: F401
from .build import BuiltModel, build_model, load_pretrained
from .checkpoint import (
    NormalizationChoice,
    atomic_torch_save,
    build_from_checkpoint,
    checkpoint_normalization,
    create_model,
    has_conv,
    normalize_state_dict,
    read_checkpoint,
    resolve_normalization,
    save_checkpoint,
    to_channels_last,
    to_cpu,
    wants_channels_last,
)
from .loading import load_checkpoint
from .normalize import (
    DEFAULT_NORMALIZATION,
    IdentityInput,
    InputCenterLayer,
    NormalizeLayer,
    create_input_layer,
    input_layer_kind,
    list_normalizations,
)
from .probe import choose_normalization, measure_normalizations
from .registry import create_network, list_models, register_model

checkpoint_normalisation = checkpoint_normalization  # the 0.1 spelling, for one release

__all__ = [
    "DEFAULT_NORMALIZATION",
    "IdentityInput",
    "InputCenterLayer",
    "NormalizationChoice",
    "NormalizeLayer",
    "BuiltModel",
    "build_model",
    "load_pretrained",
    "atomic_torch_save",
    "build_from_checkpoint",
    "checkpoint_normalization",
    "choose_normalization",
    "create_input_layer",
    "create_model",
    "create_network",
    "has_conv",
    "wants_channels_last",
    "input_layer_kind",
    "list_models",
    "list_normalizations",
    "load_checkpoint",
    "measure_normalizations",
    "normalize_state_dict",
    "read_checkpoint",
    "register_model",
    "resolve_normalization",
    "save_checkpoint",
    "to_channels_last",
    "to_cpu",
]
