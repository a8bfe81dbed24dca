"""End-to-end `smoothadv certify` / `predict` through main(), on tiny models."""

import pytest

from smoothadv.cli import main
from smoothadv.records.files import read_records

from .conftest import shared_path


def _rows(path):
    lines = path.read_text().splitlines()
    return [line.rsplit("\t", 1)[0] for line in lines]  # all but the time column


def test_certify_writes_paper_columns_and_resumes(digits_ckpt, tmp_path):
    out = tmp_path / "cert.tsv"
    args = [str(digits_ckpt), "--n0", "20", "--n", "200", "--batch", "64", "--skip", "10",
            "--max", "120", "--out", str(out), "--no-progress", "--device", "cpu"]
    assert main(["certify", *args]) == 0
    rec = read_records(out)
    assert out.read_text().splitlines()[0] == "idx\tlabel\tpredict\tradius\tcorrect\ttime"
    assert rec["idx"].tolist() == list(range(0, 120, 10))
    full = _rows(out)
    # simulate a run killed after 4 rows and in the middle of the fifth
    lines = out.read_text().splitlines(keepends=True)
    out.write_text("".join(lines[:5]) + lines[5][:7])
    assert main(["certify", *args]) == 0
    assert _rows(out) == full
    assert (tmp_path / "cert.tsv.config.json").exists()


def test_predict_record(digits_ckpt, tmp_path):
    out = tmp_path / "pred.tsv"
    assert main(["predict", str(digits_ckpt), "--n", "100", "--batch", "500", "--max", "30",
                 "--skip", "3", "--out", str(out), "--no-progress", "--seed", "1"]) == 0
    rec = read_records(out)
    assert list(rec.columns) == ["idx", "label", "predict", "basePredict", "correct", "time"]
    assert len(rec) == 10
    assert ((rec["predict"] == rec["label"]) == (rec["correct"] == 1)).all()


@pytest.mark.parametrize("extra, message", [
    (["--sigma", "0"], "sigma must be a positive number"),
    (["--alpha", "1.5"], "alpha must lie strictly between 0 and 1"),
    (["--n", "0"], "--n must be a positive integer"),
    (["--dataset", "svhn"], "unknown dataset 'svhn'"),
])
def test_bad_arguments_give_one_line(digits_ckpt, tmp_path, capsys, extra, message):
    code = main(["certify", str(digits_ckpt), "--out", str(tmp_path / "x.tsv"), *extra])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and message in err


def test_n0_above_n_is_valid_and_radii_round_down(digits_ckpt, tmp_path):
    # CERTIFY holds for any n0, n ≥ 1: a quick run with --n 50 keeps the default n0 = 100
    out = tmp_path / "quick.tsv"
    assert main(["certify", str(digits_ckpt), "--n", "50", "--max", "20", "--skip", "4",
                 "--out", str(out), "--no-progress", "--seed", "3"]) == 0
    rec = read_records(out)
    assert len(rec) == 5 and rec.rounding == "down"
    texts = [line.split("\t")[3] for line in out.read_text().splitlines()[1:]]
    assert all(len(t.split(".")[1]) == 6 for t in texts)  # six decimals, rounded down


def test_checkpoint_that_does_not_fit_the_data(digits_ckpt, tmp_path, capsys):
    root = shared_path("cifar10")
    code = main(["certify", str(digits_ckpt), "--dataset", "cifar10", "--data-root", str(root),
                 "--n", "10", "--max", "1", "--out", str(tmp_path / "x.tsv")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0
    assert "expects 1×8×8 images, but data set cifar10 has 3×32×32" in err


def test_missing_checkpoint(tmp_path, capsys):
    assert main(["certify", str(tmp_path / "nope.pth"), "--out", str(tmp_path / "x")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err


def test_certify_paper_checkpoint_on_real_cifar(tmp_path):
    ckpt = shared_path("paper-checkpoints", "cifar_resnet20_sigma0.25.pth.tar")
    root = shared_path("cifar10")
    out = tmp_path / "cert.tsv"
    assert main(["certify", str(ckpt), "--dataset", "cifar10", "--data-root", str(root),
                 "--sigma", "0.25", "--n0", "10", "--n", "50", "--batch", "100", "--skip",
                 "2500", "--out", str(out), "--no-progress"]) == 0
    rec = read_records(out)
    assert rec["idx"].tolist() == [0, 2500, 5000, 7500]
    assert rec["label"].tolist() == [0, 2, 5, 7]
