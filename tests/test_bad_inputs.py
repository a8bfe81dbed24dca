"""Nothing destroyed, nothing silently ignored: the mistakes a new user made in a first
afternoon, each as they made it. Every refusal is one line (``smoothadv: error: …``, exit 2) and
leaves every file as it was (names, bytes and modification times of the whole folder)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from smoothadv.cli import main
from smoothadv.errors import UserError
from smoothadv.records.files import read_records
from smoothadv.smoothing.smooth import Smooth

from .conftest import LinearBinary


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _refused(capsys, argv: list[str], folder: Path, *words: str) -> str:
    """Run ``argv``; it must exit 2 with exactly one error line holding ``words`` and change
    no file under ``folder``."""
    before = _snapshot(folder)
    assert main(argv) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("smoothadv: error")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for word in words:
        assert word in lines[0], lines[0]
    assert _snapshot(folder) == before
    return lines[0]


CERTIFY = ["--no-progress", "--max", "150", "--skip", "50", "--n", "50", "--n0", "10"]


# ------------------------------------------------------------------- data destroyed or taken


def test_a_checkpoint_given_as_out_is_refused_untouched(digits_ckpt, tmp_path, capsys):
    """1. ``certify victim.pth.tar --out victim.pth.tar`` cut bytes off the checkpoint."""
    _refused(capsys, ["certify", str(digits_ckpt), "--out", str(digits_ckpt), *CERTIFY],
             tmp_path, "not a record file")
    # and --overwrite does not make a checkpoint a record to replace
    _refused(capsys, ["certify", str(digits_ckpt), "--out", str(digits_ckpt), "--overwrite",
                      *CERTIFY], tmp_path, "not a record file")
    assert not list(tmp_path.glob("*.config.json"))


def test_notes_given_as_out_are_refused_untouched(digits_ckpt, tmp_path, capsys):
    """1. The same write path cut the last line off an unrelated notes.txt (no newline at its
    end) before refusing it."""
    notes = tmp_path / "notes.txt"
    notes.write_text("meeting notes\nlast line without a newline")
    _refused(capsys, ["certify", str(digits_ckpt), "--out", str(notes), *CERTIFY], tmp_path,
             "not a record file")


def test_a_record_without_config_is_not_taken_over(digits_ckpt, tmp_path, capsys):
    """2. A copy of Cohen et al.'s log given as --out was appended to and given a config."""
    theirs = tmp_path / "sigma_0.25"
    theirs.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
                      "0\t3\t3\t0.521\t1\t0:00:14.172300\n")
    _refused(capsys, ["certify", str(digits_ckpt), "--out", str(theirs), *CERTIFY], tmp_path,
             "without a", "--overwrite")
    assert main(["certify", str(digits_ckpt), "--out", str(theirs), "--overwrite",
                 *CERTIFY]) == 0
    assert read_records(theirs)["idx"].tolist() == [0, 50, 100]


