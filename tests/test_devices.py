"""The device-sensitive paths on every available device (CPU always, CUDA where present):
certification, sound sampling, sequential certification, a training step of every method,
attacks, compiled inference, denoisers, resume and checkpoints; plus the device rules of
``torchrun`` runs, the merge of certification parts without a collective, the training
compile's fallback to eager and, on CUDA, the absence of host-device syncs in the hot paths."""

from __future__ import annotations

import contextlib
import math
import os
import subprocess
import sys
import threading

import numpy as np
import pytest
import torch
import torch.nn as nn
from scipy.stats import chisquare, norm

import smoothadv.runtime.distributed as D
from smoothadv.attacks.smoothadv import SmoothAdvDDN, SmoothAdvPGD, normalize_direction
from smoothadv.errors import UserError
from smoothadv.methods import create_method, list_methods
from smoothadv.models import save_checkpoint, to_cpu
from smoothadv.noise import RoundedGaussian
from smoothadv.noise.rounded import exact_probabilities, round_to_grid
from smoothadv.runtime.backends import device_facts, same_stream
from smoothadv.smoothing.sequential import SequentialCertifier
from smoothadv.smoothing.smooth import Smooth
from smoothadv.train import TrainConfig, fit_batch
from smoothadv.train.loop import Trainer

from .conftest import ROOT

SIGMA = 0.25


def _cuda() -> bool:
    return torch.cuda.is_available()


# ------------------------------------------------------------------ device rules (any host)


@pytest.mark.parametrize(("name", "count", "distributed", "local", "expected"), [
    ("auto", 0, False, 0, "cpu"),
    ("auto", 4, False, 0, "cuda:0"),
    ("auto", 4, True, 2, "cuda:2"),
    ("cuda", 4, False, 0, "cuda:0"),
    ("cuda", 4, True, 3, "cuda:3"),  # no index under torchrun: the local rank's GPU
    ("cuda:1", 4, False, 0, "cuda:1"),
    ("cuda:1", 4, True, 2, "cuda:3"),  # an index is the first GPU of this job's share
    ("cpu", 4, True, 1, "cpu"),
])
def test_device_per_local_rank(monkeypatch, name, count, distributed, local, expected):
    monkeypatch.setenv("LOCAL_RANK", str(local))
    got = D.resolve_device(name, cuda_count=count, distributed=distributed)
    assert got == torch.device(expected)
    if got.type == "cuda":
        assert got.index is not None  # set_device and DDP's device_ids take it


