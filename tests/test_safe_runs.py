"""No run silently corrupted: a record file or run folder belongs to one configuration, an
interrupted command resumes when run again as it was, and a checkpoint that records no input
layer is never used behind a guessed one (what a new user met in their first hour)."""

import json

import pytest
import torch

from smoothadv.cli import main
from smoothadv.data.datasets import create_dataset
from smoothadv.errors import UserError
from smoothadv.models import load_checkpoint, read_checkpoint
from smoothadv.records.files import read_records
from smoothadv.train import Trainer

from .conftest import shared_path


def _one_line(capsys) -> str:
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.startswith("smoothadv: error")]
    assert len(err) == 1, err
    return err[0]


def test_a_record_of_other_settings_is_refused_not_mixed(digits_ckpt, tmp_path, capsys):
    out = tmp_path / "m" / "cert.tsv"
    base = ["certify", str(digits_ckpt), "--no-progress", "--out", str(out)]
    assert main([*base, "--skip", "10", "--n", "1000", "--n0", "20"]) == 0
    before = out.read_text()
    config_before = out.with_name("cert.tsv.config.json").read_text()
    # the new user's first mistake: other --max and --n into the same record
    assert main([*base, "--skip", "10", "--max", "2", "--n", "100", "--n0", "20"]) == 2
    line = _one_line(capsys)
    assert "another configuration" in line and "max, n" in line and "--overwrite" in line
    # the second: another σ; the config must not be rewritten
    assert main([*base, "--skip", "10", "--n", "1000", "--n0", "20", "--sigma", "0.5"]) == 2
    assert "sigma" in _one_line(capsys)
    assert out.read_text() == before
    assert out.with_name("cert.tsv.config.json").read_text() == config_before
    # what does not change results may change: another batch size resumes (nothing to add)
    assert main([*base, "--skip", "10", "--n", "1000", "--n0", "20", "--batch", "77"]) == 0
    assert out.read_text() == before
    # --overwrite discards the old rows and certifies anew
    assert main([*base, "--skip", "10", "--n", "100", "--n0", "20", "--max", "30",
                 "--overwrite"]) == 0
    assert read_records(out)["idx"].tolist() == [0, 10, 20]
    assert json.loads(out.with_name("cert.tsv.config.json").read_text())["config"]["n"] == 100


def test_a_record_of_another_checkpoint_content_is_refused(digits_ckpt, tmp_path, capsys):
    out = tmp_path / "cert.tsv"
    base = ["certify", str(digits_ckpt), "--no-progress", "--out", str(out), "--max", "20",
            "--skip", "10", "--n", "100", "--n0", "10"]
    assert main(base) == 0
    blob = read_checkpoint(digits_ckpt)  # the same path, retrained: other weights
    blob["state_dict"] = {k: v + 1 for k, v in blob["state_dict"].items()}
    torch.save(blob, digits_ckpt)
    assert main(base) == 2
    assert "the checkpoint's content" in _one_line(capsys)


def test_a_record_moved_with_its_checkpoint_resumes(digits_ckpt, tmp_path, capsys):
    """A record names its checkpoint by content, not by place: the two moved together to
    another folder resume (the rows left are certified, the others kept); a checkpoint of other
    content at the new place is still refused."""
    import shutil

    first = tmp_path / "a"
    first.mkdir()
    shutil.move(digits_ckpt, first / "mlp.pth.tar")
    opts = ["--no-progress", "--max", "60", "--skip", "10", "--n", "200", "--n0", "10"]
    assert main(["certify", str(first / "mlp.pth.tar"), "--out", str(first / "c.tsv"),
                 *opts]) == 0
    whole = (first / "c.tsv").read_text().splitlines()
    (first / "c.tsv").write_text("\n".join(whole[:-2]) + "\n")  # as if interrupted
    moved = tmp_path / "b" / "elsewhere"
    shutil.copytree(first, moved)
    shutil.rmtree(first)
    assert main(["certify", str(moved / "mlp.pth.tar"), "--out", str(moved / "c.tsv"),
                 *opts]) == 0
    again = (moved / "c.tsv").read_text().splitlines()
    cut = [ln.rsplit("\t", 1)[0] for ln in again]  # without the time column
    assert cut == [ln.rsplit("\t", 1)[0] for ln in whole] and again[:-2] == whole[:-2]
    blob = read_checkpoint(moved / "mlp.pth.tar")
    blob["state_dict"] = {k: v + 1 for k, v in blob["state_dict"].items()}
    torch.save(blob, moved / "mlp.pth.tar")
    assert main(["certify", str(moved / "mlp.pth.tar"), "--out", str(moved / "c.tsv"),
                 *opts]) == 2
    assert "the checkpoint's content" in _one_line(capsys)