def test_run_from_another_folder_resumes_in_its_own(tmp_path, monkeypatch, capsys):
    """4. ``smoothadv run work/runs/sa/config.json`` from another folder trained anew under
    ./runs/sa: a kept config's relative paths are relative to the folder its command ran in."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["train", "--dataset", "digits", "--epochs", "1", "--out", "runs/sa",
                 "--no-progress", "--train-subset", "200"]) == 0
    checkpoint = work / "runs" / "sa" / "checkpoint.pth.tar"
    stamp = checkpoint.stat().st_mtime_ns
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    assert main(["run", str(Path("..") / "work" / "runs" / "sa" / "config.json")]) == 0
    assert "running in" in capsys.readouterr().err
    assert not (elsewhere / "runs").exists()
    assert checkpoint.stat().st_mtime_ns == stamp  # finished: nothing trained again
    # a record's config too
    monkeypatch.chdir(work)
    assert main(["certify", "runs/sa/checkpoint.pth.tar", "--out", "runs/c.tsv",
                 *CERTIFY]) == 0
    rows = (work / "runs" / "c.tsv").read_bytes()
    monkeypatch.chdir(elsewhere)
    assert main(["run", str(work / "runs" / "c.tsv.config.json")]) == 0
    assert (work / "runs" / "c.tsv").read_bytes() == rows and not (elsewhere / "runs").exists()


# ------------------------------------------------------------------- settings silently ignored


def test_a_deferral_past_the_last_epoch_is_refused(tmp_path, capsys):
    """5. MACER at σ = 1 for 5 epochs kept deferred = 51: λ = 0 throughout."""
    _refused(capsys, ["train", "--dataset", "digits", "--method", "macer", "--sigma", "1",
                      "--epochs", "5", "--out", str(tmp_path / "m")], tmp_path,
             "--deferred 51", "noise augmentation")


def test_a_subset_larger_than_the_data_is_refused(tmp_path, capsys):
    """6. --train-subset 100000 on digits' 1,348 training images was accepted."""
    _refused(capsys, ["train", "--dataset", "digits", "--epochs", "1", "--train-subset",
                      "100000", "--out", str(tmp_path / "m"), "--no-progress"], tmp_path,
             "--train-subset 100,000", "1,348")


def test_another_sigma_than_the_training_one_is_named(digits_ckpt, tmp_path, capsys):
    """6. --sigma 0.5 on a model trained at σ = 0.25 certified without a note."""
    assert main(["certify", str(digits_ckpt), "--sigma", "0.5", "--out",
                 str(tmp_path / "c.tsv"), *CERTIFY]) == 0
    assert "trained at σ = 0.25" in capsys.readouterr().err


def test_analyze_names_records_of_different_sampling(digits_ckpt, tmp_path, capsys):
    """6. analyze put n = 10,000 and n = 100,000 in one table without a note; its n column
    counted inputs."""
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    base = ["certify", str(digits_ckpt), "--no-progress", "--max", "150", "--skip", "50",
            "--n0", "10"]
    assert main([*base, "--n", "50", "--out", str(a)]) == 0
    assert main([*base, "--n", "60", "--out", str(b)]) == 0
    capsys.readouterr()
    assert main(["analyze", str(a), str(b)]) == 0
    out = capsys.readouterr()
    assert "different sampling" in out.err and "n=50" in out.err and "n=60" in out.err
    assert "inputs" in out.out.splitlines()[0]


# ------------------------------------------------------------------- tracebacks


def test_out_naming_a_folder_is_one_line(digits_ckpt, tmp_path, capsys):
    """7. --out naming a folder ended in IsADirectoryError."""
    folder = tmp_path / "results"
    folder.mkdir()
    _refused(capsys, ["certify", str(digits_ckpt), "--out", str(folder), *CERTIFY], tmp_path,
             "is a folder")


def test_a_folder_given_as_checkpoint_is_named(digits_ckpt, tmp_path, capsys):
    """7. ``certify FOLDER`` said 'checkpoint not found'."""
    line = _refused(capsys, ["certify", str(digits_ckpt.parent), "--out",
                             str(tmp_path / "c.tsv"), *CERTIFY], tmp_path, "is a folder")
    assert digits_ckpt.name in line


def test_a_mistyped_flag_gets_a_suggestion(digits_ckpt, tmp_path, capsys):
    """7. --sigam got no 'did you mean'."""
    _refused(capsys, ["certify", str(digits_ckpt), "--sigam", "0.5", "--out",
                      str(tmp_path / "c.tsv")], tmp_path, "--sigam", "did you mean --sigma")


def test_smooth_refuses_a_batch_to_certify_and_a_wrong_class_count():
    """7. ``Smooth.certify`` given [3,1,8,8] (a matrix shape error) and num_classes = 5 for a
    10-class model (IndexError)."""
    model = LinearBinary(torch.ones(64), -32.0)
    with pytest.raises(UserError, match="one image .C,H,W.*certify_many"):
        Smooth(model, 2, 0.25).certify(torch.rand(3, 1, 8, 8), 10, 20, 0.001, 100)

    class Ten(torch.nn.Module):
        def forward(self, x):
            return torch.zeros(x.shape[0], 10)

    with pytest.raises(UserError, match="num_classes is 5"):
        Smooth(Ten(), 5, 0.25).certify(torch.rand(1, 8, 8), 10, 20, 0.001, 100)
    with pytest.raises(UserError, match="num_classes is 5"):
        Smooth(Ten(), 5, 0.25).predict(torch.rand(1, 8, 8), 20, 0.001, 100)