TORCHRUN = {"WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "4", "TORCHELASTIC_RUN_ID": "x"}
SRUN = {"WORLD_SIZE": "4", "SLURM_PROCID": "2"}  # the sweep's SLURM engine sets no more


@pytest.mark.parametrize(("environ", "name", "count", "expected"), [
    ({**TORCHRUN, "LOCAL_RANK": "2"}, "auto", 4, "cuda:2"),
    ({**TORCHRUN, "LOCAL_RANK": "2"}, "auto", 2, "ranks on this node but 2 GPU"),
    ({**TORCHRUN, "LOCAL_RANK": "0"}, "cuda", 3, "ranks on this node but 3 GPU"),
    ({**TORCHRUN, "LOCAL_WORLD_SIZE": "2", "LOCAL_RANK": "1"}, "cuda:2", 4, "cuda:3"),
    ({**SRUN, "LOCAL_RANK": "2"}, "cuda", 1, "cuda:0"),  # per-task binding: its own GPU
    ({**SRUN, "LOCAL_RANK": "2"}, "auto", 1, "cuda:0"),
    ({**SRUN, "LOCAL_RANK": "2"}, "cuda:1", 1, "sees one GPU"),
    ({**SRUN, "LOCAL_RANK": "2"}, "auto", 4, "cuda:2"),  # no binding: as torchrun
    ({**SRUN, "LOCAL_RANK": "2"}, "cpu", 4, "cpu"),
    ({"LOCAL_RANK": "0"}, "cuda:1", 2, "cuda:1"),
])
def test_device_rule_under_each_launcher(environ, name, count, expected):
    """The environment each launcher sets decides the GPU of a rank, before any process group:
    under per-task binding `cuda` was refused on every rank but 0, and more torchrun ranks than
    GPUs were wrapped onto one GPU (which NCCL refuses at start-up)."""
    if expected.startswith(("cuda:", "cpu")):
        assert D.resolve_device(name, cuda_count=count, environ=environ) == torch.device(
            expected)
    else:
        with pytest.raises(UserError, match=expected):
            D.resolve_device(name, cuda_count=count, environ=environ)
    assert D.launcher(environ) == ("alone" if "WORLD_SIZE" not in environ else
                                   "torchrun" if "LOCAL_WORLD_SIZE" in environ else "srun")


def test_one_process_on_cuda_n_makes_it_the_current_device(monkeypatch):
    """Alone on cuda:1 the process's current device is GPU 1 (it stayed 0, so pinning and the
    compile decision's synchronize touched GPU 0). Shown through the device seam."""
    calls = []
    monkeypatch.setattr(D, "resolve_device", lambda name: torch.device("cuda", 1))
    monkeypatch.setattr(torch.cuda, "set_device", calls.append)
    monkeypatch.setattr("smoothadv.runtime.backends.configure", lambda *a: None)
    assert D.setup_device("cuda:1", join=False) == torch.device("cuda", 1)
    assert calls == [torch.device("cuda", 1)]


def test_device_errors_are_one_line(monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    with pytest.raises(UserError, match=r"cuda:2 \(local rank 3\) needs GPU 5, but this node "
                                        r"has 4"):
        D.resolve_device("cuda:2", cuda_count=4, distributed=True)
    with pytest.raises(UserError, match="CUDA is not available"):
        D.resolve_device("cuda", cuda_count=0, distributed=False)
    with pytest.raises(UserError, match="unknown device 'gpu0'"):
        D.resolve_device("gpu0", cuda_count=0)


def test_process_group_timeout(monkeypatch):
    monkeypatch.delenv("SMOOTHADV_DIST_TIMEOUT", raising=False)
    assert D.timeout_minutes() == D.DEFAULT_TIMEOUT_MINUTES == 120
    monkeypatch.setenv("SMOOTHADV_DIST_TIMEOUT", "600")
    assert D.timeout_minutes() == 600 and D.timeout_minutes(30) == 30
    monkeypatch.setenv("SMOOTHADV_DIST_TIMEOUT", "soon")
    with pytest.raises(UserError, match="SMOOTHADV_DIST_TIMEOUT must be minutes"):
        D.timeout_minutes()
    with pytest.raises(UserError, match="> 0 minutes"):
        D.timeout_minutes(0)


def _parts(out, rows_by_rank):
    header = "idx\tlabel\n"
    for rank_, rows in rows_by_rank.items():
        D.part_path(out, rank_).write_text(header + "".join(f"{i}\t{i % 3}\n" for i in rows))


def test_the_last_rank_to_finish_merges_and_rank_0_waits_for_it(tmp_path):
    out = tmp_path / "rows.tsv"
    _parts(out, {0: [0, 2, 4], 1: [1, 3]})
    merged = {}
    waiter = threading.Thread(target=lambda: merged.update(
        r0=D.finish_parts(out, 2, 0, wait=True, poll_seconds=0.01)))
    waiter.start()  # rank 0 finishes first and waits (in no collective)
    waiter.join(0.3)
    assert waiter.is_alive() and not out.exists()
    assert D.finish_parts(out, 2, 1, wait=False) is True  # the last one merges
    waiter.join(5)
    assert not waiter.is_alive() and merged["r0"] is False
    assert [line.split("\t")[0] for line in out.read_text().splitlines()[1:]] == list("01234")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.tsv"]  # no parts, no markers


def test_compiled_training_that_fails_at_its_first_step_goes_eager(tmp_path, monkeypatch,
                                                                   capsys):
    """A compile error that surfaces only when the compiled model first runs (as inductor's
    and Triton's do) must not end the run: the batch is redone eagerly, bit for bit."""

    class FailsWhenRun(nn.Module):
        def __init__(self, model):
            super().__init__()
            self.inner = model

        def forward(self, *args, **kwargs):
            raise RuntimeError("InductorError: triton kernel failed to compile\nmore detail")

    def cfg(out):
        return TrainConfig(dataset="digits", out=str(tmp_path / out), arch="lenet", epochs=2,
                           batch=64, train_subset=192, test_subset=64, method="smoothadv",
                           options={"num_noise": 2, "steps": 1, "epsilon": 0.25},
                           progress=False, device="cpu",
                           compile="on" if out == "compiled" else "off")

    eager = Trainer(cfg("eager"))
    eager.run()
    monkeypatch.setattr(torch, "compile", lambda model, **kw: FailsWhenRun(model))
    compiled = Trainer(cfg("compiled"))
    assert compiled.compiled
    compiled.run()
    err = capsys.readouterr().err
    assert err.count("the compiled training step failed (RuntimeError: InductorError") == 1
    for a, b in zip(eager.model.state_dict().values(), compiled.model.state_dict().values()):
        assert torch.equal(a, b)
    assert not compiled.compiled


def test_checkpoints_hold_cpu_tensors_only(tmp_path, device):
    from smoothadv.models import create_model

    model = create_model("mlp", 10, mean=[0.5], std=[0.25], image_size=8).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.rand(4, 1, 8, 8, device=device)).sum().backward()
    opt.step()
    path = tmp_path / "c.pth.tar"
    save_checkpoint(path, model, arch="mlp", epoch=1, meta={"num_classes": 10},
                    optimizer=opt, extra={"rng": [torch.zeros(3, device=device)]})
    blob = torch.load(path, weights_only=True)  # no map_location: what the paper's code does

    def devices(obj):
        if isinstance(obj, torch.Tensor):
            yield obj.device.type
        elif isinstance(obj, dict):
            for v in obj.values():
                yield from devices(v)
        elif isinstance(obj, (list, tuple)):
            for v in obj:
                yield from devices(v)

    assert set(devices(blob)) == {"cpu"}
    assert to_cpu((1, "a", None)) == (1, "a", None)


def test_device_facts_and_when_streams_match():
    cpu = device_facts(torch.device("cpu"))
    assert cpu["device_type"] == "cpu" and cpu["deterministic"] is False
    gpu = {"device_type": "cuda", "device_model": "NVIDIA H100", "deterministic": True}
    assert same_stream(cpu, dict(cpu)) and same_stream({}, cpu)  # older records: unknown
    assert not same_stream(cpu, gpu)
    assert same_stream(gpu, dict(gpu)) and same_stream(gpu, dict(gpu, deterministic=False))
    assert not same_stream(gpu, dict(gpu, device_model="NVIDIA A100"))


def test_sync_free_variants_equal_in_distribution():
    """The variants CUDA runs (they read nothing back from the device), checked on the CPU:
    the sound sampler's draws pass the same chi-square test as the CPU variant's, and a zero
    direction becomes a random draw, the others their normalized selves."""
    noise = RoundedGaussian(SIGMA)
    draws = noise.draw((600_000,), torch.Generator().manual_seed(1), torch.device("cpu"),
                       sync_free=True)
    values = draws.numpy().astype(np.int64)
    ks = np.arange(-noise.m, noise.m + 1)
    probs = exact_probabilities(SIGMA, ks)
    probs[0] += 1 - probs.sum()
    expected, observed = probs * len(values), np.bincount(values + noise.m, minlength=len(ks))
    keep = expected >= 5
    obs = np.append(observed[keep], observed[~keep].sum()).astype(float)
    exp = np.append(expected[keep], expected[~keep].sum())
    assert chisquare(obs, exp * obs.sum() / exp.sum()).pvalue > 0.001
    direction = torch.randn(5, 1, 4, 4)
    direction[2] = 0
    for sync_free in (False, True):
        unit = normalize_direction(direction, torch.Generator().manual_seed(0), sync_free)
        keep_rows = [0, 1, 3, 4]
        assert torch.allclose(unit[keep_rows], direction[keep_rows]
                              / direction[keep_rows].flatten(1).norm(dim=1).view(-1, 1, 1, 1))
        assert unit[2].abs().sum() > 0  # the zero row became a random draw


# ------------------------------------------------------------ each path on each device


def test_certify_a_linear_classifier(linear_model, device):
    """CERTIFY's radius never exceeds the true one, |w·x + b|/‖w‖, and approaches it."""
    model = linear_model.to(device)
    smooth = Smooth(model, 2, SIGMA)
    xs = torch.stack([model.point_with_pa(p, SIGMA).cpu() for p in (0.9, 0.99)])
    certs = smooth.certify_many(xs, n0=100, n=50_000, alpha=0.001, batch_size=4096,
                                seeds=[1, 2])
    truth = model.true_radius(xs.to(device)).cpu()
    for cert, r in zip(certs, truth.tolist()):
        assert cert.prediction == 1
        assert 0.85 * r < cert.radius <= r


def test_sound_certificate_on_the_grid(linear_model, device):
    model = linear_model.to(device)
    smooth = Smooth(model, 2, SIGMA, sound=True)
    x = round_to_grid(model.point_with_pa(0.99, SIGMA).cpu())
    cert = smooth.certify(x, n0=100, n=20_000, alpha=0.001, batch_size=2048, seed=3)
    # h = f∘round differs from f within half a grid step per pixel: ‖·‖ ≤ √16 · 0.5/255
    bound = float(model.true_radius(x.unsqueeze(0).to(device))) + 4 * 0.5 / 255
    assert cert.prediction == 1 and 0.8 * bound < cert.radius <= bound
    draws = smooth.noise.draw((200_000,), torch.Generator(device).manual_seed(0), device)
    assert draws.device.type == device.type and draws.dtype == torch.int16
    assert abs(float(draws.float().std()) - SIGMA * 255) < 0.02 * SIGMA * 255


def test_sequential_certificate_stays_inside(linear_model, device):
    model = linear_model.to(device)
    smooth = Smooth(model, 2, SIGMA)
    x = model.point_with_pa(0.99, SIGMA).cpu()
    true_radius = SIGMA * norm.ppf(0.99)
    cert = SequentialCertifier(smooth, [0.3, 0.5, 0.7], alpha=0.001, budget=50_000)
    (_, res), = list(cert.run([(0, x, 1, 11)]))
    assert res.prediction == 1 and 0.5 <= res.radius <= true_radius


def _tiny_cnn(device) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                         nn.Flatten(), nn.Linear(4 * 8 * 8, 10)).to(device)


