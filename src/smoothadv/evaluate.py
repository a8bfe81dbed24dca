"""Certify or predict a selection of a dataset, writing one record row per input.

Used by ``smoothadv certify``/``predict`` and by the demo. Under ``torchrun`` each rank takes
its share of the inputs and writes a part file; rank 0 merges them in idx order. Input
``idx`` draws its noise from ``input_seed(seed, idx)``, so the rows do not depend on the
number of processes, on resuming, or on which inputs share a batch.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from . import distributed as D
from .records import CERTIFY_COLUMNS, PREDICT_COLUMNS, RecordWriter, format_time, read_records
from .smoothing import ABSTAIN, Smooth, eval_mode, input_seed


def select_indices(length: int, skip: int = 1, max_index: int = -1) -> list[int]:
    """The paper's selection: every ``skip``-th index, stopping before index ``max_index``
    (−1: no limit). E.g. ``skip=100`` on ImageNet's 50,000 validation images gives 500."""
    if skip < 1:
        raise ValueError("skip must be ≥ 1")
    stop = length if max_index < 0 else min(length, max_index)
    return list(range(0, stop, skip))


def inputs_per_group(n0: int, n: int, batch_size: int) -> int:
    """How many inputs to certify together: enough to fill batches when n0 (or n) is small,
    few enough that rows still appear often when n is large."""
    return max(1, min(batch_size // max(n0, 1), max(1, 4 * batch_size // n), 64))


def run_records(
    kind: str,
    smooth: Smooth,
    dataset: Dataset,
    indices: list[int],
    out: str | os.PathLike,
    *,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = 0.001,
    batch_size: int = 1000,
    seed: int = 0,
    progress: bool = True,
    transform: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None,
) -> Path:
    """Write certification (``kind='certify'``) or prediction (``kind='predict'``) records.

    Resumes: rows already in ``out`` (or in this rank's part file) are skipped.
    ``transform(x, y) -> x'`` (used by ``attack``) replaces each batch of inputs before PREDICT;
    ``basePredict`` is the base classifier's prediction on the point PREDICT sees.
    Returns the path of the record file.
    """
    out = Path(out)
    world, rank = D.world_size(), D.rank()
    columns = CERTIFY_COLUMNS if kind == "certify" else PREDICT_COLUMNS
    target = out if world == 1 else D.part_path(out, rank)
    done: set[int] = set()
    if world > 1 and out.exists() and out.stat().st_size > 0:
        done = set(read_records(out)["idx"].tolist())
    writer = RecordWriter(target, columns)
    todo = [i for i in D.shard(indices) if i not in done and i not in writer.done]
    group = inputs_per_group(n0 if kind == "certify" else n, n, batch_size)
    bar = tqdm(total=len(todo), desc=kind, unit="input", disable=not progress or rank != 0,
               dynamic_ncols=True)
    device = smooth.device
    try:
        for start in range(0, len(todo), group):
            chunk = todo[start : start + group]
            items = [dataset[i] for i in chunk]
            xs = torch.stack([x for x, _ in items]).to(device)
            ys = torch.tensor([y for _, y in items])
            seeds = [input_seed(seed, i) for i in chunk]
            t0 = time.perf_counter()
            if transform is not None:
                xs = transform(xs, ys.to(device)).detach()
            if kind == "certify":
                results = smooth.certify_many(xs, n0, n, alpha, batch_size, seeds)
            else:
                results = smooth.predict_many(xs, n, alpha, batch_size, seeds)
                with eval_mode(smooth.base_classifier), torch.inference_mode():
                    base = smooth.base_classifier(xs).argmax(1).cpu().tolist()
            elapsed = format_time((time.perf_counter() - t0) / len(chunk))
            for j, (idx, label, res) in enumerate(zip(chunk, ys.tolist(), results)):
                correct = int(res.prediction == label)
                if kind == "certify":
                    writer.write(idx, label, res.prediction, res.radius, correct, elapsed)
                else:
                    writer.write(idx, label, res.prediction, base[j], correct, elapsed)
            bar.update(len(chunk))
            bar.set_postfix(last=_describe(kind, results[-1]))
    finally:
        bar.close()
        writer.close()
    if world > 1:
        D.barrier()
        if rank == 0:
            D.merge_record_parts(out, world)
        D.barrier()
    return out


def _describe(kind: str, res) -> str:
    if res.prediction == ABSTAIN:
        return "abstain"
    return f"{res.prediction} r={res.radius:.3f}" if kind == "certify" else str(res.prediction)
