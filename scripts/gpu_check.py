"""``make gpu-check``: what a user with an NVIDIA GPU runs first (a few minutes).

1. the device-parametrised tests (tests/test_devices.py: certification, sound and sequential
   certification, a training step of every method, attacks, compile, denoisers, resume, the
   no-sync check of the hot paths under ``torch.cuda.set_sync_debug_mode("error")`` and, with
   two GPUs, torchrun with one GPU per rank);
2. CPU and GPU agree: one CIFAR-10 ResNet-20 certified on both (same counts are not expected —
   the noise streams differ — but the same prediction and radii within sampling error);
3. certification throughput on the GPU (ResNet-20, noisy samples per second) in fp32, tf32
   and bf16, eager and compiled, channels-last or not, and what ``--deterministic`` costs in
   fp32: the figures to choose flags by (docs/distributed.md leaves them blank until a GPU
   has run this).

Exits 2 with one line where there is no CUDA device, 1 when a check fails.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def throughput(device, precision: str, compiled: bool, channels_last: bool,
               n: int = 40_000, batch: int = 1_000, deterministic: bool = False) -> float:
    """Noisy samples per second of the certification counting loop (2 inputs, n each)."""
    import torch

    from smoothadv.models import create_model, to_channels_last
    from smoothadv.runtime.backends import configure
    from smoothadv.runtime.compile import compile_for_inference
    from smoothadv.runtime.precision import at_precision
    from smoothadv.smoothing import Smooth

    configure(device, precision, deterministic)
    torch.manual_seed(0)
    model = create_model("cifar_resnet20", 10, mean=[0.49, 0.48, 0.45],
                         std=[0.25, 0.24, 0.26], image_size=32).to(device).eval()
    if channels_last:
        model = to_channels_last(model)
    model = at_precision(model, precision)
    if compiled:
        model = compile_for_inference(model, batch)
    smooth = Smooth(model, 10, 0.25)
    xs = torch.rand(2, 3, 32, 32)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    smooth.certify_many(xs, 10, 2 * batch, 0.001, batch, seeds=[0, 1])  # warm-up / compile
    sync()
    t0 = time.perf_counter()
    smooth.certify_many(xs, 10, n, 0.001, batch, seeds=[0, 1])
    sync()
    return 2 * (n + 10) / (time.perf_counter() - t0)


def agreement(device, n: int = 5_000) -> tuple[str, bool]:
    """The same ResNet-20 input certified on the CPU and on ``device`` (n samples each)."""
    import torch

    from smoothadv.models import create_model
    from smoothadv.smoothing import Smooth

    torch.manual_seed(0)
    model = create_model("cifar_resnet20", 10, mean=[0.5] * 3, std=[0.25] * 3,
                         image_size=32).eval()
    x = torch.rand(1, 3, 32, 32)
    cpu = Smooth(model, 10, 0.25).certify_many(x, 100, n, 0.001, 500, seeds=[7])[0]
    gpu = Smooth(model.to(device), 10, 0.25).certify_many(x, 100, n, 0.001, 500,
                                                          seeds=[7])[0]
    ok = cpu.prediction == gpu.prediction or cpu.abstained or gpu.abstained
    p_cpu, p_gpu = cpu.n_a / cpu.n, gpu.n_a / gpu.n
    ok = ok and abs(p_cpu - p_gpu) < 5 * (max(p_cpu * (1 - p_cpu), 1e-4) / cpu.n) ** 0.5 + 0.01
    return (f"{'ok' if ok else 'FAILED'}: CPU predicts {cpu.prediction} with p̂ {p_cpu:.3f}, "
            f"GPU {gpu.prediction} with p̂ {p_gpu:.3f}"), ok


def configure_default(device) -> None:
    """The backend flags of an fp32 run, as every stage sets them."""
    from smoothadv.runtime.backends import configure

    configure(device, "fp32", False)


def main() -> int:
    import torch

    if not torch.cuda.is_available():
        print("gpu-check: no CUDA device is visible (torch.cuda.is_available() is False): "
              "run it on a machine with an NVIDIA GPU and a CUDA build of torch")
        return 2
    device = torch.device("cuda", 0)
    print(f"gpu-check: {torch.cuda.device_count()} × {torch.cuda.get_device_name(device)}, "
          f"torch {torch.__version__}, CUDA {torch.version.cuda}")
    failed = False
    print("\n1. device-parametrised tests")
    rc = subprocess.call([sys.executable, "-m", "pytest", "-q", "-rs", "tests/test_devices.py"],
                         cwd=ROOT)
    failed |= rc != 0
    print("\n2. CPU and GPU certify one input alike")
    line, ok = agreement(device)
    print("   " + line)
    failed |= not ok
    print("\n3. certification throughput, ResNet-20, batch 1000 (noisy samples/s)")
    base = None
    for precision in ("fp32", "tf32", "bf16"):
        for compiled in (False, True):
            for channels_last in (False, True):
                rate = throughput(device, precision, compiled, channels_last)
                base = base or rate
                print(f"   {precision:5s} {'compiled' if compiled else 'eager   '} "
                      f"{'channels-last' if channels_last else 'contiguous   '} "
                      f"{rate:12,.0f}  ({rate / base:.2f}× fp32 eager contiguous)")
    rate = throughput(device, "fp32", False, False, deterministic=True)
    print(f"   fp32  eager    contiguous    --deterministic {rate:12,.0f}  "
          f"({rate / base:.2f}× without it)")
    configure_default(device)
    print("\ngpu-check: " + ("FAILED" if failed else "all checks passed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT / "src"))
    sys.exit(main())