def _method(name):
    opts = {"smoothadv": dict(attack="pgd", epsilon=0.25, steps=1, num_noise=2),
            "consistency": dict(num_noise=2), "smoothmix": dict(num_noise=2, steps=1),
            "macer": dict(num_noise=2), "catrs": dict(num_noise=2, steps=1),
            }.get(name, {})
    return create_method(name, sigma=SIGMA, **opts)


@pytest.mark.parametrize("name", list_methods())
def test_a_training_step_of_every_method(name, device):
    model = _tiny_cnn(device)
    method = _method(name)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 1, 8, 8, generator=g).to(device)
    y = torch.randint(0, 10, (8,), generator=g).to(device)
    soft = torch.softmax(torch.randn(8, 10, generator=g), 1).to(device)
    before = [p.detach().clone() for p in model.parameters()]
    loss, correct, count = fit_batch(model, opt, method, Smooth(model, 10, SIGMA), x, y, 0,
                                     soft_targets=soft if name == "catrs" else None)
    assert loss.device.type == device.type and correct.device.type == device.type
    assert math.isfinite(float(loss)) and 0 <= float(correct) <= count and count > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


@pytest.mark.parametrize("attack", ["pgd", "ddn"])
def test_attacks_stay_in_the_ball_and_the_box(linear_model, device, attack):
    model = linear_model.to(device)
    smooth = Smooth(model, 2, SIGMA)
    xs = torch.stack([model.point_with_pa(p, SIGMA) for p in (0.7, 0.9, 0.99)]).to(device)
    y = torch.ones(3, dtype=torch.long, device=device)
    g = torch.Generator(device).manual_seed(0)
    cls = SmoothAdvPGD if attack == "pgd" else SmoothAdvDDN
    adv = cls(epsilon=0.5, steps=5, num_noise_vectors=4)(smooth, xs, y, generator=g)
    dist = (adv - xs).flatten(1).norm(dim=1)
    # DDN rounds its result to the 8-bit grid after the projection (the paper's rule): up to
    # half a step per pixel, √16 · 0.5/255, beyond ε
    slack = 1e-5 if attack == "pgd" else 4 * 0.5 / 255
    assert adv.min() >= 0 and adv.max() <= 1 and bool((dist <= 0.5 + slack).all())
    if attack == "pgd":  # the margin falls by ε‖w‖ along −w, the best direction for a line
        assert bool((model.margin(adv) < model.margin(xs)).all())