# ------------------------------------------------------------------- messages that mislead


def test_a_resumed_certification_says_what_it_kept(digits_ckpt, tmp_path, capsys):
    """8. A resumed certification did not say how many rows it kept, and the compile estimate
    of a complete record was hundreds of seconds."""
    out = tmp_path / "c.tsv"
    base = ["certify", str(digits_ckpt), "--out", str(out), *CERTIFY]
    assert main(base) == 0
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:-1]) + "\n")  # as if killed after two rows
    capsys.readouterr()
    assert main(base) == 0
    err = capsys.readouterr().err
    assert "2 rows kept, 1 inputs to go" in err
    assert main(base) == 0
    assert "nothing left to evaluate" in capsys.readouterr().err


def test_compare_radii_follow_sigma(tmp_path, capsys):
    """9. compare defaulted to radii up to 2.25 whatever σ."""
    from smoothadv.stages.reports import default_radii

    path = tmp_path / "r.tsv"
    path.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.3\t1\t0:00:01\n")
    path.with_name(path.name + ".config.json").write_text(json.dumps({"sigma": 0.12}))
    assert default_radii([path]) == [0.25]
    path.with_name(path.name + ".config.json").write_text(json.dumps({"sigma": 0.25}))
    assert default_radii([path]) == [0.25, 0.5, 0.75, 1.0]
    os.remove(path.with_name(path.name + ".config.json"))
    assert default_radii([path]) == [0.25]


def test_the_demo_resumes_and_a_changed_demo_destroys_nothing(tmp_path, capsys):
    """3. Running ``make demo`` again deleted the finished certification and started over: the
    demo runs on the sweep engine, so a second run starts nothing, and another n certifies
    anew beside the finished records, reusing the trainings."""
    argv = ["demo", "--out", str(tmp_path), "--epochs", "1", "--n", "60", "--no-progress",
            "--device", "cpu"]
    assert main(argv) == 0
    records = {p: p.read_bytes() for p in tmp_path.glob("stages/certify-*/certify.tsv")}
    checkpoints = {p: p.stat().st_mtime_ns for p in tmp_path.glob("stages/train-*/*.pth.tar")}
    assert len(records) == 2 and len(checkpoints) == 2
    capsys.readouterr()
    assert main(argv) == 0
    assert ": started" not in capsys.readouterr().out
    assert main([*argv[:6], "80", *argv[7:]]) == 0  # --n 80
    printed = capsys.readouterr().out
    assert "certify σ=0.25 n=80: done" in printed and "train" not in printed.split("model")[0]
    assert all(p.read_bytes() == rows for p, rows in records.items())
    assert checkpoints == {p: p.stat().st_mtime_ns for p in checkpoints}
    assert len(list(tmp_path.glob("stages/certify-*/certify.tsv"))) == 4


def test_rebox_refuses_an_out_that_is_not_a_record(tmp_path):
    """A file named as the re-boxed record's ``out`` is checked before anything is written."""
    from smoothadv.records.rebox import rebox_record

    record = tmp_path / "u.tsv"
    record.write_text("idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.3\t1\t0:00:01\n")
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    images = [(torch.full((1, 1, 1), 0.5), 1)]
    before = _snapshot(tmp_path)
    with pytest.raises(UserError, match="not a record file"):
        rebox_record(record, images, 0.5, "uniform", notes)
    with pytest.raises(UserError, match="another file than"):
        rebox_record(record, images, 0.5, "uniform", record)
    assert _snapshot(tmp_path) == before


