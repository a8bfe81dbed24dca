"""--log tensorboard / wandb / csv: the logged figures are those of log.tsv, read back with each
library's own reader (TensorBoard's event accumulator; W&B's offline run file)."""

import csv
import os

import pytest

from smoothadv.cli import main


def _log(path):
    lines = (path / "log.tsv").read_text().splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, ln.split("\t"))) for ln in lines[1:]]


TRAIN = ["train", "--dataset", "digits", "--epochs", "2", "--batch", "64", "--train-subset",
         "256", "--test-subset", "64", "--no-progress", "--device", "cpu"]


def test_tensorboard_and_csv_hold_the_figures_of_log_tsv(tmp_path):
    pytest.importorskip("tensorboard", reason="pip install 'smoothadv[watch]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = tmp_path / "run"
    assert main([*TRAIN, "--log", "tensorboard", "csv", "--out", str(out)]) == 0
    rows = _log(out)
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    for name in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
        logged = [(e.step, e.value) for e in events.Scalars(name)]
        assert [s for s, _ in logged] == [1, 2]
        for (_, value), row in zip(logged, rows):
            assert f"{value:.4f}" == f"{float(row[name]):.4f}" or name == "lr"
    with open(out / "metrics.csv", newline="") as f:
        got = {(int(r["step"]), r["name"]): float(r["value"]) for r in csv.DictReader(f)}
    for step, row in enumerate(rows, 1):
        assert f"{got[step, 'test_acc']:.4f}" == row["test_acc"]
    hparams = [p for p in (out / "tensorboard").rglob("events.*") if "hparams" in str(p)]
    assert hparams  # the config, for TensorBoard's HParams view


def _wandb_records(path):
    """The records of a W&B run file: a 7-byte header (":W&B", magic, version), then LevelDB
    log framing — 32 KiB blocks of chunks, each a 7-byte header (CRC-32, length, type: full,
    first, middle, last) and its bytes — around protobuf ``Record`` messages."""
    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, out, pending = 7, 32768, [], b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            continue
        pending += chunk
        if kind in (1, 4):
            out.append(pending)
            pending = b""
    return out


def test_wandb_offline_run_holds_the_figures_of_log_tsv(tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="pip install 'smoothadv[watch]'")
    for key in ("WANDB_API_KEY", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    out = tmp_path / "run"
    assert main([*TRAIN, "--log", "wandb", "--out", str(out)]) == 0
    rows = _log(out)
    files = list((out / "wandb").glob("offline-run-*/run-*.wandb"))
    assert len(files) == 1
    from wandb.proto import wandb_internal_pb2

    history, config = [], {}
    for data in _wandb_records(files[0]):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(data)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            history.append({i.key or "/".join(i.nested_key): i.value_json
                            for i in record.history.item})
        elif kind == "run":
            config.update({i.key or "/".join(i.nested_key): i.value_json
                           for i in record.run.config.update})
    steps = [h for h in history if "test_acc" in h]
    assert [f"{float(h['test_acc']):.4f}" for h in steps] == [r["test_acc"] for r in rows]
    assert config.get("dataset") == '"digits"'
    assert os.environ.get("WANDB_MODE") is None


def test_an_unknown_or_missing_logger_is_one_line(tmp_path, capsys, monkeypatch):
    with pytest.raises(SystemExit):  # argparse: the choices come from the registry
        main([*TRAIN, "--log", "bogus", "--out", str(tmp_path / "r")])
    assert "invalid choice: 'bogus'" in capsys.readouterr().err
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "wandb" else real(name, *a))
    capsys.readouterr()
    assert main([*TRAIN, "--log", "wandb", "--out", str(tmp_path / "r")]) == 2
    assert "pip install 'smoothadv[watch]'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def _csv_figures(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    last = max(int(r["step"]) for r in rows)
    return last, {r["name"]: float(r["value"]) for r in rows if int(r["step"]) == last}


@pytest.fixture(scope="module")
def trained_digits(tmp_path_factory):
    out = tmp_path_factory.mktemp("trained") / "run"
    assert main(["train", "--dataset", "digits", "--arch", "digits_cnn", "--epochs", "3",
                 "--no-progress", "--device", "cpu", "--out", str(out)]) == 0
    return out / "checkpoint.pth.tar"


def test_certify_logs_the_record_figures_and_counts_rows_of_a_resumed_run(
        tmp_path, trained_digits):
    """certify --log tensorboard csv: the last logged figures are those the analysis computes
    from the record file (accuracy, certified accuracy at 0.25 … 1.0, ACR, abstentions), also
    after a run that resumed a record holding some rows already; TensorBoard reads them back
    under the record's name."""
    pytest.importorskip("tensorboard", reason="pip install 'smoothadv[watch]'")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from smoothadv.analysis.metrics import average_certified_radius, certified_accuracy
    from smoothadv.records.files import read_records

    out = tmp_path / "cert.tsv"
    args = ["certify", str(trained_digits), "--n", "400", "--skip", "6", "--no-progress",
            "--device", "cpu", "--out", str(out), "--log", "tensorboard", "csv"]
    assert main(args) == 0
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:31]) + "\n")  # 30 rows kept, as after a kill
    (tmp_path / "cert.metrics.csv").unlink()
    assert main(args) == 0
    rec = read_records(out)
    step, got = _csv_figures(tmp_path / "cert.metrics.csv")
    assert step == len(rec) == len(lines) - 1 == 75
    radii = (0.25, 0.5, 0.75, 1.0)
    expected = dict(zip((f"certified/r={r:g}" for r in radii), certified_accuracy(rec, radii)))
    expected.update(accuracy=float(rec["correct"].mean()), acr=average_certified_radius(rec),
                    abstain=float((rec["predict"] == -1).mean()), rows=75.0)
    assert expected["certified/r=0.25"] > 0.3  # a trained model: the radii are not all 0
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, abs=1e-9), name
    assert got["samples_per_second"] > 0
    events = EventAccumulator(str(tmp_path / "tensorboard" / "cert"))
    events.Reload()
    acc = events.Scalars("accuracy")
    assert acc[-1].step == 75 and acc[-1].value == pytest.approx(expected["accuracy"], 1e-6)