@contextlib.contextmanager
def exact_fp32():
    """cuDNN's TF32 convolutions off while a test compares a GPU's figures with the CPU's at
    1e-4 (PyTorch's default, and the authors', lets convolutions use TF32 on Ampere and later,
    whose 10-bit mantissa is not within 1e-4); the library's own default stays PyTorch's."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


def test_comparisons_at_1e4_run_without_tf32():
    with exact_fp32():
        assert not torch.backends.cudnn.allow_tf32
    assert torch.backends.cudnn.allow_tf32  # PyTorch's default, left as it was


def test_compiled_inference_equals_eager(device):
    if device.type == "cpu":
        pytest.skip("on the CPU: tests/test_compile.py (its compile costs ~10 s a model)")
    from smoothadv.runtime.compile import compile_for_inference

    model = _tiny_cnn(device).eval()
    compiled = compile_for_inference(model, batch_size=128)
    x = torch.rand(100, 1, 8, 8, device=device)
    with torch.inference_mode(), exact_fp32():
        assert torch.allclose(compiled(x), model(x), atol=1e-4)
    assert compiled.compiled


def test_denoiser_in_front_of_a_classifier(device):
    from smoothadv.denoise import DenoisedClassifier, DnCNN

    torch.manual_seed(0)
    den = DnCNN(channels=1, depth=3, width=8).eval()
    classifier = _tiny_cnn("cpu").eval()
    x = torch.rand(4, 1, 8, 8)
    with torch.no_grad(), exact_fp32():
        on_cpu = DenoisedClassifier(classifier, den)(x)
        on_device = DenoisedClassifier(classifier.to(device), den.to(device))(x.to(device))
    assert torch.allclose(on_device.cpu(), on_cpu, atol=1e-4)
    assert torch.equal(on_device.argmax(1).cpu(), on_cpu.argmax(1))


def test_resume_is_bit_equal(tmp_path, device):
    """Two epochs in one go and one epoch plus a resumed one give the same weights (on CUDA
    with ``deterministic``: cuDNN's autotuning may otherwise pick other algorithms)."""
    def cfg(out, epochs):
        return TrainConfig(dataset="digits", out=str(tmp_path / out), arch="lenet",
                           epochs=epochs, batch=64, train_subset=128, test_subset=32,
                           progress=False, device=str(device), deterministic=True,
                           compile="off")

    whole = Trainer(cfg("whole", 2))
    whole.run()
    Trainer(cfg("split", 1)).run()
    resumed = Trainer(cfg("split", 2))
    assert resumed.resumed and resumed.start_epoch == 1
    resumed.run()
    for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)
    logs = [(tmp_path / d / "log.tsv").read_text().splitlines() for d in ("whole", "split")]
    strip = [[line.split("\t")[2:] for line in log] for log in logs]  # without time columns
    assert strip[0] == strip[1]


