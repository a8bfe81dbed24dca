"""Process-wide settings of the compute backends, and the facts about the device a run used.

:func:`configure` is called once by every stage that runs a model, after its device is known:

- **cuDNN autotuning** (``torch.backends.cudnn.benchmark``) on CUDA: each convolution shape
  times its algorithms once and keeps the fastest — the usual setting for fixed-shape training
  and certification batches. Off under ``deterministic``.
- **TF32 matrix products** only under ``--precision tf32`` (a departure: PyTorch's default, which
  the authors' code ran with, is fp32 matmuls; cuDNN convolutions already use TF32 on Ampere
  and later GPUs by PyTorch's default, ``torch.backends.cudnn.allow_tf32``).
- ``deterministic``: cuDNN's deterministic algorithms, ``torch.use_deterministic_algorithms``
  (warning, not failing, for an operator without one) and cuBLAS's fixed workspace, so that a
  run repeated or resumed on the same GPU model, driver and library versions gives the same
  bits. On the CPU every run is deterministic already.

What "identical rows" means across devices: a record's rows and a run's weights are repeatable
on the same kind of device (the CPU; or one GPU model with ``deterministic``). The noise
streams of ``torch.Generator`` differ between the CPU and CUDA, so the same command on a CPU
and on a GPU gives different (equally valid) samples; :func:`device_facts` is written into every
run folder and record config so that this can be checked.
"""

from __future__ import annotations

import os
import platform
from typing import Any

import torch


def configure(device: torch.device, precision: str = "fp32",
              deterministic: bool = False) -> None:
    """Set the process-wide backend flags for a run on ``device`` (see the module docstring).
    Each run sets them to its own config, so a later stage in the same process does not
    inherit an earlier one's ``deterministic``."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(deterministic, warn_only=True)
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = bool(deterministic)
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"


def device_facts(device: torch.device, deterministic: bool = False) -> dict[str, Any]:
    """What a record needs to say where its bits came from: device type and model, the torch
    (and CUDA) versions, and whether deterministic algorithms were asked for."""
    facts: dict[str, Any] = {"device_type": device.type, "torch_version": torch.__version__,
                             "deterministic": bool(deterministic)}
    if device.type == "cuda":
        facts["device_model"] = torch.cuda.get_device_name(device)
        facts["cuda_version"] = torch.version.cuda
    else:
        facts["device_model"] = platform.processor() or platform.machine()
    return facts


def same_stream(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether two runs' :func:`device_facts` promise the same noise streams: the same device
    type and, on CUDA, the same GPU model (CUDA's generator may launch differently on another
    model). Facts that a record does not hold (written before they were recorded) count as
    the same. Bit-equal arithmetic on CUDA also needs ``deterministic``; the noise does not."""
    if "device_type" not in old:
        return True
    if old.get("device_type") != new.get("device_type"):
        return False
    if new.get("device_type") == "cuda":
        return old.get("device_model") == new.get("device_model")
    return True
