"""Certify or predict a selection of a dataset, writing one record row per input.

Used by ``smoothadv certify``/``predict`` and by the demo. Under ``torchrun`` each rank takes
its share of the inputs and writes a part file; rank 0 merges them in idx order. Input
``idx`` draws its noise from ``input_seed(seed, idx)``, so the rows do not depend on the
number of processes, on resuming, or on which inputs share a batch.
"""

from __future__ import annotations

import inspect
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn
from torch.utils.data import Dataset
from tqdm import tqdm

from ..errors import UserError
from ..noise import DEFAULT_TEMPLATE
from ..runtime import distributed as D
from ..runtime.forecast import Forecast
from ..smoothing.sequential import SequentialCertifier
from ..smoothing.smooth import ABSTAIN, Smooth, eval_mode, input_seed
from .files import (
    CERTIFY_COLUMNS,
    PREDICT_COLUMNS,
    RecordWriter,
    format_radius,
    format_time,
    read_records,
)
from .watch import RecordWatch


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


ATTACK_COLUMNS = PREDICT_COLUMNS + ("cleanPredict", "l2")
SEQUENTIAL_COLUMNS = CERTIFY_COLUMNS + ("samples", "p_lower", "p_upper", "decisions")
AttackFn = Callable[[torch.Tensor, torch.Tensor, list[int]], torch.Tensor]


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
    attack: AttackFn | None = None,
    on_attacked: Callable[[list[int], torch.Tensor, torch.Tensor], None] | None = None,
    group: int | None = None,
    randomized: bool = False,
    certify_options: dict | None = None,
    watch: RecordWatch | None = None,
) -> Path:
    """Write certification (``kind='certify'``), prediction (``'predict'``) or empirical
    robustness (``'attack'``) records; returns the record file's path.

    ``attack(x, y, idxs) -> x_adv`` (kind 'attack') replaces each batch before PREDICT; the
    row's ``predict``/``basePredict`` are then g's and f's answers on x_adv, followed by
    ``cleanPredict`` (g on the clean input) and ``l2`` (‖x_adv − x‖₂). ``on_attacked`` sees
    every (idxs, x, x_adv). Resumes: rows already in ``out`` (or this rank's part file) are
    skipped. ``group`` inputs are processed together (default: chosen from n0, n, batch).
    ``randomized`` certifies with the randomized Clopper–Pearson bound; ``certify_options``
    (``two_sided``, ``box``) go to :meth:`Smooth.certify_many`, and ``derandomized`` certifies
    with :meth:`Smooth.certify_derandomized` instead. ``watch`` is given each batch of rows
    (running figures for loggers). With ``progress``, once the first inputs have been timed,
    one line says how long the whole selection will take (:class:`Forecast`).
    """
    certify_options = dict(certify_options or {})
    derandomized = certify_options.pop("derandomized", False)
    template = certify_options.pop("template", None)
    if kind not in ("certify", "predict", "attack"):
        raise ValueError(f"unknown record kind {kind!r}")
    if (kind == "attack") != (attack is not None):
        raise ValueError("kind 'attack' needs an attack function, and only it")
    out = Path(out)
    columns = {"certify": CERTIFY_COLUMNS, "predict": PREDICT_COLUMNS,
               "attack": ATTACK_COLUMNS}[kind]
    writer, todo = _open_records(out, columns, indices)
    rank = D.rank()
    if group is None:
        group = inputs_per_group(n0 if kind == "certify" else n, n, batch_size)
    bar = tqdm(total=len(todo), desc=kind, unit="input", disable=not progress or rank != 0,
               dynamic_ncols=True, mininterval=0.5)
    device = smooth.device
    forecast = _forecast(kind, len(todo), progress)
    per_input = _samples_per_input(kind, n0, n, smooth, derandomized)
    with D.working_on(out):
        try:
            for start in range(0, len(todo), group):
                chunk = todo[start : start + group]
                items = [dataset[i] for i in chunk]
                xs = torch.stack([x for x, _ in items])  # as loaded (certify moves it itself)
                ys = torch.tensor([y for _, y in items])
                seeds = [input_seed(seed, i) for i in chunk]
                t0 = time.perf_counter()
                if kind == "certify" and derandomized:
                    results = smooth.certify_derandomized(xs, batch_size,
                                                          template or DEFAULT_TEMPLATE)
                elif kind == "certify":
                    results = smooth.certify_many(xs, n0, n, alpha, batch_size, seeds,
                                                  randomized=randomized, **certify_options)
                else:
                    xs = xs.to(device, non_blocking=True)
                    x_eval = xs
                    if attack is not None:
                        x_eval = attack(xs, ys.to(device), chunk).detach()
                        if on_attacked is not None:
                            on_attacked(chunk, xs, x_eval)
                        clean = smooth.predict_many(xs, n, alpha, batch_size, seeds)
                        l2 = (x_eval - xs).flatten(1).norm(dim=1).cpu().tolist()
                    results = smooth.predict_many(x_eval, n, alpha, batch_size, seeds)
                    with eval_mode(smooth.base_classifier), torch.inference_mode():
                        base = smooth.base_classifier(x_eval).argmax(1).cpu().tolist()
                elapsed = format_time((time.perf_counter() - t0) / len(chunk))
                for j, (idx, label, res) in enumerate(zip(chunk, ys.tolist(), results)):
                    correct = int(res.prediction == label)
                    if kind == "certify":
                        writer.write(idx, label, res.prediction, format_radius(res.radius), correct,
                                     elapsed)
                    elif kind == "predict":
                        writer.write(idx, label, res.prediction, base[j], correct, elapsed)
                    else:
                        writer.write(idx, label, res.prediction, base[j], correct, elapsed,
                                     clean[j].prediction, f"{l2[j]:.6f}")
                bar.update(len(chunk))
                bar.set_postfix(last=_describe(kind, results[-1]), refresh=False)
                if forecast is not None:
                    forecast.done(start + len(chunk))
                if watch is not None:
                    watch.add([(r.prediction, label, _radius(r)) for label, r
                               in zip(ys.tolist(), results)], per_input * len(chunk),
                              time.perf_counter() - t0)
        finally:
            bar.close()
            writer.close()
            if watch is not None:
                watch.close()
    _merge(out)
    return out


