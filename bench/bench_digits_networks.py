"""13. The seven-method digits demo's certification cost: the network and shared noise.

Times ``Smooth.certify_many`` on 8×8 digits inputs (random weights, eval mode, fp32, batch
1000) for the ``mlp``, the ``digits_cnn`` in its own contiguous layout and the ``digits_cnn``
forced to channels-last, in noisy samples per second; then seven ``digits_cnn`` models
certified one after another against the same seven on shared noise
(``Smooth.certify_shared``, the demo's way), in model-samples per second, and the demo's
certification time this implies: 7 methods × 2 σ × 3 seeds × 449 images × (n0 + n) =
1.89·10⁹ model-samples at n = 100,000. The runs alternate so that all see the same machine
state.
"""

from __future__ import annotations

import statistics
import time

import torch

from common import device, machine
from smoothadv import Smooth
from smoothadv.models import create_model

DEMO_SAMPLES = 7 * 2 * 3 * 449 * 100_100


def _model(arch: str, dev: torch.device, channels_last: bool = False) -> torch.nn.Module:
    model = create_model(arch, 10, dataset="digits").to(dev).eval()
    return model.to(memory_format=torch.channels_last) if channels_last else model


def main(n: int = 20_000, inputs: int = 2, repeat: int = 5) -> dict[str, float]:
    dev = device()
    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    xs = torch.rand(inputs, 1, 8, 8)
    seeds = list(range(inputs))
    samples = inputs * (n + 100)
    print(f"13. digits networks and shared certification ({machine()}), n={n:,}, {inputs} "
          "inputs, batch 1000")
    single = {"mlp": _model("mlp", dev), "digits_cnn": _model("digits_cnn", dev),
              "digits_cnn channels-last": _model("digits_cnn", dev, True)}
    seven = [_model("digits_cnn", dev) for _ in range(7)]
    smooth = Smooth(seven[0], 10, 0.5)
    runs = {name: (lambda m=m: Smooth(m, 10, 0.5).certify_many(xs, 100, n, 0.001, 1000, seeds))
            for name, m in single.items()}
    runs["7 × digits_cnn, one by one"] = lambda: [
        Smooth(m, 10, 0.5).certify_many(xs, 100, n, 0.001, 1000, seeds) for m in seven]
    runs["7 × digits_cnn, shared noise"] = lambda: smooth.certify_shared(
        seven, xs, 100, n, 0.001, 1000, seeds)
    for fn in runs.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(repeat):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    rate = {}
    for name, ts in times.items():
        models = 7 if name.startswith("7 ×") else 1
        rate[name] = models * samples / statistics.median(ts)
        print(f"  {name:32s} {rate[name] / 1e6:5.2f} M model-samples/s")
    mlp, cnn = rate["mlp"], rate["digits_cnn"]
    print(f"  digits_cnn / mlp: {cnn / mlp:.2f}×; channels-last / contiguous: "
          f"{rate['digits_cnn channels-last'] / cnn:.2f}×")
    together, apart = rate["7 × digits_cnn, shared noise"], rate["7 × digits_cnn, one by one"]
    print(f"  shared / one by one: {together / apart:.2f}×; the demo's certification (1.89e9 "
          f"model-samples) at this rate: {DEMO_SAMPLES / together / 60:.0f} min shared, "
          f"{DEMO_SAMPLES / apart / 60:.0f} min one by one (in one process of "
          f"{torch.get_num_threads()} threads)")
    return rate


if __name__ == "__main__":
    main()
