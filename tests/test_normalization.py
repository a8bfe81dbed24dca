"""The input layer as a model property: normalize / center / none, recorded in checkpoints,
measured (auto) for files that record none, passed by recipes; `recipe certify`."""

import argparse
import json
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from smoothadv.cli import build_parser, main
from smoothadv.data.constants import CIFAR10_MEAN
from smoothadv.data.datasets import create_dataset
from smoothadv.errors import UserError
from smoothadv.models import (
    choose_normalization,
    create_model,
    input_layer_kind,
    load_checkpoint,
    measure_normalizations,
    read_checkpoint,
)
from smoothadv.recipes import catalogue, released_checkpoint
from smoothadv.records.files import read_records
from smoothadv.train import TrainConfig, train

from .conftest import shared_path
from .test_models import _reference_forward

CENTER = "smoothadv_center_cifar_resnet20_sigma0.25.pth.tar"


class ReferenceCenterLayer(nn.Module):
    """Written from the facts: x − mean per channel, no division, no parameters."""

    def __init__(self, mean):
        super().__init__()
        self.m = torch.tensor(mean).view(1, -1, 1, 1)

    def forward(self, x):
        return x - self.m


def _test_images(count, seed=0):
    data = create_dataset("cifar10", "test", str(shared_path("cifar10")))
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:count]
    x = torch.stack([data[i][0] for i in idx.tolist()])
    y = torch.tensor([data[i][1] for i in idx.tolist()])
    return data, x, y


def test_center_fixture_gives_the_authors_outputs_and_is_far_more_accurate():
    path = shared_path("paper-checkpoints", CENTER)
    model, meta = load_checkpoint(path, normalization="center")
    assert input_layer_kind(model) == "center" and meta["normalization"] == "center"
    sd = torch.load(path, weights_only=True)["state_dict"]
    _, x, y = _test_images(200)
    centred = ReferenceCenterLayer(CIFAR10_MEAN)(x[:6])
    # the reference network takes its input already centred: undo its own normalization step
    std = torch.tensor((0.2023, 0.1994, 0.2010)).view(1, 3, 1, 1)
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    with torch.no_grad():
        ref = _reference_forward(sd, centred * std + mean, 20)
        ours = model(x[:6])
        assert torch.allclose(ours, ref, rtol=1e-5, atol=1e-5 * ref.abs().max().item())
        noisy = x + 0.25 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
        acc = {kind: float((load_checkpoint(path, normalization=kind)[0](noisy).argmax(1) == y)
                           .float().mean()) for kind in ("center", "normalize")}
    assert acc["center"] > acc["normalize"] + 0.2, acc


def test_auto_picks_center_for_the_fixture_and_normalize_for_old_files():
    data, _, _ = _test_images(1)
    path = shared_path("paper-checkpoints", CENTER)
    choice = choose_normalization(read_checkpoint(path), path, "auto", data, 0.25)
    assert choice.kind == "center" and choice.source == "auto"
    assert set(choice.accuracies) == {"normalize", "center", "none"}
    assert "center" in choice.describe(path) and "--input-normalization" in choice.describe(path)
    # the old fixtures are barely trained: too close to call, so auto refuses and the
    # default falls back to normalize, saying so
    old = shared_path("paper-checkpoints", "cifar_resnet20_sigma0.25.pth.tar")
    with pytest.raises(UserError, match="too close to call"):
        choose_normalization(read_checkpoint(old), old, "auto", data, 0.25)
    fallback = choose_normalization(read_checkpoint(old), old, None, data, 0.25)
    assert fallback.kind == "normalize" and fallback.source == "default"
    assert "too close to call" in fallback.describe(old)
    # without data, load_checkpoint refuses a file that records no layer, naming the choices
    with pytest.raises(UserError, match="records no input layer: give normalization="):
        load_checkpoint(old)
    model, meta = load_checkpoint(old, normalization="normalize")
    assert input_layer_kind(model) == "normalize" and meta["normalization_choice"].source == \
        "flag"


def _digits_model(tmp_path, kind, epochs=4):
    cfg = TrainConfig(dataset="digits", out=str(tmp_path / kind), epochs=epochs, batch=64,
                      lr=0.1, lr_step=10, progress=False, device="cpu", sigma=0.25,
                      input_normalization=kind)
    return train(cfg)


