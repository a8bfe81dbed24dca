"""Ensembles as base classifiers: the mean of the members' logits, smoothed and certified as
one classifier; K-consensus aggregation; the command line and its refusals."""

import json

import numpy as np
import pytest
import torch
import torch.nn as nn

from smoothadv.cli import main
from smoothadv.data.datasets import get_dataset_spec
from smoothadv.errors import UserError
from smoothadv.models import create_model, save_checkpoint
from smoothadv.models.ensemble import Ensemble
from smoothadv.records.files import read_records
from smoothadv.smoothing.smooth import Smooth


class Linear(nn.Module):
    """A linear classifier over flattened inputs (logits W x + b)."""

    def __init__(self, weight, bias):
        super().__init__()
        self.weight, self.bias = nn.Parameter(weight), nn.Parameter(bias)

    def forward(self, x):
        return x.flatten(1) @ self.weight.T + self.bias


def test_an_ensemble_of_linear_members_is_the_linear_classifier_of_their_mean():
    """Mean logits of linear members = one linear classifier with the mean weights: its
    smoothed classifier (closed form for two classes: p_A = Φ(|margin| / (σ‖w‖))) is what the
    ensemble certifies, and K-consensus changes no answer where the first K agree."""
    torch.manual_seed(0)
    members = [Linear(torch.randn(2, 4), torch.randn(2)) for _ in range(3)]
    mean = Linear(torch.stack([m.weight for m in members]).mean(0),
                  torch.stack([m.bias for m in members]).mean(0))
    ens = Ensemble(members).eval()
    x = torch.randn(256, 4)
    with torch.no_grad():
        assert torch.allclose(ens(x), mean(x), atol=1e-6)
    sigma, xs = 0.5, torch.rand(3, 4)
    a = Smooth(ens, 2, sigma).certify_many(xs, 50, 20_000, 0.001, 4096, seeds=[1, 2, 3])
    b = Smooth(mean, 2, sigma).certify_many(xs, 50, 20_000, 0.001, 4096, seeds=[1, 2, 3])
    assert [r.prediction for r in a] == [r.prediction for r in b]
    assert [r.radius for r in a] == pytest.approx([r.radius for r in b], abs=1e-9)
    w = (mean.weight[0] - mean.weight[1]).detach()
    c = (mean.bias[0] - mean.bias[1]).detach()
    from scipy.stats import norm

    for r, x0 in zip(a, xs):
        margin = float(w @ x0 + c)
        p = norm.cdf(abs(margin) / (sigma * float(w.norm())))
        if r.prediction != -1:  # the certificate stays below the closed-form radius
            assert r.radius <= sigma * norm.ppf(p) + 1e-9


def test_k_consensus_answers_the_agreed_class_and_counts_what_it_saved():
    torch.manual_seed(1)
    members = [Linear(torch.randn(3, 5), torch.randn(3)) for _ in range(4)]
    full, cons = Ensemble(members).eval(), Ensemble(members, consensus=2).eval()
    x = torch.randn(4000, 5)
    with torch.no_grad():
        first = torch.stack([m(x).argmax(1) for m in members[:2]])
        agree = first[0] == first[1]
        got = cons(x).argmax(1)
        assert torch.equal(got[agree], first[0][agree])  # the first K decide where they agree
        assert torch.equal(got[~agree], full(x).argmax(1)[~agree])  # elsewhere, all of them
        saved = cons.saved()
    expected = float(agree.float().mean()) * 2 / 4  # the last 2 of 4 skipped where agreed
    assert saved == pytest.approx(expected)
    assert Ensemble(members).saved() == 0.0
    every = Ensemble(members, consensus=4).eval()  # K = M: all of them, always
    with torch.no_grad():
        assert torch.equal(every(x).argmax(1), full(x).argmax(1)) and every.saved() == 0.0
    with torch.enable_grad():  # an attack differentiates the plain ensemble
        y = x[:3].clone().requires_grad_(True)
        assert torch.allclose(cons(y), full(y))
    with pytest.raises(UserError, match="between 2 and the number of members"):
        Ensemble(members, consensus=5)
    with pytest.raises(UserError, match="at least two members"):
        Ensemble(members[:1])


@pytest.fixture
def members(tmp_path):
    """Three untrained digits MLPs (different seeds) and one of another data set."""
    spec = get_dataset_spec("digits")
    paths = []
    for seed in range(3):
        torch.manual_seed(seed)
        model = create_model("mlp", 10, mean=spec.mean, std=spec.std, image_size=8)
        path = tmp_path / f"m{seed}.pth.tar"
        save_checkpoint(path, model, arch="mlp", epoch=0,
                        meta=dict(dataset="digits", num_classes=10, in_channels=1,
                                  image_size=8, mean=spec.mean, std=spec.std, sigma=0.25))
        paths.append(path)
    return paths


def _one_error(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("smoothadv: error")]
    assert len(err) == 1, err
    return err[0]


