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
    _run(common + ["--out", str(double)], 2)
    assert sorted(_rows(single)) == sorted(_rows(double))
    assert len(_rows(single)) == 1 + len(range(0, 150, 7))
    assert not list(tmp_path.glob("*.part*"))


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
