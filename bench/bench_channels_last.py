"""5. ``--channels-last`` on and off for the conv nets: training and certification speed."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from common import build, device, timeit

CASES = [("MNIST CNN", 256), ("cifar_resnet20", 128)]


def main() -> None:
    dev = device()
    print(f"5. channels-last vs contiguous (NCHW), {dev}")
    for name, batch in CASES:
        results = {}
        for fmt in (torch.contiguous_format, torch.channels_last):
            model, shape = build(name, dev)
            model = model.to(memory_format=fmt)
            opt = torch.optim.SGD(model.parameters(), lr=0.01)
            x = torch.rand((batch, *shape), device=dev).contiguous(memory_format=fmt)
            y = torch.randint(0, 10, (batch,), device=dev)

            def step() -> None:
                model.train()
                loss = F.cross_entropy(model(x), y)
                opt.zero_grad()
                loss.backward()
                opt.step()

            def infer() -> None:
                model.eval()
                with torch.inference_mode():
                    model(x).argmax(1)

            results[fmt] = (timeit(step, 5, device=dev), timeit(infer, 5, device=dev))
        (t_nchw, i_nchw), (t_cl, i_cl) = results[torch.contiguous_format], results[
            torch.channels_last]
        print(f"   {name:15s} batch {batch}: train step NCHW {t_nchw * 1e3:7.1f} ms, "
              f"channels-last {t_cl * 1e3:7.1f} ms ({t_nchw / t_cl:.2f}×); inference NCHW "
              f"{i_nchw * 1e3:7.1f} ms, channels-last {i_cl * 1e3:7.1f} ms "
              f"({i_nchw / i_cl:.2f}×)")


if __name__ == "__main__":
    main()