def test_auto_picks_normalize_for_a_model_trained_here_when_unrecorded(tmp_path):
    ckpt_path = _digits_model(tmp_path, "normalize")
    ckpt = read_checkpoint(ckpt_path)
    assert ckpt["normalization"] == "normalize"
    del ckpt["normalization"]  # as the paper's files: no record
    data = create_dataset("digits", "test")
    acc, _ = measure_normalizations(ckpt, ckpt_path, data, 0.25)
    choice = choose_normalization(ckpt, ckpt_path, "auto", data, 0.25)
    assert choice.kind == "normalize", acc


@pytest.mark.parametrize("kind", ["center", "none"])
def test_trained_kind_is_recorded_and_certifies_identically(tmp_path, kind, capsys):
    ckpt_path = _digits_model(tmp_path, kind, epochs=2)
    model, meta = load_checkpoint(ckpt_path)
    assert meta["normalization"] == kind and input_layer_kind(model) == kind
    assert meta["normalization_choice"].recorded
    assert not [k for k in model.state_dict() if not k.startswith("1.")]  # paper layout
    outs = []
    for i, extra in enumerate(([], ["--input-normalization", kind])):
        out = tmp_path / f"c{i}.tsv"
        assert main(["certify", str(ckpt_path), "--n0", "10", "--n", "200", "--skip", "90",
                     "--out", str(out), "--no-progress", *extra]) == 0
        outs.append([r.rsplit("\t", 1)[0] for r in out.read_text().splitlines()])
        assert f"input layer: {kind} (recorded" in capsys.readouterr().err
    assert outs[0] == outs[1]
    other = "normalize"
    assert main(["certify", str(ckpt_path), "--out", str(tmp_path / "x.tsv"),
                 "--input-normalization", other]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and kind in err[0] and other in err[0]


def test_every_run_on_an_unrecorded_checkpoint_says_which_layer(tmp_path, capsys):
    path = shared_path("paper-checkpoints", CENTER)
    root = str(shared_path("cifar10"))
    common = ["--data-root", root, "--sigma", "0.25", "--skip", "2000", "--no-progress"]
    runs = {
        "certify": ["certify", str(path), *common, "--n0", "5", "--n", "20",
                    "--out", str(tmp_path / "c.tsv")],
        "predict": ["predict", str(path), *common, "--n", "20", "--out", str(tmp_path / "p.tsv")],
        "attack": ["attack", str(path), *common, "--n", "20", "--steps", "1", "--m-test", "2",
                   "--out", str(tmp_path / "a.tsv")],
    }
    for name, argv in runs.items():
        assert main(argv) == 0, name
        err = capsys.readouterr().err
        assert "input layer: center (measured" in err, name
    config = json.loads((tmp_path / "c.tsv.config.json").read_text())
    assert config["input_normalization"] == "center"
    assert config["input_normalization_source"] == "auto"
    assert config["config"]["input_normalization"] is None  # what was asked
    assert main(["pseudo-label", "--teacher", str(path), "--dataset", "cifar10", "--data-root",
                 root, "--split", "test", "--out", str(tmp_path / "pl.pt"), "--no-progress",
                 "--input-normalization", "auto"]) == 2
    assert "cannot measure" in capsys.readouterr().err


def test_fine_tuning_takes_the_pretrained_layer_and_refuses_a_contradiction(tmp_path, capsys):
    pre = _digits_model(tmp_path, "center", epochs=1)
    cfg = dict(dataset="digits", epochs=1, batch=64, lr_step=10, progress=False, device="cpu",
               pretrained=str(pre))
    ckpt = train(TrainConfig(out=str(tmp_path / "ft"), **cfg))
    assert read_checkpoint(ckpt)["normalization"] == "center"
    with pytest.raises(UserError, match="contradicts"):
        train(TrainConfig(out=str(tmp_path / "bad"), input_normalization="none", **cfg))


# ----------------------------------------------------------------------- the catalogue


def _archive_layer(entry):
    """The table of the authors' README, by archive folder (the log's leading folders)."""
    if entry["group"] in ("cifar10/cohen", "imagenet/replication"):
        return "normalize"  # Cohen et al.'s models
    if entry["dataset"] == "imagenet":
        return "center"  # imagenet/: every SmoothAdv ImageNet model
    top = "/".join(Path(entry["paper_log"]).parts[:2])
    if top in ("cifar10/finetune_cifar_from_imagenetPGD2steps", "cifar10/self_training"):
        return "normalize"
    return "center"


def test_every_catalogue_entry_has_its_archive_folders_layer():
    entries = catalogue()
    assert len(entries) == 86
    for entry in entries:
        assert entry["normalization"] == _archive_layer(entry), entry["name"]
    kinds = {e["normalization"] for e in entries}
    assert kinds == {"normalize", "center"}


def test_recipe_commands_pass_the_layer(capsys):
    assert main(["recipe", "show", "cifar10-pgd10-m8-mn-eps255-s0.25", "--scale", "tiny"]) == 0
    text = capsys.readouterr().out
    assert text.count("--input-normalization center") == 2  # train and certify
    assert main(["recipe", "show", "cifar10-gaussian-s0.25"]) == 0
    assert "--input-normalization normalize" in capsys.readouterr().out


def test_released_checkpoint_layout(tmp_path):
    entry = next(e for e in catalogue() if e["name"] == "cifar10-pgd10-m8-mn-eps255-s0.25")
    with pytest.raises(UserError, match="no released checkpoint"):
        released_checkpoint(entry, tmp_path)
    target = (tmp_path / entry["group"] / Path(entry["paper_log"]).parent.parent
              / "checkpoint.pth.tar")
    target.parent.mkdir(parents=True)
    target.write_bytes(b"")
    assert released_checkpoint(entry, tmp_path) == target


def test_recipe_certify_on_the_fixture_and_resume(tmp_path, capsys):
    path = shared_path("paper-checkpoints", CENTER)
    root, logs = shared_path("cifar10"), shared_path("paper-logs")
    out = tmp_path / "rc"
    args = ["recipe", "certify", "cifar10-pgd10-m8-mn-eps255-s0.25", str(path), "--scale",
            "tiny", "--out", str(out), "--data-root", str(root), "--paper-logs", str(logs),
            "--skip", "1000"]
    assert main(args) == 0
    text = capsys.readouterr()
    assert "input layer: center (as --input-normalization asked" in text.err
    assert "ACR" in text.out and "difference" in text.out  # analysis and comparison
    record = out / "certify.tsv"
    rows = record.read_text().splitlines()
    assert len(rows) == 1 + 10
    config = json.loads((out / "certify.tsv.config.json").read_text())
    assert config["input_normalization"] == "center" and config["config"]["n"] == 100
    record.write_text("\n".join(rows[:4]) + "\n" + rows[4][:3])  # killed mid-row
    assert main(args) == 0
    again = record.read_text().splitlines()
    assert [r.rsplit("\t", 1)[0] for r in again] == [r.rsplit("\t", 1)[0] for r in rows]
    # the sequential check of the same model
    seq = tmp_path / "seq"
    assert main(["recipe", "certify", "cifar10-pgd10-m8-mn-eps255-s0.25", str(path), "--scale",
                 "tiny", "--out", str(seq), "--data-root", str(root), "--max", "2000",
                 "--sequential", "--budget", "200"]) == 0
    rec = read_records(seq / "certify.tsv")
    assert len(rec) == 4 and (rec["samples"] <= 200 + 10).all()


def test_recipe_certify_argument_errors(tmp_path, capsys):
    assert main(["recipe", "certify", "cifar10-gaussian-s0.25", "--out", str(tmp_path)]) == 2
    assert "one of them" in capsys.readouterr().err
    assert main(["recipe", "certify", "cifar10-gaussian-s0.25", str(tmp_path / "no.pth"),
                 "--out", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().err


# --------------------------------------------------------------------------- --help


def _subparsers(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield from action.choices.items()


def test_every_help_text_renders(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert "compare" in capsys.readouterr().out
    parser = build_parser()
    seen = []
    stack = [([], parser)]
    while stack:
        prefix, p = stack.pop()
        for name, sub in _subparsers(p):
            argv = [*prefix, name]
            seen.append(" ".join(argv))
            with pytest.raises(SystemExit) as done:
                main([*argv, "--help"])
            assert done.value.code == 0, argv
            assert capsys.readouterr().out.startswith("usage:"), argv
            stack.append((argv, sub))
    assert {"certify", "compare", "recipe certify", "recipe run", "train"} <= set(seen)


def test_center_layer_math():
    model = create_model("mlp", 3, mean=(0.25,), std=(0.5,), image_size=2,
                         normalization="center")
    x = torch.full((1, 1, 2, 2), 0.75)
    assert torch.equal(model[0](x), torch.full((1, 1, 2, 2), 0.5))
    none = create_model("mlp", 3, mean=(0.25,), std=(0.5,), image_size=2, normalization="none")
    assert torch.equal(none[0](x), x) and none[0].state_dict() == {}
    with pytest.raises(UserError, match="unknown input normalization 'half'"):
        create_model("mlp", 3, mean=(0.25,), std=(0.5,), normalization="half")
    assert F.mse_loss(model[0](x), x - 0.25) == 0
