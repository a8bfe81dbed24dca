"""Certification across processes: a two-process gloo run equals a single-process run."""

import os
import subprocess
import sys

import pytest
import torch

from smoothadv.data.datasets import get_dataset_spec
from smoothadv.models import create_model, save_checkpoint
from smoothadv.runtime.distributed import merge_record_parts, part_path, shard

from .conftest import ROOT


def _rows(path):
    return [line.split("\t")[:5] + line.split("\t")[6:]  # drop the time column
            for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    spec = get_dataset_spec("digits")
    torch.manual_seed(0)
    model = create_model("mlp", 10, mean=spec.mean, std=spec.std, image_size=8)
    path = tmp_path_factory.mktemp("dist") / "mlp.pth.tar"
    save_checkpoint(path, model, arch="mlp", epoch=0,
                    meta=dict(dataset="digits", num_classes=10, mean=spec.mean, std=spec.std,
                              image_size=8, sigma=0.5))
    return path


def _run(args, nproc):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    prefix = [sys.executable, "-m", "smoothadv"]
    if nproc > 1:
        prefix = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                  "--nproc_per_node", str(nproc), "-m", "smoothadv"]
    proc = subprocess.run(prefix + args, cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]


@pytest.mark.parametrize("command", ["certify", "predict", "attack", "sequential"])
def test_two_processes_equal_one(ckpt, tmp_path, command):
    # torchrun would take "--n" and "--max" for its own options: hence the aliases
    common = [command, str(ckpt), "--num-samples", "300", "--batch", "256", "--skip", "7",
              "--max-index", "150", "--device", "cpu", "--no-progress", "--seed", "3"]
    if command == "certify":
        common += ["--n0", "30"]
    if command == "sequential":  # rows are written as inputs finish: compare them sorted
        common[0] = "certify"
        common += ["--sequential", "--radii", "0", "0.25", "--budget", "2000", "--n0", "30"]
    if command == "attack":
        common += ["--epsilon", "0.5", "--steps", "3", "--m-test", "4", "--attack-batch", "3"]
    single, double = tmp_path / "single.tsv", tmp_path / "double.tsv"
    _run(common + ["--out", str(single)], 1)
    # torchrun takes --log as its own --log-dir: the spelling under torchrun is --loggers
    logged = ["--loggers", "csv"] if command == "certify" else []
    _run(common + ["--out", str(double)] + logged, 2)
    assert sorted(_rows(single)) == sorted(_rows(double))
    assert len(_rows(single)) == 1 + len(range(0, 150, 7))
    assert not list(tmp_path.glob("*.part*"))
    if logged:  # rank 0 logs the figures of its share of the inputs
        import csv

        with open(tmp_path / "double.metrics.csv", newline="") as f:
            last = {r["name"]: float(r["value"]) for r in csv.DictReader(f)}
        mine = set(shard(list(range(0, 150, 7)), 0, 2))
        rows = [r for r in _rows(double)[1:] if int(r[0]) in mine]
        assert last["rows"] == len(rows) == len(mine)
        assert last["accuracy"] == pytest.approx(sum(r[4] == "1" for r in rows) / len(rows))


def test_shard_and_merge(tmp_path):
    items = list(range(10))
    assert shard(items, 0, 3) + shard(items, 1, 3) + shard(items, 2, 3) == [
        0, 3, 6, 9, 1, 4, 7, 2, 5, 8]
    out = tmp_path / "r.tsv"
    head = "idx\tlabel\n"
    out.write_text(head + "4\t1\n")
    part_path(out, 0).write_text(head + "0\t1\n6\t1\n")
    part_path(out, 1).write_text(head + "2\t1\n")
    merge_record_parts(out, 2)
    assert out.read_text() == head + "0\t1\n2\t1\n4\t1\n6\t1\n"
    assert not part_path(out, 0).exists()