def _say(message: str) -> None:
    tqdm.write(f"smoothadv: {message}", file=sys.stderr)


def _forecast(kind: str, inputs: int, progress: bool, varies: bool = False) -> Forecast | None:
    """The forecast of ``inputs`` inputs (rank 0; said with ``progress``, always published)."""
    if D.rank() != 0:
        return None
    return Forecast(kind, inputs, "input", say=_say if progress else None, varies=varies)


def _samples_per_input(kind: str, n0: int, n: int, smooth: Smooth, derandomized: bool) -> int:
    """Noisy samples classified per input (the attack's own passes not counted)."""
    if kind == "certify":
        return smooth.noise.offsets_count if derandomized else n0 + n
    return 2 * n if kind == "attack" else n


def _radius(result) -> float:
    """The radius as the record holds it (rounded down), for the running figures; 0 where a
    row has none."""
    radius = getattr(result, "radius", None)
    if radius is None or radius != radius:
        return 0.0
    return max(float(format_radius(radius)), 0.0)


SHARED_SAMPLING = ("n0", "n", "alpha", "batch_size", "seed", "progress", "watch")


def run_shared_records(
    smooth: Smooth,
    models: Sequence[nn.Module],
    dataset: Dataset,
    indices: list[int],
    outs: Sequence[str | os.PathLike],
    **sampling: Any,
) -> list[Path]:
    """Certification records of M base classifiers at once (``models[m]`` into ``outs[m]``),
    each model classifying the same noisy samples (:meth:`Smooth.certify_shared`): every
    record equals, row for row, the one :func:`run_records` writes for that model alone with
    this seed, except for the ``time`` column (the group's time split evenly over the models).
    ``sampling``: the keywords :data:`SHARED_SAMPLING` of :func:`run_records` (n0, n, α, the
    batch, the seed, progress; ``watch`` a sequence of one watch or None per model), with its
    defaults. Resumes: an index is certified again only
    where some record lacks it, and written only there. One process (not under torchrun)."""
    unknown = sorted(set(sampling) - set(SHARED_SAMPLING))
    if unknown:
        raise TypeError(f"run_shared_records takes {', '.join(SHARED_SAMPLING)}, not "
                        f"{', '.join(unknown)}")
    defaults = inspect.signature(run_records).parameters
    o = {k: sampling.get(k, defaults[k].default) for k in SHARED_SAMPLING}
    watches = list(o["watch"] or [None] * len(models))
    n0, n, alpha, batch_size, seed = o["n0"], o["n"], o["alpha"], o["batch_size"], o["seed"]
    if len(models) != len(outs) or not models:
        raise ValueError("need one record path per model")
    if D.world_size() > 1:
        raise UserError("shared certification runs in one process; certify each model under "
                        "torchrun instead")
    outs = [Path(o) for o in outs]
    opened = [_open_records(out, CERTIFY_COLUMNS, indices) for out in outs]
    missing = [set(todo) for _, todo in opened]
    todo = [i for i in indices if any(i in m for m in missing)]
    group = inputs_per_group(n0, n, batch_size)
    bar = tqdm(total=len(todo), desc=f"certify ×{len(models)}", unit="input",
               disable=not o["progress"], dynamic_ncols=True, mininterval=0.5)
    forecast = _forecast(f"certify ×{len(models)}", len(todo), o["progress"])
    try:
        for start in range(0, len(todo), group):
            chunk = todo[start : start + group]
            items = [dataset[i] for i in chunk]
            xs = torch.stack([x for x, _ in items])
            labels = [y for _, y in items]
            t0 = time.perf_counter()
            results = smooth.certify_shared(models, xs, n0, n, alpha, batch_size,
                                            [input_seed(seed, i) for i in chunk])
            elapsed = format_time((time.perf_counter() - t0) / len(chunk) / len(models))
            seconds = time.perf_counter() - t0
            for (writer, _), todo_m, res_m, watch in zip(opened, missing, results, watches):
                rows = []
                for idx, label, res in zip(chunk, labels, res_m):
                    if idx in todo_m:
                        writer.write(idx, label, res.prediction, format_radius(res.radius),
                                     int(res.prediction == label), elapsed)
                        rows.append((res.prediction, label, _radius(res)))
                if watch is not None:
                    watch.add(rows, (n0 + n) * len(rows), seconds * len(rows) / len(chunk))
            bar.update(len(chunk))
            if forecast is not None:
                forecast.done(start + len(chunk))
    finally:
        bar.close()
        for (writer, _), watch in zip(opened, watches):
            writer.close()
            if watch is not None:
                watch.close()
    return outs


