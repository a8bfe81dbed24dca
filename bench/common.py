"""Shared helpers for the benchmarks: timing, models, machine description."""

from __future__ import annotations

import os
import platform
import statistics
import time
from collections.abc import Callable

import torch

from smoothadv.data.constants import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DIGITS_MEAN,
    DIGITS_STD,
    MNIST_MEAN,
    MNIST_STD,
)
from smoothadv.models import create_model, to_channels_last

MODELS = {
    # name: (arch, mean, std, shape)
    "digits MLP": ("mlp", DIGITS_MEAN, DIGITS_STD, (1, 8, 8)),
    "MNIST CNN": ("lenet", MNIST_MEAN, MNIST_STD, (1, 28, 28)),
    "cifar_resnet20": ("cifar_resnet20", CIFAR10_MEAN, CIFAR10_STD, (3, 32, 32)),
}


def build(name: str, device: torch.device) -> tuple[torch.nn.Module, tuple[int, ...]]:
    arch, mean, std, shape = MODELS[name]
    torch.manual_seed(0)
    model = create_model(arch, 10, mean=mean, std=std, image_size=shape[-1])
    # the library's default layout: channels-last for conv nets (see bench_channels_last)
    return to_channels_last(model.to(device)).eval(), shape


def timeit(fn: Callable[[], object], repeat: int = 5, warmup: int = 1,
           device: torch.device | None = None) -> float:
    """Median wall time of ``fn`` in seconds over ``repeat`` runs (after ``warmup``)."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def paired_timeit(fn_a: Callable[[], object], fn_b: Callable[[], object], repeat: int = 7,
                  device: torch.device | None = None) -> tuple[float, float]:
    """Median times of ``fn_a`` and ``fn_b``, run alternately so that both see the same
    machine state (CPU frequency and other tenants vary over seconds on shared machines)."""
    fn_a()
    fn_b()
    ta, tb = [], []
    for _ in range(repeat):
        ta.append(timeit(fn_a, 1, 0, device))
        tb.append(timeit(fn_b, 1, 0, device))
    return statistics.median(ta), statistics.median(tb)


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo where there is one) and whether it has bf16
    dot-product instructions, e.g. ``AMD EPYC (AVX-512 BF16)``."""
    from smoothadv.runtime.precision import native_bf16_cpu

    name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    name = f"{platform.machine()} {line.split(':', 1)[1].strip()}"
                    break
    except OSError:
        pass
    return f"{name} ({'AVX-512 BF16' if native_bf16_cpu() else 'no bf16 instructions'})"


def machine() -> str:
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no GPU"
    return (f"{cpu_name()}, {os.cpu_count()} cores, "
            f"torch {torch.__version__} ({torch.get_num_threads()} threads), {dev}")


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def verdict(value: float, target: float, higher_is_better: bool = True) -> str:
    ok = value >= target if higher_is_better else value <= target
    sign = "≥" if higher_is_better else "≤"
    return f"target {sign} {target:g}: {'met' if ok else 'MISSED'}"


# ------------------------------------------------------------------ trained models (cached)

CACHE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "runs",
                     "bench")
SHARED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                      "shared", "data")


def demo_models(sigma: float = 0.25, quick: bool = False) -> dict[str, str]:
    """The demo's two digits models (Gaussian and SmoothAdv-PGD, its exact settings), trained
    once into runs/bench and reused: {label: checkpoint path}. ``quick``: the quick demo's
    Gaussian model (half the epochs) alone."""
    from smoothadv.demos.main import METHODS, DemoConfig
    from smoothadv.train import TrainConfig, train

    cfg = DemoConfig(epochs=DemoConfig().epochs // 2 if quick else DemoConfig().epochs)
    out = {}
    for key in (("gaussian",) if quick else ("gaussian", "smoothadv")):
        name, options = METHODS[key]
        name = f"{name} (quick demo)" if quick else name
        run_dir = os.path.join(CACHE, f"digits_{key}_sigma{sigma:g}" + ("_quick" if quick
                                                                         else ""))
        ckpt = os.path.join(run_dir, "checkpoint.pth.tar")
        if not os.path.exists(ckpt):
            train(TrainConfig(dataset="digits", arch="mlp", out=run_dir, sigma=sigma,
                              epochs=cfg.epochs, batch=64, lr=0.1,
                              lr_step=max(1, cfg.epochs * 2 // 3), seed=cfg.seed,
                              device="cpu", progress=False, method=key,
                              options=options(cfg)))
        out[name] = ckpt
    return out


def cifar_resnet20(sigma: float = 0.25) -> str | None:
    """A CIFAR-10 ResNet-20 after a short Gaussian-augmentation training (2 epochs on 10,000
    training images; a benchmark model, not a good classifier), cached in runs/bench; None
    without ../shared/data/cifar10."""
    from smoothadv.train import TrainConfig, train

    root = os.path.join(SHARED, "cifar10")
    if not os.path.isdir(root):
        return None
    run_dir = os.path.join(CACHE, f"cifar_resnet20_sigma{sigma:g}")
    ckpt = os.path.join(run_dir, "checkpoint.pth.tar")
    if not os.path.exists(ckpt):
        train(TrainConfig(dataset="cifar10", data_root=root, arch="cifar_resnet20", out=run_dir,
                          sigma=sigma, epochs=2, batch=128, lr=0.1, lr_step=10,
                          train_subset=10_000, test_subset=500, seed=0, device="cpu",
                          progress=False))
    return ckpt


PEER = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                    "shared", "peer")


def run_peer(sections: str, tasks: str, *args: str) -> dict | None:
    """One run of ``../shared/peer/peer_bench.py`` (the SmoothAdv authors' code) with the
    project's plugin (``bench/peer_plugin.py``, only the tasks whose names start with one of
    the comma-separated prefixes ``tasks``): the harness's results by task, so that every ratio
    against the original is taken within one run. None where the peer code or CIFAR-10 is
    absent. ``args`` are the harness's own options (CIFAR ResNets, N0 = 100, N = 10,000,
    batch 1,000, one image unless given)."""
    import json
    import subprocess
    import sys
    import tempfile

    code = os.path.join(PEER, "smoothing-adversarial", "code")
    harness = os.path.join(PEER, "peer_bench.py")
    cifar = os.path.join(SHARED, "cifar10")
    if not (os.path.isdir(code) and os.path.isfile(harness) and os.path.isdir(cifar)):
        return None
    plugin = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peer_plugin.py")
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "peer.json")
        subprocess.run([sys.executable, harness, code, cifar, "--sections", sections,
                        "--archs", "cifar_resnet20,cifar_resnet110", "--batch", "1000",
                        "--n0", "100", "--n", "10000", "--num-images", "1", *args,
                        "--plugin", plugin, "--json", out], check=True,
                       stdout=subprocess.DEVNULL,
                       env=dict(os.environ, SMOOTHADV_PEER_TASKS=tasks))
        with open(out) as f:
            results = json.load(f)
    return results.get("results", results)