def test_certify_an_ensemble_from_the_command_line(members, tmp_path, capsys):
    out = tmp_path / "ens.tsv"
    base = ["certify", *map(str, members), "--n", "200", "--n0", "20", "--skip", "50",
            "--no-progress", "--no-compile", "--out", str(out)]
    assert main(base + ["--consensus", "2"]) == 0
    assert "2-consensus skipped" in capsys.readouterr().out
    conf = json.loads(out.with_name("ens.tsv.config.json").read_text())
    assert conf["config"]["members"] == [str(m) for m in members]
    assert len(set(conf["members_sha256"])) == 3 and conf["arch"].startswith("ensemble of")
    listing = tmp_path / "members.txt"
    listing.write_text("# the three seeds\n" + "\n".join(map(str, members)) + "\n")
    again = tmp_path / "again.tsv"
    assert main(["certify", "--members-file", str(listing), "--n", "200", "--n0", "20",
                 "--skip", "50", "--no-progress", "--no-compile", "--consensus", "2",
                 "--out", str(again)]) == 0
    for column in ("idx", "predict", "radius"):
        assert np.array_equal(read_records(out)[column], read_records(again)[column])
    before = out.read_text()
    # another member list into the same record: refused, nothing written
    assert main(["certify", str(members[0]), str(members[1]), "--n", "200", "--n0", "20",
                 "--skip", "50", "--no-progress", "--out", str(out)]) == 2
    assert "another configuration" in _one_error(capsys)
    assert out.read_text() == before


@pytest.mark.parametrize("extra,message", [
    (["--consensus", "4"], "between 2 and the number of members"),
    (["DUP"], "listed twice"),
    (["COPY"], "same checkpoint (equal content)"),
])
def test_bad_ensembles_are_one_line_and_write_nothing(members, tmp_path, capsys, extra,
                                                      message):
    import shutil

    out = tmp_path / "bad.tsv"
    paths = list(map(str, members))
    if extra == ["DUP"]:
        extra = [paths[0]]
    if extra == ["COPY"]:
        shutil.copy(members[0], tmp_path / "copy.pth.tar")
        extra = [str(tmp_path / "copy.pth.tar")]
    assert main(["certify", *paths, *extra, "--n", "100", "--no-progress",
                 "--out", str(out)]) == 2
    assert message in _one_error(capsys)
    assert not out.exists() and not out.with_name("bad.tsv.config.json").exists()


def test_members_must_agree_on_classes_data_and_input_layer(members, tmp_path, capsys):
    spec = get_dataset_spec("digits")
    odd = tmp_path / "odd.pth.tar"
    model = create_model("mlp", 10, mean=[0.3], std=[0.2], image_size=8)
    save_checkpoint(odd, model, arch="mlp", epoch=0,
                    meta=dict(dataset="digits", num_classes=10, in_channels=1, image_size=8,
                              mean=[0.3], std=[0.2], sigma=0.25))
    out = tmp_path / "o.tsv"
    assert main(["certify", str(members[0]), str(odd), "--n", "100", "--no-progress",
                 "--out", str(out)]) == 2
    assert "differ in their input layer" in _one_error(capsys)
    five = tmp_path / "five.pth.tar"
    save_checkpoint(five, create_model("mlp", 5, mean=spec.mean, std=spec.std, image_size=8),
                    arch="mlp", epoch=0, meta=dict(dataset="digits", num_classes=5,
                                                   in_channels=1, image_size=8, mean=spec.mean,
                                                   std=spec.std, sigma=0.25))
    assert main(["certify", str(members[0]), str(five), "--n", "100", "--no-progress",
                 "--out", str(out)]) == 2
    assert "classes" in _one_error(capsys)
    assert main(["certify", str(members[0]), "--consensus", "2", "--n", "100",
                 "--no-progress", "--out", str(out)]) == 2
    assert "needs an ensemble" in _one_error(capsys)
    assert not out.exists()


def test_predict_and_attack_take_an_ensemble(members, tmp_path):
    assert main(["predict", *map(str, members), "--n", "100", "--skip", "90", "--no-progress",
                 "--out", str(tmp_path / "p.tsv")]) == 0
    assert main(["attack", *map(str, members), "--n", "100", "--skip", "90", "--no-progress",
                 "--epsilon", "0.25", "--steps", "2", "--m-test", "2",
                 "--out", str(tmp_path / "a.tsv")]) == 0
    rec = read_records(tmp_path / "a.tsv")
    assert len(rec) == 5 and np.all(rec["l2"] <= 0.25 + 1e-5)


def test_an_ensemble_behind_a_denoiser(members, tmp_path):
    """Denoised smoothing of an ensemble: f(D(x + δ)) with f the members' mean logits; the
    record names the members and the denoiser."""
    from smoothadv.denoise.dncnn import DnCNN

    torch.manual_seed(0)
    den = DnCNN(channels=1, depth=3, width=8)
    path = tmp_path / "den.pth.tar"
    torch.save({"kind": "dncnn", "config": den.config(), "state_dict": den.state_dict(),
                "epoch": 1, "sigma": 0.25}, path)
    out = tmp_path / "d.tsv"
    assert main(["certify", *map(str, members), "--denoiser", f"dncnn:{path}", "--dataset",
                 "digits", "--sigma", "0.25", "--n", "100", "--n0", "10", "--skip", "90",
                 "--no-progress", "--no-compile", "--out", str(out)]) == 0
    conf = json.loads(out.with_name("d.tsv.config.json").read_text())
    assert len(conf["members_sha256"]) == 3 and conf["denoiser"] == f"dncnn:{path}"
    assert len(read_records(out)) == 5
