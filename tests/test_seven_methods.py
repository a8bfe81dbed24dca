"""The seven-method digits setting: its network, its validation split, its shared
certification, the paired ACR interval, and the selection it was chosen by."""

import math
from pathlib import Path

import numpy as np
import pytest
import tomllib
import torch

from smoothadv.analysis.compare import compare, paired_acr_difference
from smoothadv.data.datasets import create_dataset
from smoothadv.demos.methods import GRIDS, Cell, settings, shipped_runs, verdicts
from smoothadv.models import create_model, load_checkpoint, wants_channels_last
from smoothadv.records.files import read_records
from smoothadv.records.loops import run_records, run_shared_records, select_indices
from smoothadv.smoothing.smooth import Smooth

ROOT = Path(__file__).resolve().parents[1]


def _pixels(ds):
    return {tuple(ds.image(i).flatten().tolist()) for i in range(len(ds))}


def test_validation_split_is_held_out_of_training_and_disjoint_from_test():
    fit, val = create_dataset("digits-val", "train"), create_dataset("digits-val", "test")
    train, test = create_dataset("digits", "train"), create_dataset("digits", "test")
    assert (len(fit), len(val)) == (1011, 337)
    assert _pixels(fit) | _pixels(val) == _pixels(train)
    assert not _pixels(fit) & _pixels(val)
    assert not (_pixels(fit) | _pixels(val)) & _pixels(test)
    assert set(val.targets.tolist()) == set(range(10))


def test_digits_cnn_shapes_batchnorm_and_memory_format():
    model = create_model("digits_cnn", 10, dataset="digits")
    assert model(torch.rand(5, 1, 8, 8)).shape == (5, 10)
    assert any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    assert not wants_channels_last(model)  # measured slower for this network
    assert wants_channels_last(create_model("lenet", 10, dataset="mnist"))


def _linear(seed):
    torch.manual_seed(seed)
    return create_model("linear", 10, dataset="digits").eval()


def test_shared_certification_equals_each_model_alone(tmp_path):
    """One noise draw, M models: every record equals, row for row except time, the one the
    model gets alone with the same seed; a resumed shared run completes a partial record."""
    test = create_dataset("digits", "test")
    idx = select_indices(len(test), skip=50)
    models = [_linear(s) for s in range(3)]
    smooth = Smooth(models[0], 10, 0.5)
    outs = [tmp_path / f"shared{m}.tsv" for m in range(3)]
    outs[1].write_text("")  # nothing yet
    run_shared_records(smooth, models, test, idx, outs, n0=20, n=300, batch_size=128, seed=3,
                       progress=False)
    cols = ["idx", "label", "predict", "radius", "correct"]
    for m, model in enumerate(models):
        alone = run_records("certify", Smooth(model, 10, 0.5), test, idx,
                            tmp_path / f"alone{m}.tsv", n0=20, n=300, batch_size=128, seed=3,
                            progress=False)
        a, b = read_records(alone), read_records(outs[m])
        for c in cols:
            assert np.array_equal(a[c], b[c])
    # drop the last two rows of one record: a rerun writes just those, the same again
    lines = outs[2].read_text().splitlines()
    outs[2].write_text("\n".join(lines[:-2]) + "\n")
    run_shared_records(smooth, models, test, idx, outs, n0=20, n=300, batch_size=128, seed=3,
                       progress=False)
    again = read_records(outs[2])
    assert np.array_equal(again["radius"], read_records(tmp_path / "alone2.tsv")["radius"])
    assert len(read_records(outs[0])) == len(idx)


def _record(path, radii, correct):
    rows = ["idx\tlabel\tpredict\tradius\tcorrect\ttime"]
    rows += [f"{i}\t0\t{0 if c else 1}\t{r:.3f}\t{c}\t0:00:00.01"
             for i, (r, c) in enumerate(zip(radii, correct))]
    path.write_text("\n".join(rows) + "\n")
    # rounded down, as this library writes radii: counted as written
    path.with_name(path.name + ".config.json").write_text('{"radius_rounding": "down"}')
    return read_records(path)


def test_paired_acr_difference_is_the_mean_and_normal_interval_of_per_image_differences(
        tmp_path):
    rng = np.random.default_rng(0)
    ra, rb = rng.uniform(0, 1, 50).round(3), rng.uniform(0, 1, 50).round(3)
    ca, cb = rng.integers(0, 2, 50), rng.integers(0, 2, 50)
    a, b = _record(tmp_path / "a.tsv", ra, ca), _record(tmp_path / "b.tsv", rb, cb)
    d = ra * ca - rb * cb
    diff, (low, high) = paired_acr_difference([(a, b)])
    half = 1.959963984540054 * d.std(ddof=1) / math.sqrt(50)
    assert diff == pytest.approx(d.mean())
    assert (low, high) == pytest.approx((d.mean() - half, d.mean() + half))
    cmp = compare(a, b, [0.5])
    assert (cmp.acr_low, cmp.acr_high) == pytest.approx((low, high))
    assert cmp.acr_ours - cmp.acr_reference == pytest.approx(diff)
    # two seeds: per image averaged before the interval; identical pairs give width 0
    diff2, interval2 = paired_acr_difference([(a, b), (a, a)])
    assert diff2 == pytest.approx(d.mean() / 2)
    same, (lo, hi) = paired_acr_difference([(a, a)])
    assert same == lo == hi == 0.0
    shifted = _record(tmp_path / "c.tsv", ra[:40], ca[:40])
    with pytest.raises(ValueError, match="same images"):
        paired_acr_difference([(a, shifted)])