# ------------------------------------------------------------------------- CUDA only


@pytest.mark.skipif(not _cuda(), reason="no CUDA device here: the sync check needs one")
def test_hot_paths_make_no_host_device_sync(linear_model):
    """Certification's packing, the sound sampler, a training step of every method and the
    attacks, under ``torch.cuda.set_sync_debug_mode("error")``: a sync raises."""
    device = torch.device("cuda", 0)
    model = linear_model.to(device)
    xs = torch.stack([model.point_with_pa(p, SIGMA).cpu() for p in (0.9, 0.99, 0.999)])
    net = _tiny_cnn(device)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.rand(8, 1, 8, 8, device=device)
    y = torch.randint(0, 10, (8,), device=device)
    soft = torch.softmax(torch.randn(8, 10, device=device), 1)
    gens = [torch.Generator(device).manual_seed(i) for i in range(3)]
    smooth, sound = Smooth(model, 2, SIGMA), Smooth(model, 2, SIGMA, sound=True)
    prepared, prepared_sound = smooth._prepare(xs, 100), sound._prepare(round_to_grid(xs), 100)
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        smooth._counts(prepared, 250, 100, gens)  # several inputs share batches
        sound._counts(prepared_sound, 250, 100, gens)
        for name in list_methods():
            fit_batch(net, opt, _method(name), Smooth(net, 10, SIGMA), x, y, 0,
                      soft_targets=soft if name == "catrs" else None)
        for cls in (SmoothAdvPGD, SmoothAdvDDN):
            cls(epsilon=0.5, steps=3, num_noise_vectors=2)(
                Smooth(net, 10, SIGMA), x, y, generator=gens[0])
    finally:
        torch.cuda.set_sync_debug_mode("default")


@pytest.mark.skipif(not _cuda() or torch.cuda.device_count() < 2,
                    reason="needs two GPUs: torchrun with one GPU per rank")
def test_torchrun_on_two_gpus(tmp_path):
    out = tmp_path / "run"
    for device in ("auto", "cuda"):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node", "2", "-m", "smoothadv", "train", "--dataset", "digits",
               "--arch", "lenet", "--epochs", "1", "--batch", "32", "--train-subset", "128",
               "--test-subset", "32", "--device", device, "--no-progress", "--overwrite",
               "--out", str(out)]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                              env=dict(os.environ, OMP_NUM_THREADS="1"))
        assert proc.returncode == 0, proc.stderr[-3000:]


