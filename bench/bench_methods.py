"""9. Each training method's optimizer steps for one loaded batch against a Gaussian step on
the same B images, beside the method's cost model.

Cost model, in Gaussian steps of B rows (a train-mode forward and backward; an attack step in
eval mode, a forward and a backward to the input, counts the same):
- gaussian 1; stability 2 (clean and noisy forwards, one backward through both);
- MACER k (one pass of k·B rows);
- consistency m (m steps of B/m images × m draws); with PGD m(T+1);
- SmoothAdv multi-noise m(T+1); SmoothMix and CAT-RS m(T+2) (T attack passes and two
  train-mode forwards per mini-batch).
The ratio measured/model shows what each method's implementation adds beyond its passes.
"""

from __future__ import annotations

import torch

from common import build, device, timeit
from smoothadv import Smooth
from smoothadv.methods import create_method
from smoothadv.train import fit_batch

B = 64
SIGMA = 0.5


def cases():
    """(label, method, cost model)."""
    return [
        ("gaussian", create_method("gaussian", sigma=SIGMA), 1),
        ("stability", create_method("stability", sigma=SIGMA), 2),
        ("macer k=16", create_method("macer", sigma=SIGMA), 16),
        ("consistency m=2", create_method("consistency", sigma=SIGMA), 2),
        ("consistency+PGD m=2 T=10", create_method("consistency", sigma=SIGMA,
                                                   attack="pgd"), 2 * 11),
        ("smoothadv m=2 T=10 multi", create_method(
            "smoothadv", sigma=SIGMA, num_noise=2, multi_noise=True, epsilon=1.0,
            steps=10), 2 * 11),
        ("smoothmix m=2 T=4", create_method("smoothmix", sigma=SIGMA), 2 * 6),
        ("catrs m=4 T=4", create_method("catrs", sigma=SIGMA), 4 * 6),
    ]


def main() -> None:
    dev = device()
    print(f"9. training methods: one loaded batch (B={B}, ResNet-20, σ={SIGMA}) in Gaussian "
          f"steps, {dev}")
    model, shape = build("cifar_resnet20", dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    smooth = Smooth(model, 10, SIGMA)
    x = torch.rand((B, *shape), device=dev)
    y = torch.randint(0, 10, (B,), device=dev)
    soft = torch.softmax(torch.randn(B, 10, device=dev), 1)
    t_gauss = None
    for label, method, model_cost in cases():
        extra = {"soft_targets": soft} if method.name == "catrs" else {}
        t = timeit(lambda: fit_batch(model, opt, method, smooth, x, y, 20, **extra), 3,
                   device=dev)
        t_gauss = t if t_gauss is None else t_gauss
        steps = t / t_gauss
        print(f"   {label:26s}: {t * 1e3:8.1f} ms = {steps:6.2f} Gaussian steps; cost model "
              f"{model_cost:3d} → measured/model {steps / model_cost:.2f}")


if __name__ == "__main__":
    main()
