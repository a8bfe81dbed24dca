"""10. bf16 against fp32: speed side by side with the paper's code, and what it does to the
certificates.

- **Side by side, one run** (when ``../shared/peer`` is present): the peer harness times the
  SmoothAdv authors' ``core.Smooth.certify`` (ResNet-20 and ResNet-110, N0 = 100, N = 10,000,
  batch 1,000, one image) and their SmoothAdv training step (ResNet-20, B = 256, T = 2, m = 2,
  multi-noise) beside smoothadv's compiled certification in fp32 and bf16 and its training step
  in fp32 and bf16 (``peer_plugin.py``), on the same model objects and images. Targets:
  certification ≥ 3× the original on both networks, the training step ≥ 2×.
- **Certificates**: the demo's two digits models over the 449 test inputs and the SmoothAdv
  authors' centre-layer ResNet-20 (``../shared/data/paper-checkpoints``) on ``--cifar-images``
  test images, certified at fp32 and at bf16 with the same seeds (n0 = 100, n = 100,000,
  α = 0.001): certified accuracy per radius, ACR, the share of equal predictions and the
  largest radius change. Target: within 0.5 point of fp32 at every radius.

``python bench/bench_precision.py [--sections peer,certificates] [--cifar-images 20]``
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from common import SHARED, demo_models, machine, run_peer, verdict
from smoothadv import Smooth
from smoothadv.data.datasets import create_dataset
from smoothadv.models import load_checkpoint
from smoothadv.runtime.compile import compile_for_inference
from smoothadv.runtime.precision import at_precision, native_bf16_cpu

CIFAR = Path(SHARED) / "cifar10"
ARCHS = ("cifar_resnet20", "cifar_resnet110")
RADII = (0.0, 0.25, 0.5, 0.75)


def side_by_side() -> dict | None:
    """The harness's results for the original and for smoothadv's tasks, from one run."""
    return run_peer("certify,train", "smoothadv:certify_compiled,smoothadv:train",
                    "--train-repeats", "3")


def print_side_by_side(results: dict) -> None:
    for arch in ARCHS:
        theirs = results[f"certify:{arch}"]["sec_per_image_median"]
        for label, key in (("fp32 compiled", "certify_compiled"),
                           ("bf16 compiled", "certify_compiled_bf16")):
            ours = results[f"plugin:smoothadv:{key}:{arch}"]
            if "error" in ours:
                print(f"   certify {arch} {label}: {ours['error']}")
                continue
            s = ours["sec_per_image_median"]
            print(f"   certify {arch:16s} paper's code {theirs:6.1f} s/input, smoothadv {label} "
                  f"{s:6.1f} s/input → {theirs / s:.2f}× ({verdict(theirs / s, 3.0)})")
    train = results.get("train:cifar_resnet20", {})
    theirs = train.get("smoothadv_multinoise_sec_per_step_median")
    for label, key in (("fp32", "train"), ("bf16", "train_bf16")):
        ours = results.get(f"plugin:smoothadv:{key}:cifar_resnet20", {})
        s = ours.get("smoothadv_multinoise_sec_per_step_median")
        if theirs and s:
            print(f"   SmoothAdv step ResNet-20 (B=256, T=2, m=2, multi-noise): paper's code "
                  f"{theirs:.2f} s, smoothadv {label} {s:.2f} s → {theirs / s:.2f}× "
                  f"({verdict(theirs / s, 2.0)})")


def compare_certificates(label: str, model, dataset, indices, n: int, batch: int,
                         compiled: bool = False) -> None:
    """Certify ``indices`` at fp32 and bf16 with the same seeds and print the differences."""
    rows = {}
    for precision in ("fp32", "bf16"):
        base = at_precision(model, precision)
        if compiled:
            base = compile_for_inference(base, batch)
        smooth = Smooth(base, 10, 0.25)
        xs = [dataset[i][0] for i in indices]
        t0 = time.perf_counter()
        certs = smooth.certify_many(torch.stack(xs), 100, n, 0.001, batch,
                                    seeds=[1_000_003 + i for i in indices])
        seconds = time.perf_counter() - t0
        labels = np.array([dataset[i][1] for i in indices])
        pred = np.array([c.prediction for c in certs])
        radius = np.array([c.radius if c.prediction >= 0 else 0.0 for c in certs])
        correct = pred == labels
        acc = [float(np.mean(correct & (radius >= r))) for r in RADII]
        rows[precision] = (pred, radius, correct, acc, seconds)
    (p32, r32, c32, a32, s32), (p16, r16, c16, a16, s16) = rows["fp32"], rows["bf16"]
    gap = max(abs(x - y) for x, y in zip(a32, a16)) * 100
    print(f"   {label}: {len(indices)} inputs, n = {n:,}")
    print("      fp32 " + " / ".join(f"{a:.3f}" for a in a32) + " at r = "
          + " / ".join(f"{r:g}" for r in RADII) + f"; ACR {np.where(c32, r32, 0).mean():.3f}; "
          f"{s32:.0f} s")
    print("      bf16 " + " / ".join(f"{a:.3f}" for a in a16)
          + f"; ACR {np.where(c16, r16, 0).mean():.3f}; {s16:.0f} s")
    both = (p32 >= 0) & (p16 >= 0)
    print(f"      same prediction {np.mean(p32 == p16):.3f}; largest radius change "
          f"{np.abs(r32 - r16)[both].max() if both.any() else 0:.4f}; largest accuracy gap "
          f"{gap:.1f} points ({verdict(0.5 - gap + 1e-12, 0.0)})")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sections", default="peer,certificates")
    p.add_argument("--cifar-images", type=int, default=20)
    p.add_argument("--n", type=int, default=100_000)
    args = p.parse_args(argv)
    sections = args.sections.split(",")
    print(f"10. bf16 vs fp32 ({machine()}; native bf16 on this CPU: {native_bf16_cpu()})")
    if "peer" in sections:
        results = side_by_side()
        if results is None:
            print("   paper's code: not measured (../shared/peer absent)")
        else:
            print_side_by_side(results)
    if "certificates" in sections:
        test = create_dataset("digits", "test")
        for name, ckpt in demo_models(0.25).items():
            model, _ = load_checkpoint(ckpt)
            compare_certificates(f"digits {name}", model, test, list(range(len(test))),
                                 args.n, 1000)
        ckpt = Path(SHARED) / "paper-checkpoints" / \
            "smoothadv_center_cifar_resnet20_sigma0.25.pth.tar"
        if ckpt.is_file() and CIFAR.is_dir():
            model, _ = load_checkpoint(ckpt, normalization="center")
            cifar = create_dataset("cifar10", "test", str(CIFAR))
            step = len(cifar) // args.cifar_images
            compare_certificates("the authors' centre-layer ResNet-20 (CIFAR-10)", model,
                                 cifar, list(range(0, step * args.cifar_images, step)),
                                 args.n, 1000, compiled=True)


if __name__ == "__main__":
    main()
