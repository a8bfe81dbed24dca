"""3. One SmoothAdv training step against (T+1)·m Gaussian training steps (the cost model).

A SmoothAdv batch of B images with m draws and T attack steps runs, per chunk of B/m images,
T forward-backward passes of B samples (the attack) and one training step of B samples
(multi-noise), so it should cost about (T+1)·m Gaussian steps of batch B. Target ≤ 1.1.
"""

from __future__ import annotations

import torch

from common import build, device, timeit, verdict
from smoothadv import Smooth
from smoothadv.methods import create_method
from smoothadv.train import fit_batch

CASES = [("digits MLP", 256, 4, 2), ("cifar_resnet20", 64, 2, 2)]


def main() -> None:
    dev = device()
    print(f"3. SmoothAdv step vs (T+1)·m Gaussian steps (multi-noise), {dev}")
    for name, batch, steps, m in CASES:
        model, shape = build(name, dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
        smooth = Smooth(model, 10, 0.25)
        x = torch.rand((batch, *shape), device=dev)
        y = torch.randint(0, 10, (batch,), device=dev)
        gauss = create_method("gaussian", sigma=0.25)
        adv = create_method("smoothadv", sigma=0.25, epsilon=0.5, num_noise=m, multi_noise=True,
                            steps=steps)
        reps = 3 if name == "cifar_resnet20" else 10
        t_gauss = timeit(lambda: fit_batch(model, opt, gauss, smooth, x, y, 0), reps, device=dev)
        t_adv = timeit(lambda: fit_batch(model, opt, adv, smooth, x, y, 0), reps, device=dev)
        ratio = t_adv / ((steps + 1) * m * t_gauss)
        print(f"   {name:15s} B={batch} T={steps} m={m}: Gaussian step {t_gauss * 1e3:8.1f} ms, "
              f"SmoothAdv step {t_adv * 1e3:8.1f} ms = {t_adv / t_gauss:5.2f} Gaussian steps; "
              f"ratio to (T+1)·m = {ratio:.3f} ({verdict(ratio, 1.1, higher_is_better=False)})")


if __name__ == "__main__":
    main()