def test_a_sweep_logs_each_stage_in_its_folder_under_the_same_names(tmp_path, capsys):
    """sweep run --log csv: every training and certify stage writes its figures in its own
    folder, and the stage names (content hashes) are those of the sweep without --log."""
    sweep = tmp_path / "s.toml"
    sweep.write_text(
        f'out = "{tmp_path / "runs"}"\n[[runs]]\n'
        'train = { dataset = "digits", arch = "mlp", epochs = 2, batch = 64, '
        'train_subset = 128, test_subset = 32 }\ncertify = { n = 50, n0 = 10, skip = 90 }\n'
        'grid = { sigma = [0.25, 0.5] }\n')
    assert main(["sweep", "plan", str(sweep)]) == 0
    planned = sorted(ln.split()[0] for ln in capsys.readouterr().out.splitlines()[:-1])
    assert main(["sweep", "run", str(sweep), "--log", "csv"]) == 0
    said = capsys.readouterr()
    assert "sweep: 4 stage(s) to run (2 train, 2 certify), 0 done" in said.out + said.err
    stages = sorted(p.name for p in (tmp_path / "runs" / "stages").iterdir())
    assert stages == planned
    for name in stages:
        folder = tmp_path / "runs" / "stages" / name
        metrics = folder / ("metrics.csv" if name.startswith("train") else
                            "certify.metrics.csv")
        assert metrics.exists(), name
        assert (folder / "estimate.json").exists() or name.startswith("certify"), name


def test_the_methods_own_terms_are_logged_and_make_up_the_loss(tmp_path):
    """--log csv with stability training: each epoch's term/xent and term/stability are the
    epoch means of the method's own terms, so xent + λ·stability is the logged train loss."""
    import json

    out = tmp_path / "run"
    assert main([*TRAIN, "--method", "stability", "--log", "csv", "--out", str(out)]) == 0
    lbd = json.loads((out / "config.json").read_text())["config"]["options"]["lbd"]
    with open(out / "metrics.csv", newline="") as f:
        got = {(int(r["step"]), r["name"]): float(r["value"]) for r in csv.DictReader(f)}
    for epoch in (1, 2):
        parts = got[epoch, "term/xent"] + lbd * got[epoch, "term/stability"]
        # each step adds its float32 terms: equal to float32 rounding
        assert parts == pytest.approx(got[epoch, "train_loss"], rel=1e-6)
        assert got[epoch, "term/stability"] > 0