def test_torchrun_ranks_share_the_evaluation_and_its_figures_equal_one_process(tmp_path):
    """Two gloo ranks evaluate half the test batches each (noise per batch from its own seed):
    the logged figures equal a single process's evaluation of the same checkpoint."""
    from smoothadv.models import normalize_state_dict, read_checkpoint

    out = tmp_path / "ddp"
    args = ["--dataset", "digits", "--epochs", "1", "--batch", "32", "--train-subset", "128",
            "--test-subset", "96", "--device", "cpu", "--method", "smoothadv", "--m-train", "2",
            "--steps", "1", "--epsilon", "0.25", "--warmup", "0", "--no-progress"]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "smoothadv", "train", *args, "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    header, row = [line.split("\t") for line in (out / "log.tsv").read_text().splitlines()]
    logged = dict(zip(header, row))
    alone = Trainer(TrainConfig(dataset="digits", out=str(tmp_path / "one"), epochs=1, batch=32,
                                train_subset=128, test_subset=96, device="cpu",
                                method="smoothadv", progress=False,
                                options={"num_noise": 2, "steps": 1, "epsilon": 0.25,
                                         "warmup": 0}))
    ckpt = read_checkpoint(out / "checkpoint.pth.tar")
    alone.model.load_state_dict(normalize_state_dict(ckpt["state_dict"]))
    loss, acc, adv = alone.evaluate(0)
    assert (f"{loss:.4f}", f"{acc:.4f}", f"{adv:.4f}") == (
        logged["test_loss"], logged["test_acc"], logged["test_adv_acc"])
    assert logged["test_adv_acc"] != "nan"
    document = (out / "config.json").read_text()
    assert '"global_batch": 64' in document and '"device_type": "cpu"' in document


def test_a_record_resumed_on_another_kind_of_device_says_so(digits_ckpt, tmp_path, capsys):
    """The record's config names the device; resuming it where the noise streams differ (here:
    a record that says it was begun on a GPU) prints one line and marks mixed_streams."""
    import json

    from smoothadv.cli import main

    out = tmp_path / "c.tsv"
    args = ["certify", str(digits_ckpt), "--n", "50", "--n0", "10", "--skip", "100",
            "--no-progress", "--device", "cpu", "--out", str(out)]
    assert main(args + ["--max", "200"]) == 0
    conf = tmp_path / "c.tsv.config.json"
    document = json.loads(conf.read_text())
    assert document["device_type"] == "cpu" and document["mixed_streams"] is False
    document.update(device_type="cuda", device_model="NVIDIA H100")  # as if begun on a GPU
    conf.write_text(json.dumps(document))
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:2]) + "\n")  # as if killed after its first row
    capsys.readouterr()
    assert main(args + ["--max", "200"]) == 0  # the same command resumes the file
    assert len(out.read_text().splitlines()) == len(lines)
    assert "drawn on cuda (NVIDIA H100), the rest on cpu" in capsys.readouterr().err
    assert json.loads(conf.read_text())["mixed_streams"] is True


def test_gpu_check_helpers_run_on_any_device():
    """``make gpu-check``'s agreement and throughput helpers, on the CPU here (the script
    itself refuses without CUDA: tested below)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "scripts" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    line, ok = gpu_check.agreement(torch.device("cpu"), n=400)
    assert ok and line.startswith("ok: CPU predicts")
    assert gpu_check.throughput(torch.device("cpu"), "fp32", False, False, n=500,
                                batch=250) > 0
    if not torch.cuda.is_available():
        assert gpu_check.main() == 2


def test_loader_workers_are_sized_from_the_tasks_cores(monkeypatch):
    """On CUDA the default loader workers come from the task's cores (SLURM_CPUS_PER_TASK, or
    the process's affinity), not the node's: a 4-core task on a 128-core node gets 3."""
    import torch

    from smoothadv.runtime.distributed import available_cpus
    from smoothadv.train.data import loader_workers

    assert available_cpus({"SLURM_CPUS_PER_TASK": "4"}) == 4
    assert available_cpus({}) == len(os.sched_getaffinity(0))
    monkeypatch.setattr(os, "cpu_count", lambda: 128)
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "4")
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert loader_workers(None, torch.device("cuda", 0)) == 3
    monkeypatch.setenv("SLURM_CPUS_PER_TASK", "32")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun's four ranks inside one task
    assert loader_workers(None, torch.device("cuda", 0)) == 7
    assert loader_workers(None, torch.device("cpu")) == 0

