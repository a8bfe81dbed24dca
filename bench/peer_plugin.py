"""A plugin for ``../shared/peer/peer_bench.py``: only smoothadv's compiled certification of the
CIFAR-10 ResNets, so that bench 8 times the paper's code and ours in one run on the same model
objects and images. The tasks themselves are those of ``../shared/peer/plugin_smoothadv.py``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SHARED_PLUGIN = Path(__file__).resolve().parents[2] / "shared" / "peer" / "plugin_smoothadv.py"
WANTED = ("smoothadv:certify_compiled:cifar_resnet20", "smoothadv:certify_compiled:cifar_resnet110")


def tasks():
    spec = importlib.util.spec_from_file_location("plugin_smoothadv", SHARED_PLUGIN)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    every = module.tasks()
    return {name: every[name] for name in WANTED}