TRAIN = ["train", "--dataset", "digits", "--arch", "mlp", "--batch", "64", "--train-subset",
         "256", "--test-subset", "64", "--no-progress", "--lr-step", "10"]


def test_the_same_command_after_ctrl_c_resumes(tmp_path, capsys, monkeypatch):
    argv = [*TRAIN, "--epochs", "3", "--out", str(tmp_path / "run")]
    evaluate = Trainer.evaluate

    def interrupted(self, epoch):
        if epoch == 1:
            raise KeyboardInterrupt
        return evaluate(self, epoch)

    monkeypatch.setattr(Trainer, "evaluate", interrupted)
    assert main(argv) == 130
    message = capsys.readouterr().err
    assert "run the same command again" in message
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pth.tar")["epoch"] == 1
    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    assert main(argv) == 0  # exactly the command the message asks for
    assert "resuming" in capsys.readouterr().out
    assert main([*TRAIN, "--epochs", "3", "--out", str(tmp_path / "whole")]) == 0
    a = read_checkpoint(tmp_path / "run" / "checkpoint.pth.tar")
    b = read_checkpoint(tmp_path / "whole" / "checkpoint.pth.tar")
    assert a["epoch"] == b["epoch"] == 3
    assert all(torch.equal(v, b["state_dict"][k]) for k, v in a["state_dict"].items())
    log = (tmp_path / "run" / "log.tsv").read_text().splitlines()
    assert [row.split("\t")[0] for row in log[1:]] == ["1", "2", "3"]