@pytest.mark.parametrize("with_srun", [True, False])
def test_slurm_without_a_controller_is_one_line(tmp_path, monkeypatch, capsys, with_srun):
    """7. ``sweep run --engine slurm`` where sbatch exists but no controller answers (or srun
    is missing) ended in a submitit traceback."""
    pytest.importorskip("submitit", reason="submitit (the sweep extra) is not installed")
    fake = tmp_path / "bin"
    fake.mkdir()
    failing = ("#!/bin/sh\necho 'sbatch: error: Batch job submission failed: Unable to "
               "contact slurm controller (connect failure)' >&2\nexit 1\n")
    for name in ("sbatch", "squeue", *(("srun",) if with_srun else ())):
        (fake / name).write_text(failing)
        (fake / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(fake))  # only the stand-ins: a real SLURM must not answer
    sweep = tmp_path / "grid.toml"
    sweep.write_text(f'out = "{tmp_path / "out"}"\n[[runs]]\nlabel = "g"\n'
                     'train = { dataset = "digits", arch = "mlp", epochs = 1 }\n'
                     'certify = { n = 100, n0 = 10, skip = 40 }\n')
    assert main(["sweep", "run", str(sweep), "--engine", "slurm"]) == 2
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.startswith("smoothadv: error")]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert ("Unable to contact slurm controller" if with_srun else "srun") in lines[0]


# ------------------------------------------------------------------- the scripted mistakes