def _open_records(out: Path, columns: tuple[str, ...],
                  indices: list[int]) -> tuple[RecordWriter, list[int]]:
    """This rank's writer (``out`` alone, or its part file under torchrun) and the indices of
    its share that no earlier run has written."""
    world, rank = D.world_size(), D.rank()
    target = out if world == 1 else D.part_path(out, rank)
    if world > 1:
        if rank == 0:  # markers of an interrupted run (perhaps of another world size)
            for marker in ("done", "alive", "failed"):
                for stale in out.parent.glob(f"{out.name}.{marker}*"):
                    stale.unlink(missing_ok=True)
            out.with_name(out.name + ".merge-lock").unlink(missing_ok=True)
        D.barrier()  # every rank starts together: no marker of this run is removed
    done: set[int] = set()
    if world > 1 and out.exists() and out.stat().st_size > 0:
        done = set(read_records(out)["idx"].tolist())
    writer = RecordWriter(target, columns)
    todo = [i for i in D.shard(indices) if i not in done and i not in writer.done]
    kept = len(done | writer.done)
    if kept and rank == 0:
        print(f"smoothadv: resuming {out}: {kept:,} rows kept, {len(todo):,} inputs to go"
              + ("" if world == 1 else " on this rank"), file=sys.stderr)
    return writer, todo


def _merge(out: Path) -> None:
    """Under torchrun: the last rank to finish merges the part files; rank 0 returns once they
    are merged, the others at once (no rank waits in a collective: shares of uneven work end
    at different times, hours apart on ImageNet)."""
    world = D.world_size()
    if world > 1:
        D.finish_parts(out, world, D.rank(), wait=D.rank() == 0)


def run_sequential_records(
    certifier: SequentialCertifier,
    dataset: Dataset,
    indices: list[int],
    out: str | os.PathLike,
    *,
    seed: int = 0,
    progress: bool = True,
    watch: RecordWatch | None = None,
) -> Path:
    """Sequential certification records
    (:class:`~smoothadv.smoothing.sequential.SequentialCertifier`): the certification columns
    (``radius`` = σΦ⁻¹(p_lower), rounded down) followed by
    ``samples`` (noise samples drawn), ``p_lower``, ``p_upper`` and ``decisions`` (C, N or U per
    radius of the run, comma-separated). Rows are written as inputs finish; input idx draws its
    noise from ``input_seed(seed, idx)``, so rows do not depend on packing, resuming or
    sharding (only their order does). ``watch``: as for :func:`run_records`."""
    out = Path(out)
    writer, todo = _open_records(out, SEQUENTIAL_COLUMNS, indices)
    bar = tqdm(total=len(todo), desc="certify (sequential)", unit="input",
               disable=not progress or D.rank() != 0, dynamic_ncols=True, mininterval=0.5)

    def items():
        """(key, x, label, seed) per input, admitted lazily; the key carries what its row
        needs: idx, label and the time the input was admitted."""
        for idx in todo:
            x, y = dataset[idx]
            yield (idx, y, time.perf_counter()), x, y, input_seed(seed, idx)

    forecast = _forecast("certify (sequential)", len(todo), progress, varies=True)
    last = time.perf_counter()
    with D.working_on(out):
        try:
            for count, ((idx, label, t0), res) in enumerate(certifier.run(items()), 1):
                elapsed = format_time(time.perf_counter() - t0)
                writer.write(idx, label, res.prediction, format_radius(res.radius),
                             int(res.prediction == label), elapsed, res.samples,
                             f"{res.p_lower:.8f}", f"{res.p_upper:.8f}", res.decision_text)
                bar.update(1)
                bar.set_postfix(last=f"{res.samples} samples", refresh=False)
                if forecast is not None:
                    forecast.done(count)
                if watch is not None:  # rows overlap in time: the wall time between rows
                    now = time.perf_counter()
                    watch.add([(res.prediction, label, _radius(res))], res.samples, now - last)
                    last = now
        finally:
            bar.close()
            writer.close()
            if watch is not None:
                watch.close()
    _merge(out)
    return out


def _describe(kind: str, res) -> str:
    if res.prediction == ABSTAIN:
        return "abstain"
    if kind == "certify":
        return f"{res.prediction} r={res.radius:.3f}"
    return str(res.prediction)