def test_resume_refuses_another_method_or_sigma(tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main([*TRAIN, "--method", "macer", "--m-train", "4", "--epochs", "1", "--out",
                 out]) == 0
    config = (tmp_path / "run" / "config.json").read_text()
    ckpt = (tmp_path / "run" / "checkpoint.pth.tar").read_bytes()
    assert main([*TRAIN, "--resume", "--method", "gaussian", "--sigma", "0.5", "--epochs", "2",
                 "--out", out]) == 2
    line = _one_line(capsys)
    assert "method" in line and "sigma" in line and "options" in line
    assert (tmp_path / "run" / "config.json").read_text() == config
    assert (tmp_path / "run" / "checkpoint.pth.tar").read_bytes() == ckpt
    # the same configuration continues to more epochs; another one with --overwrite starts
    assert main([*TRAIN, "--method", "macer", "--m-train", "4", "--epochs", "2", "--out",
                 out]) == 0
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pth.tar")["epoch"] == 2
    assert main([*TRAIN, "--epochs", "1", "--overwrite", "--out", out]) == 0
    assert read_checkpoint(tmp_path / "run" / "checkpoint.pth.tar")["method"] == "gaussian"


def test_a_run_folder_without_a_config_needs_resume_or_overwrite(tmp_path, capsys):
    out = tmp_path / "old"
    assert main([*TRAIN, "--epochs", "1", "--out", str(out)]) == 0
    (out / "config.json").unlink()  # an older smoothadv's folder, or a foreign one
    assert main([*TRAIN, "--epochs", "2", "--out", str(out)]) == 2
    assert "--resume" in _one_line(capsys)
    assert main([*TRAIN, "--epochs", "2", "--resume", "--out", str(out)]) == 0
    assert read_checkpoint(out / "checkpoint.pth.tar")["epoch"] == 2


def test_one_loading_rule_for_files_that_record_no_layer(tmp_path):
    path = shared_path("paper-checkpoints", "smoothadv_center_cifar_resnet20_sigma0.25.pth.tar")
    with pytest.raises(UserError, match="records no input layer"):
        load_checkpoint(path)
    test = create_dataset("cifar10", "test", shared_path("cifar10"))
    model, meta = load_checkpoint(path, data=test, sigma=0.25)
    assert meta["normalization"] == "center" and meta["normalization_choice"].source == "auto"
    # train --pretrained measures it too (the same class count), instead of assuming normalize
    from smoothadv.stages import TrainConfig, run_stage

    run_stage(TrainConfig(dataset="cifar10", data_root=str(shared_path("cifar10")),
                          arch="cifar_resnet20", pretrained=str(path), epochs=1, batch=32,
                          train_subset=32, test_subset=16, lr=0.001, progress=False,
                          out=str(tmp_path / "ft"), channels_last=False, compile="off"))
    assert read_checkpoint(tmp_path / "ft" / "checkpoint.pth.tar")["normalization"] == "center"


def test_the_readme_tour_runs(tmp_path, monkeypatch):
    from .conftest import ROOT

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    start = text.index("```python\n", text.index("## A tour of the library")) + len("```python\n")
    code = text[start:text.index("```", start)]
    assert "normalization=" in code
    shared_path("cifar10")  # skips where the data are absent
    monkeypatch.chdir(ROOT)
    exec(compile(code, "README tour", "exec"), {})


def test_smaller_items_a_new_user_met(tmp_path, capsys):
    # a CIFAR ResNet on digits is a real 1-channel ResNet on 8×8 images (global pooling): it
    # trains, and the docs say so; a network that cannot take the images is refused up front
    assert main([*TRAIN, "--arch", "cifar_resnet20", "--epochs", "1", "--train-subset", "64",
                 "--out", str(tmp_path / "r20")]) == 0
    from smoothadv.models.build import check_fits

    with pytest.raises(UserError, match="does not fit this data set's 1×8×8 images"):
        check_fits(torch.nn.Linear(10, 3), "linear10", create_dataset("digits", "train"))
    # a released ResNet-20 file is not certified as a ResNet-110 recipe
    r20 = shared_path("paper-checkpoints", "cifar_resnet20_sigma0.25.pth.tar")
    assert main(["recipe", "certify", "cifar10-pgd10-m4-mn-eps255-s0.25", str(r20), "--out",
                 str(tmp_path / "rc"), "--scale", "full"]) == 2
    assert "is a cifar_resnet110" in _one_line(capsys)
    # compare keeps absolute paths whole when they share only the root
    from smoothadv.analysis.reading import short_labels

    assert short_labels(["/a/x.tsv", "/b/y.tsv"]) == {"/a/x.tsv": "/a/x.tsv",
                                                      "/b/y.tsv": "/b/y.tsv"}
    assert short_labels(["/a/x.tsv", "/a/b/y.tsv"]) == {"/a/x.tsv": "x.tsv",
                                                        "/a/b/y.tsv": "b/y.tsv"}


def test_help_imports_no_torch():
    import subprocess
    import sys

    code = ("import sys\nfrom smoothadv.cli import main\ntry:\n    main(['--help'])\n"
            "except SystemExit:\n    pass\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True).stdout.splitlines()
    assert out[-1] == "False"


def test_a_denoiser_continues_from_init_without_repeating_its_shape(tmp_path):
    from smoothadv.denoise.dncnn import read_checkpoint_dncnn

    base = ["train-denoiser", "--dataset", "digits", "--epochs", "1", "--batch", "64",
            "--train-subset", "128", "--no-progress"]
    assert main([*base, "--depth", "3", "--width", "4", "--out", str(tmp_path / "a")]) == 0
    assert main([*base, "--init", str(tmp_path / "a" / "denoiser.pth.tar"), "--lr", "1e-4",
                 "--out", str(tmp_path / "b")]) == 0
    shape = read_checkpoint_dncnn(tmp_path / "b" / "denoiser.pth.tar")["config"]
    assert (shape["depth"], shape["width"]) == (3, 4)