MISTAKES = [  # (argv with {ckpt}, {tmp}; words the one error line must hold)
    (["certify", "{ckpt}", "--sigma", "0", "--out", "{tmp}/c.tsv"], ["sigma"]),
    (["certify", "{ckpt}", "--sigma", "-0.25", "--out", "{tmp}/c.tsv"], ["sigma"]),
    (["certify", "{ckpt}", "--alpha", "1.5", "--out", "{tmp}/c.tsv"], ["alpha"]),
    (["certify", "{ckpt}", "--alpha", "0", "--out", "{tmp}/c.tsv"], ["alpha"]),
    (["certify", "{ckpt}", "--n", "0", "--out", "{tmp}/c.tsv"], ["--n"]),
    (["certify", "{ckpt}", "--n0", "-1", "--out", "{tmp}/c.tsv"], ["--n0"]),
    (["certify", "{ckpt}", "--batch", "0", "--out", "{tmp}/c.tsv"], ["--batch"]),
    (["certify", "{ckpt}", "--skip", "0", "--out", "{tmp}/c.tsv"], ["--skip"]),
    (["certify", "{ckpt}", "--dataset", "cifar100", "--out", "{tmp}/c.tsv"], ["cifar100"]),
    (["certify", "{tmp}/missing.pth.tar", "--out", "{tmp}/c.tsv"], ["not found"]),
    (["certify", "{tmp}/corrupt.pth.tar", "--out", "{tmp}/c.tsv"], ["not a readable"]),
    (["certify", "{ckpt}", "--noise", "uniform", "--out", "{tmp}/c.tsv"], ["ℓ1"]),
    (["certify", "{ckpt}", "--derandomized", "--out", "{tmp}/c.tsv"], ["splitting"]),
    (["certify", "{ckpt}", "--noise", "splitting", "--norm", "l1", "--derandomized",
      "--template", "random", "--out", "{tmp}/c.tsv"], ["template"]),
    (["certify", "{ckpt}", "--template", "seed0", "--out", "{tmp}/c.tsv"], ["--derandomized"]),
    (["certify", "{ckpt}", "--box", "--out", "{tmp}/c.tsv"], ["--box"]),
    (["certify", "{ckpt}", "--radii", "0.5", "--out", "{tmp}/c.tsv"], ["--sequential"]),
    (["certify", "{ckpt}", "--shard", "2", "--shards", "2", "--out", "{tmp}/c.tsv"],
     ["--shard"]),
    (["certify", "{ckpt}", "--precision", "fp16", "--device", "cpu", "--out", "{tmp}/c.tsv"],
     ["fp16"]),
    (["predict", "{ckpt}", "--sound", "--noise", "laplace", "--norm", "l1", "--out",
      "{tmp}/p.tsv"], ["--sound"]),
    (["attack", "{ckpt}", "--noise", "uniform", "--norm", "l1", "--out", "{tmp}/a.tsv"],
     ["unrecognized", "--noise"]),
    (["train", "--dataset", "mnist3", "--out", "{tmp}/t"], ["mnist3"]),
    (["train", "--dataset", "digits", "--arch", "resnet9000", "--out", "{tmp}/t"],
     ["resnet9000"]),
    (["train", "--dataset", "digits", "--lr", "0", "--out", "{tmp}/t"], ["--lr"]),
    (["train", "--dataset", "digits", "--epochs", "0", "--out", "{tmp}/t"], ["--epochs"]),
    (["train", "--dataset", "digits", "--method", "macer", "--noise", "uniform", "--out",
      "{tmp}/t"], ["macer"]),
    (["analyze", "{tmp}/empty.tsv"], ["not a certification or prediction record"]),
    (["analyze", "{tmp}/missing.tsv"], ["not found"]),
    (["compare", "{tmp}/empty.tsv", "--reference", "{tmp}/empty.tsv"], ["empty"]),
    (["certify", "{ckpt}", "--sigam", "0.5", "--out", "{tmp}/c.tsv"], ["did you mean"]),
    (["certify", "{ckpt}", "--max", "0", "--out", "{tmp}/c.tsv"], ["--max"]),
    (["certify", "{ckpt}", "--max", "-3", "--out", "{tmp}/c.tsv"], ["--max"]),
    (["certify", "{ckpt}", "--sigma", "nan", "--out", "{tmp}/c.tsv"], ["sigma"]),
    (["certify", "{ckpt}", "--device", "tpu", "--out", "{tmp}/c.tsv"], ["tpu"]),
    (["certify", "{ckpt}", "--sequential", "--out", "{tmp}/c.tsv"], ["--radii"]),
    (["attack", "{ckpt}", "--epsilon", "-1", "--out", "{tmp}/a.tsv"], ["epsilon"]),
    (["attack", "{ckpt}", "--steps", "0", "--out", "{tmp}/a.tsv"], ["--steps"]),
    (["attack", "{ckpt}", "--m-test", "0", "--out", "{tmp}/a.tsv"], ["--m-test"]),
    (["predict", "{ckpt}", "--n", "0", "--out", "{tmp}/p.tsv"], ["--n"]),
    (["train", "--dataset", "digits", "--sigma", "0", "--out", "{tmp}/t"], ["sigma"]),
    (["train", "--dataset", "digits", "--batch", "0", "--out", "{tmp}/t"], ["--batch"]),
    (["train", "--dataset", "digits", "--weight-decay", "-1", "--out", "{tmp}/t"],
     ["--weight-decay"]),
    (["train", "--dataset", "digits", "--momentum", "2", "--out", "{tmp}/t"], ["--momentum"]),
    (["train", "--dataset", "digits", "--train-subset", "0", "--out", "{tmp}/t"],
     ["--train-subset"]),
    (["train", "--dataset", "digits", "--lr-gamma", "-1", "--out", "{tmp}/t"], ["--lr-gamma"]),
    (["train", "--dataset", "digits", "--method", "smoothadv", "--m-train", "0", "--out",
      "{tmp}/t"], ["--m-train"]),
    (["train", "--dataset", "digits", "--method", "smoothadv", "--epsilon", "-1", "--out",
      "{tmp}/t"], ["--epsilon"]),
    (["train", "--dataset", "digits", "--method", "consistency", "--lbd", "-1", "--out",
      "{tmp}/t"], ["--lbd"]),
    (["train", "--dataset", "digits", "--method", "macer", "--beta", "0", "--out", "{tmp}/t"],
     ["--beta"]),
    (["train", "--dataset", "digits", "--method", "macer", "--gamma", "-1", "--out",
      "{tmp}/t"], ["--gamma"]),
    (["train", "--dataset", "digits", "--method", "smoothmix", "--alpha", "0", "--out",
      "{tmp}/t"], ["--alpha"]),
    (["train", "--dataset", "digits", "--method", "stability", "--eta", "1", "--out",
      "{tmp}/t"], ["eta"]),
    (["train", "--dataset", "digits", "--workers", "-1", "--out", "{tmp}/t"], ["--workers"]),
    (["demo", "--epochs", "0", "--out", "{tmp}/d"], ["--epochs"]),
    (["demo", "--n", "0", "--out", "{tmp}/d"], ["--n"]),
    (["demo", "--write-sweep", "{tmp}/empty.tsv"], ["--write-sweep", "not a sweep file"]),
    (["demo", "--write-sweep", "{tmp}/corrupt.pth.tar"], ["not a sweep file"]),
    (["analyze", "{tmp}/empty.tsv", "--radii", "-1"], ["--radii"]),
    (["run", "{tmp}/missing.json"], ["not found"]),
    (["run", "{tmp}/garbage.json"], ["not JSON"]),
    (["sweep", "run", "{tmp}/missing.toml"], ["not found"]),
    (["sweep", "run", "{tmp}/garbage.toml"], ["not TOML"]),
    (["recipe", "show", "nope"], ["unknown recipe"]),
    (["compare", "{tmp}/empty.tsv", "--reference", "{tmp}/missing.tsv"], ["not found"]),
]