def test_verdicts_apply_the_published_pattern():
    def cell(method, clean, acr, diff=None, interval=None):
        return Cell(method, 0.5, np.array([[clean, 0.5]]), np.array([acr]), diff, interval)

    checks = verdicts([cell("gaussian", 0.9, 0.40), cell("macer", 0.8, 0.45, 0.05, (0.02, 0.08)),
                       cell("catrs", 0.7, 0.41, 0.01, (-0.01, 0.03)),
                       cell("stability", 0.9, 0.39, -0.01, (-0.03, 0.01))])
    assert checks["macer"].startswith("✓") and "✓ clean" in checks["macer"]
    assert checks["catrs"].startswith("✗") and "✗ clean" in checks["catrs"]  # 0.7 < 0.72
    assert checks["stability"].startswith("✓")  # −0.01 ≥ −0.02


def test_chosen_settings_come_from_the_shipped_selection_grid():
    """GRIDS equals the selection sweep's grids; the demo's shipped runs (methods.toml) hold,
    per method and σ the selection ran, one point of that grid and the selection's fixed
    options, with the same network, epochs and batch."""
    sweep = tomllib.loads((ROOT / "examples" / "digits_selection.toml").read_text())
    runs = shipped_runs()
    for run in sweep["runs"]:
        method = run["label"]
        grid = {k: tuple(v) for k, v in run["grid"].items() if k != "sigma"}
        assert grid == GRIDS[method], method
        assert run["train"]["epochs"] == 40 and run["train"]["dataset"] == "digits-val"
        fixed = run.get("options", {}).get(method, {})
        assert {m for m, _ in runs if m == method} == {method}
        for sigma in run["grid"]["sigma"]:
            demo = runs[method, sigma]
            assert {k: demo["train"][k] for k in ("arch", "epochs", "batch", "lr_step")} == {
                k: run["train"][k] for k in ("arch", "epochs", "batch", "lr_step")}
            lr, options = settings(method, sigma)
            chosen = {"lr": lr, **{k: v for k, v in options.items() if k not in fixed}}
            assert set(chosen) == set(GRIDS[method]), (method, sigma)
            for key, value in chosen.items():
                assert value in GRIDS[method][key], (method, sigma, key)
            assert {k: options[k] for k in fixed} == fixed
    assert {m for m, _ in runs} == {r["label"] for r in sweep["runs"]}
    lr, options = settings("smoothadv", 0.5)
    assert lr == 0.1 and options["epsilon"] == 1.0 and options["steps"] == 4
    assert settings("macer", 1.0) == settings("macer", 0.5)  # the nearest σ selected
    # CAT-RS's teacher is the demo's own σ = 0.25 Gaussian model: one stage
    assert runs["catrs", 0.5]["teacher"]["lr"] == runs["gaussian", 0.25]["train"]["lr"]


def test_seven_method_checkpoints_load_without_channels_last(tmp_path):
    from smoothadv.train import TrainConfig, train

    ckpt = train(TrainConfig(out=str(tmp_path / "run"), dataset="digits", arch="digits_cnn",
                             epochs=1, batch=64, device="cpu", progress=False))
    model, _ = load_checkpoint(ckpt, device="cpu")
    conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous()


def test_drop_last_keeps_only_full_batches_and_refuses_an_empty_epoch():
    from smoothadv.errors import UserError
    from smoothadv.train import TrainConfig
    from smoothadv.train.data import assemble_data

    kept = assemble_data(TrainConfig(out="x", dataset="digits", batch=64))
    dropped = assemble_data(TrainConfig(out="x", dataset="digits", batch=64, drop_last=True))
    assert [len(y) for _, y in kept.labelled][-1] == 1348 - 21 * 64  # the authors' way: 4
    assert {len(y) for _, y in dropped.labelled} == {64} and len(dropped.labelled) == 21
    with pytest.raises(UserError, match="leaves no batch"):
        assemble_data(TrainConfig(out="x", dataset="digits", batch=2000, drop_last=True))


class _WritesIntoInput(torch.nn.Module):
    """A base classifier that changes its input in place before classifying it."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.mul_(-1.0))


def test_shared_certification_gives_no_model_another_models_writes():
    test = create_dataset("digits", "test")
    xs = torch.stack([test[i][0] for i in range(3)])
    writer, reader = _WritesIntoInput(_linear(0)), _linear(1)
    smooth = Smooth(reader, 10, 0.5)
    shared = smooth.certify_shared([writer, reader], xs, 20, 300, 0.001, 128, [0, 1, 2])
    assert shared[1] == smooth.certify_many(xs, 20, 300, 0.001, 128, [0, 1, 2])
    assert shared[0] == Smooth(writer, 10, 0.5).certify_many(xs, 20, 300, 0.001, 128, [0, 1, 2])
