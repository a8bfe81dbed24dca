"""A plugin for ``../shared/peer/peer_bench.py``: smoothadv's tasks timed in the same run as the
SmoothAdv authors' code, on the very same model objects (the harness builds the peer's ResNets)
and images.

- ``smoothadv:certify_compiled[_bf16]:ARCH``: certification through ``smoothadv.runtime.compile``'s
  wrapper (what ``certify --compile [--precision bf16]`` runs), channels-last, compile time
  excluded by a warm-up certification of the same size;
- ``smoothadv:train[_bf16]:cifar_resnet20``: one SmoothAdv-PGD multi-noise training step
  (``fit_batch`` with the library's method, the harness's T, m, ε and batch), channels-last,
  eager, in fp32 or under bf16 autocast, beside the harness's ``train:cifar_resnet20`` task
  (the original's step).
"""

from __future__ import annotations

import statistics
import time

ARCHS = ("cifar_resnet20", "cifar_resnet110")


def _result(res):
    return int(res.prediction), float(res.radius)


def _certify_compiled_task(arch: str, precision: str):
    def fn(ctx):
        from smoothadv import Smooth
        from smoothadv.runtime.compile import CompiledClassifier
        from smoothadv.runtime.precision import at_precision

        a = ctx.args
        torch = ctx.torch
        model = ctx.build_peer_model(arch).to(memory_format=torch.channels_last).eval()
        x, _, idx = ctx.load_test_images()
        t0 = time.perf_counter()
        compiled = CompiledClassifier(at_precision(model, precision), batch_size=a.batch)
        smooth = Smooth(compiled, 10, a.sigma)
        smooth.certify(x[0], a.n0, a.batch * 2, a.alpha, a.batch)  # compiles every bucket
        compile_s = time.perf_counter() - t0
        times, outs = [], []
        for i in range(len(x)):
            torch.manual_seed(a.seed + i)
            t1 = time.perf_counter()
            outs.append(_result(smooth.certify(x[i], a.n0, a.n, a.alpha, a.batch)))
            times.append(time.perf_counter() - t1)
        med = statistics.median(times)
        return {"sec_per_image_median": med, "samples_per_s": (a.n0 + a.n) / med,
                "compile_s": compile_s, "precision": precision, "certify_outputs": outs,
                "image_indices": idx}
    return fn


def _train_task(arch: str, precision: str):
    def fn(ctx):
        from smoothadv import Smooth
        from smoothadv.methods import create_method
        from smoothadv.runtime.precision import autocast
        from smoothadv.train import fit_batch

        a = ctx.args
        torch = ctx.torch
        model = ctx.build_peer_model(arch).to(memory_format=torch.channels_last)
        X, Y, _ = ctx.load_train_batch(a.train_batch)
        X = X.contiguous(memory_format=torch.channels_last)
        opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
        m, T = a.num_noise_vec, a.pgd_steps
        method = create_method("smoothadv", sigma=a.sigma, num_noise=m, multi_noise=True,
                               epsilon=a.epsilon, steps=T)
        smooth = Smooth(model, 10, a.sigma)

        def step():
            fit_batch(model, opt, method, smooth, X, Y, epoch=100,
                      autocast=lambda: autocast(precision, X.device.type))

        step()  # warm-up
        times = []
        for _ in range(a.train_repeats):
            t0 = time.perf_counter()
            step()
            times.append(time.perf_counter() - t0)
        return {"arch": arch, "m": m, "T": T, "precision": precision,
                "smoothadv_multinoise_sec_per_step_median": statistics.median(times),
                "sec_all": times}
    return fn


def tasks():
    """Every task, or those whose names start with one of the comma-separated prefixes in
    ``SMOOTHADV_PEER_TASKS`` (each benchmark asks for its own)."""
    import os

    out = {}
    for precision, suffix in (("fp32", ""), ("bf16", "_bf16")):
        for arch in ARCHS:
            out[f"smoothadv:certify_compiled{suffix}:{arch}"] = _certify_compiled_task(
                arch, precision)
        out[f"smoothadv:train{suffix}:cifar_resnet20"] = _train_task("cifar_resnet20", precision)
    wanted = [w for w in os.environ.get("SMOOTHADV_PEER_TASKS", "").split(",") if w]
    return {k: v for k, v in out.items() if not wanted or k.startswith(tuple(wanted))}
