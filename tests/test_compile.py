"""Compiled base classifiers: padding buckets, counts equal to eager, fallback, the flag."""

import json

import pytest
import torch

from smoothadv import Smooth
from smoothadv.cli import main
from smoothadv.data.datasets import create_dataset
from smoothadv.models import load_checkpoint
from smoothadv.runtime.compile import (
    CompiledClassifier,
    bucket_size,
    compile_for_inference,
    should_compile,
)

from .conftest import shared_path


def _identity_compiler(model, **kwargs):
    return model


def test_bucket_sizes():
    assert bucket_size(1000, 1000) == 1000
    assert bucket_size(100, 1000) == 125
    assert bucket_size(501, 1000) == 1000
    assert bucket_size(10, 1000) == 125  # ≥ MIN_BUCKET = 64, from the halvings of 1000
    assert bucket_size(1500, 1000) == 1500  # larger batches are not padded


class _Recorder(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model, self.shapes = model, []

    def forward(self, x):
        self.shapes.append(x.shape[0])
        return self.model(x)


def test_padding_keeps_counts_identical(digits_ckpt):  # noqa: F811
    model, _ = load_checkpoint(digits_ckpt)
    xs = create_dataset("digits", "test").images[:5]
    eager = Smooth(model, 10, 0.25).certify_many(xs, 30, 700, 0.01, 256, seeds=[1, 2, 3, 4, 5])
    recorder = _Recorder(model)
    wrapped = CompiledClassifier(model, 256, compiler=lambda m, **kw: recorder)
    padded = Smooth(wrapped, 10, 0.25).certify_many(xs, 30, 700, 0.01, 256,
                                                     seeds=[1, 2, 3, 4, 5])
    assert padded == eager
    assert set(recorder.shapes) <= {256, 128, 64}  # only bucket shapes reach the graph


def test_dynamo_compiled_counts_equal_eager(digits_ckpt):  # noqa: F811
    # torch.compile with the "eager" backend traces the model with dynamo (no C++ codegen)
    model, _ = load_checkpoint(digits_ckpt)
    xs = create_dataset("digits", "test").images[:3]
    eager = Smooth(model, 10, 0.25).certify_many(xs, 20, 500, 0.01, 200, seeds=[7, 8, 9])
    compiled = compile_for_inference(model, 200, backend="eager")
    got = Smooth(compiled, 10, 0.25).certify_many(xs, 20, 500, 0.01, 200, seeds=[7, 8, 9])
    assert compiled.compiled and got == eager


def test_fallback_to_eager(digits_ckpt, capsys):  # noqa: F811
    model, _ = load_checkpoint(digits_ckpt)
    x = torch.rand(10, 1, 8, 8)

    def broken(model, **kwargs):
        raise RuntimeError("no C++ compiler found\nmore lines")

    wrapped = CompiledClassifier(model, 64, compiler=broken)
    assert not wrapped.compiled
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "running the model eagerly" in err
    assert torch.equal(wrapped(x), model(x))

    def fails_at_run(model, **kwargs):
        def run(x):
            raise RuntimeError("inductor error")
        return run

    wrapped = CompiledClassifier(model, 64, compiler=fails_at_run)
    with torch.inference_mode():
        out = wrapped(x)
    assert out.shape == (10, 10) and not wrapped.compiled
    assert "inductor error" in capsys.readouterr().err


def test_auto_rule_leaves_tiny_runs_eager(digits_ckpt):  # noqa: F811
    model, _ = load_checkpoint(digits_ckpt)
    x = torch.rand(1, 8, 8)
    assert should_compile("auto", model, x, 1000, 10_000, torch.device("cpu"))[0] is False
    assert should_compile("on", model, x, 1000, 10, torch.device("cpu"))[0] is True
    assert should_compile("off", model, x, 1000, 10**12, torch.device("cpu"))[0] is False


def test_compile_flag(digits_ckpt, tmp_path, monkeypatch):  # noqa: F811
    monkeypatch.setattr(torch, "compile", _identity_compiler)  # no real compilation here
    common = ["certify", str(digits_ckpt), "--n0", "20", "--n", "200", "--max", "20",
              "--skip", "4", "--seed", "1", "--no-progress"]
    on, off = tmp_path / "on.tsv", tmp_path / "off.tsv"
    assert main([*common, "--compile", "--out", str(on)]) == 0
    assert main([*common, "--no-compile", "--out", str(off)]) == 0
    assert json.loads((tmp_path / "on.tsv.config.json").read_text())["compiled"] == "--compile on"
    assert json.loads((tmp_path / "off.tsv.config.json").read_text())["compiled"] == (
        "--compile off")
    strip = lambda p: [r.rsplit("\t", 1)[0] for r in p.read_text().splitlines()]  # noqa: E731
    assert strip(on) == strip(off)


@pytest.mark.slow
def test_inductor_on_the_papers_resnet20():
    """The real compiler on a real network: logits within 1e-4 of eager, the same counts."""
    ckpt = shared_path("paper-checkpoints", "cifar_resnet20_sigma0.25.pth.tar")
    model, _ = load_checkpoint(ckpt, normalization="normalize")
    compiled = compile_for_inference(model, 128)
    x = torch.rand(128, 3, 32, 32)
    with torch.inference_mode():
        eager_logits, compiled_logits = model(x), compiled(x)
    if not compiled.compiled:
        pytest.skip(f"torch.compile unavailable here: {compiled.failed}")
    assert (eager_logits - compiled_logits).abs().max() < 1e-4
    margins = eager_logits.topk(2, dim=1).values
    safe = (margins[:, 0] - margins[:, 1]) > 1e-3  # predictions agree wherever the margin
    assert torch.equal(eager_logits.argmax(1)[safe], compiled_logits.argmax(1)[safe])
    xi = torch.rand(3, 32, 32)
    a = Smooth(model, 10, 0.25).certify(xi, 64, 256, 0.01, 128, seed=3)
    b = Smooth(compiled, 10, 0.25).certify(xi, 64, 256, 0.01, 128, seed=3)
    assert abs(a.n_a - b.n_a) <= 2 and a.prediction == b.prediction


def test_training_compile_choice(tmp_path, monkeypatch):
    from smoothadv.train import TrainConfig, Trainer

    calls = []
    monkeypatch.setattr(torch, "compile", lambda m, **kw: calls.append(m) or m)
    base = dict(dataset="digits", epochs=1, batch=64, train_subset=128, progress=False,
                device="cpu", method="smoothadv", options=dict(steps=1, epsilon=0.5))
    auto = Trainer(TrainConfig(out=str(tmp_path / "a"), **base))
    assert not auto.compiled and not calls  # an MLP, 2 steps: not worth compiling
    on = Trainer(TrainConfig(out=str(tmp_path / "b"), compile="on", **base))
    assert on.compiled and len(calls) == 2  # the training steps and the attack's passes
    on.run()
    assert (tmp_path / "b" / "checkpoint.pth.tar").exists()
