"""8. Compiled models (torch.compile) against eager and against the paper's code.

Certification of one CIFAR-10 input (N0 = 100, N = 10,000, batch 1,000, σ = 0.25) with the
ResNet-20 and ResNet-110, eager and compiled, and one SmoothAdv training step (T = 2, m = 2,
batch 256, ResNet-20, multi-noise) eager, with the training steps compiled, and with the attack
compiled too. Compile time is reported separately (the first call).

Against the paper's code: a ratio means something only when both ran in the same run, so when
``../shared/peer`` is present this benchmark runs the original's ``core.Smooth.certify`` beside
smoothadv compiled through its harness (``peer_bench.py`` with ``peer_plugin.py``: the same
model objects and images, N0 = 100, N = 10,000, batch 1,000, one image each) and prints that
ratio; without it the ratio is "not measured". Targets: certify ≥ 2× the paper's throughput
on both networks.
"""

from __future__ import annotations

import time

import torch

from common import build, device, machine, run_peer, verdict
from smoothadv import Smooth
from smoothadv.methods import create_method
from smoothadv.models import create_model, to_channels_last
from smoothadv.runtime.compile import compile_for_inference, compile_for_training
from smoothadv.train import fit_batch

N0, N, BATCH = 100, 10_000, 1000
ARCHS = ("cifar_resnet20", "cifar_resnet110")


def side_by_side() -> dict[str, tuple[float, float]] | None:
    """{arch: (paper's code s/image, smoothadv compiled s/image)} from one run of the peer
    harness (:func:`common.run_peer`), or None where it cannot run."""
    results = run_peer("certify", "smoothadv:certify_compiled:")
    if results is None:
        return None
    return {arch: (results[f"certify:{arch}"]["sec_per_image_median"],
                   results[f"plugin:smoothadv:certify_compiled:{arch}"]["sec_per_image_median"])
            for arch in ARCHS}


def _model(arch: str, dev: torch.device) -> torch.nn.Module:
    if arch == "cifar_resnet20":
        return build(arch, dev)[0]
    torch.manual_seed(0)
    model = create_model(arch, 10, dataset="cifar10")
    return to_channels_last(model.to(dev)).eval()


def _time(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    dev = device()
    print(f"8. compiled vs eager ({machine()})")
    peer = side_by_side()
    if peer is None:
        print("   paper's code: not measured (../shared/peer absent)")
    else:
        for arch, (theirs, ours) in peer.items():
            print(f"   side by side, one run: certify {arch:16s}: paper's code {theirs:6.1f} "
                  f"s/input, smoothadv compiled {ours:6.1f} s/input → {theirs / ours:.2f}× "
                  f"({verdict(theirs / ours, 2.0)})")
    x = torch.rand((3, 32, 32), device=dev)
    for arch in ARCHS:
        model = _model(arch, dev)
        eager = Smooth(model, 10, 0.25)
        compiled = Smooth(compile_for_inference(model, BATCH), 10, 0.25)
        t0 = time.perf_counter()
        first = compiled.certify(x, N0, N, 0.001, BATCH, seed=0)  # compiles (two shapes)
        t_compile = time.perf_counter() - t0
        repeat = 2 if arch == "cifar_resnet20" else 1
        t_eager = _time(lambda: eager.certify(x, N0, N, 0.001, BATCH, seed=0), repeat)
        t_comp = _time(lambda: compiled.certify(x, N0, N, 0.001, BATCH, seed=0), repeat)
        same = eager.certify(x, N0, N, 0.001, BATCH, seed=0)
        print(f"   certify {arch:16s}: eager {t_eager:6.1f} s/input, compiled {t_comp:6.1f} "
              f"s/input ({t_eager / t_comp:.2f}×; first call with compilation {t_compile:.0f} s); "
              f"counts eager {same.n_a}, compiled {first.n_a}")
    model = _model("cifar_resnet20", dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    xb = torch.rand((256, 3, 32, 32), device=dev)
    yb = torch.randint(0, 10, (256,), device=dev)
    method = create_method("smoothadv", sigma=0.25, epsilon=0.5, num_noise=2, multi_noise=True,
                           steps=2)
    results = {}
    for label in ("eager", "steps compiled", "steps and attack compiled"):
        step_model, attacked = model, model
        if label != "eager":
            step_model, _ = compile_for_training(model)
        if label == "steps and attack compiled":
            attacked, _ = compile_for_training(model)
        smooth = Smooth(attacked, 10, 0.25)
        t0 = time.perf_counter()
        fit_batch(step_model, opt, method, smooth, xb, yb, 0)  # compiles
        fit_batch(step_model, opt, method, smooth, xb, yb, 0)
        t_first = time.perf_counter() - t0
        results[label] = _time(lambda: fit_batch(step_model, opt, method, smooth, xb, yb, 0), 3)
        print(f"   SmoothAdv step (ResNet-20, B=256, T=2, m=2) {label:26s}: "
              f"{results[label]:5.2f} s (first two with compilation {t_first:.0f} s)")


if __name__ == "__main__":
    main()