@pytest.mark.parametrize("argv,words", MISTAKES, ids=[" ".join(m[0][:4]) for m in MISTAKES])
def test_a_scripted_mistake_is_one_line_and_changes_nothing(argv, words, digits_ckpt, tmp_path,
                                                            capsys):
    (tmp_path / "corrupt.pth.tar").write_bytes(b"PK\x03\x04 not really a checkpoint")
    (tmp_path / "empty.tsv").write_text("")
    (tmp_path / "garbage.json").write_text("{garbage")
    (tmp_path / "garbage.toml").write_text('out = "x"\n[[runs]\nlabel = 1')
    argv = [a.format(ckpt=digits_ckpt, tmp=tmp_path) for a in argv]
    quiet = argv[0] in ("certify", "predict", "attack", "demo", "train")
    _refused(capsys, [*argv, "--no-progress"] if quiet else argv, tmp_path, *words)


# ------------------------------------------------------------- certification modes, typed

MODE_BASE = {"fixed": {}, "sequential": {"sequential": True, "radii": (0.25,)},
             "derandomized": {"derandomized": True, "noise": "splitting", "norm": "l1"}}
AWAY = {"n0": 50, "randomized_cp": True, "two_sided": True, "box": True, "radii": (0.5,),
        "budget": 5_000, "sequence": "union", "labelled": True, "alpha_split": 0.5,
        "anytime_tol": 0.1, "template": "zero"}


@pytest.mark.parametrize("mode", sorted(MODE_BASE))
def test_each_mode_refuses_the_options_of_another(mode):
    """The mode table is the one place that says which options go together: every option of
    another mode, set away from its default, is refused in one line that names its flag."""
    from smoothadv.stages import CertifyConfig
    from smoothadv.stages.modes import MODE_OPTIONS, MODES

    takes = MODES.get(mode).takes
    assert set(AWAY) == MODE_OPTIONS
    for option in sorted(MODE_OPTIONS - takes):
        kwargs = {**MODE_BASE[mode], option: AWAY[option], "out": "x.tsv", "checkpoint": "c"}
        with pytest.raises(UserError) as caught:
            CertifyConfig(**kwargs)
        message = str(caught.value)
        assert "\n" not in message and "--" + option.replace("_", "-") in message, message
    with pytest.raises(UserError, match="two certification modes"):
        CertifyConfig(sequential=True, derandomized=True, radii=(0.25,), noise="splitting",
                      norm="l1", out="x.tsv", checkpoint="c")
    assert CertifyConfig(**MODE_BASE[mode], out="x.tsv", checkpoint="c").certify_mode() \
        is MODES.get(mode)