def _finish_in_thread(out, **kwargs):
    """finish_parts(out, 2, 0, wait=True) in a thread: (the exception it raised, or None;
    whether it returned within 20 s)."""
    import threading

    from smoothadv.runtime.distributed import finish_parts

    raised = []

    def target():
        try:
            finish_parts(out, 2, 0, wait=True, poll_seconds=0.05, **kwargs)
        except Exception as err:  # noqa: BLE001 - what the test looks at
            raised.append(err)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(20)
    return (raised[0] if raised else None), not thread.is_alive()


def test_rank_zero_stops_waiting_for_a_failed_or_silent_rank(tmp_path, monkeypatch):
    """Under srun a dead rank does not end the others: rank 0, waiting for the merge, fails in
    one line when rank 1 left its error, or gave no sign of life for SMOOTHADV_RANK_STALE
    seconds; a rank that is alive and finishes ends the wait with the merged record."""
    import time

    from smoothadv.errors import UserError
    from smoothadv.runtime.distributed import alive_marker, failed_marker, finish_parts

    monkeypatch.setenv("SMOOTHADV_RANK_STALE", "2")
    out = tmp_path / "c.tsv"
    part_path(out, 0).write_text("idx\tlabel\n0\t1\n")
    failed_marker(out, 1).write_text("OutOfMemoryError: CUDA out of memory\n")
    err, returned = _finish_in_thread(out)
    assert returned and isinstance(err, UserError)
    assert "rank 1 failed" in str(err) and "out of memory" in str(err)
    failed_marker(out, 1).unlink()
    alive = alive_marker(out, 1)
    alive.touch()
    os.utime(alive, (time.time() - 10, time.time() - 10))  # killed 10 s ago
    err, returned = _finish_in_thread(out)
    assert returned and isinstance(err, UserError) and "no sign of life" in str(err)
    alive.touch()  # alive, and finishing a moment later

    def rank_one():
        time.sleep(0.5)
        part_path(out, 1).write_text("idx\tlabel\n1\t2\n")
        finish_parts(out, 2, 1, wait=False)

    import threading

    threading.Thread(target=rank_one, daemon=True).start()
    err, returned = _finish_in_thread(out)
    assert returned and err is None
    assert out.read_text() == "idx\tlabel\n0\t1\n1\t2\n"


def test_a_rank_killed_under_srun_fails_the_stage_in_one_line(ckpt, tmp_path):
    """Two ranks started as srun starts them (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_*; no
    torchrun to end the others): rank 1 is killed with SIGKILL mid-certification; rank 0
    finishes its part and exits 2 with one line instead of waiting for ever."""
    import signal
    import socket
    import time

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = tmp_path / "c.tsv"
    args = [sys.executable, "-m", "smoothadv", "certify", str(ckpt), "--n", "4000",
            "--n0", "20", "--batch", "500", "--max", "120", "--device", "cpu",
            "--no-progress", "--no-compile", "--out", str(out)]
    procs = []
    for r in range(2):
        env = dict(os.environ, OMP_NUM_THREADS="1", RANK=str(r), LOCAL_RANK=str(r),
                   WORLD_SIZE="2", LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                   MASTER_PORT=str(port), SMOOTHADV_RANK_STALE="3")
        procs.append(subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    deadline = time.time() + 120
    part = part_path(out, 1)
    while time.time() < deadline and not (part.exists() and part.read_text().count("\n") > 1):
        time.sleep(0.05)
    procs[1].send_signal(signal.SIGKILL)
    _, err = procs[0].communicate(timeout=120)
    procs[1].communicate()
    lines = [ln for ln in err.splitlines() if ln.startswith("smoothadv: error")]
    assert procs[0].returncode == 2, err[-2000:]
    assert len(lines) == 1 and "rank 1 has given no sign of life" in lines[0], err[-2000:]
    assert part_path(out, 0).exists()  # rank 0's rows are kept for the resumed run


def test_one_decision_for_every_rank():
    """The compile decision is one for all ranks: all_ranks is false when one rank's compiled
    step failed, rank_zero_says gives every rank rank 0's choice (two gloo ranks)."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", str(ROOT / "tests" / "_agree_worker.py")]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "rank 0: [False, True, True, False]" in proc.stdout
    assert "rank 1: [False, True, True, False]" in proc.stdout
