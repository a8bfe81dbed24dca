"""Helpers for ``torchrun``: rank, world size, devices, process groups, sharding, merging
records and summing metrics over ranks.

A plain ``python -m smoothadv …`` is one process (rank 0 of 1) and touches no process group.

Devices: one GPU per rank, decided before any process group starts (:func:`resolve_device`):
under torchrun rank r of the node takes GPU r (``cuda:N``: N + r), more ranks than GPUs are
refused in one line; under srun with per-task GPU binding each task takes the one GPU it sees.
Alone, ``cuda`` is GPU 0 and ``cuda:N`` GPU N, made the current device (pinned memory and
synchronisation then touch that GPU, not GPU 0).

Timeouts: the process group is created with a timeout of :data:`DEFAULT_TIMEOUT_MINUTES`
(``SMOOTHADV_DIST_TIMEOUT`` minutes, or the ``--dist-timeout`` of a command), not NCCL's
10 minutes: a collective may wait for another rank's checkpoint write or its share of an
uneven evaluation. Certification's ranks never wait in a collective at all: each writes its
part file, and the last rank to finish merges them (:func:`finish_parts`); rank 0, which waits
for the merge, stops waiting with a one-line error when another rank failed or died
(:func:`working_on`).
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import torch
import torch.distributed as dist

from ..errors import UserError


def world_size() -> int:
    """Number of processes (``WORLD_SIZE`` set by torchrun; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (``RANK``; 0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    """This process's rank on its node (``LOCAL_RANK``; 0 otherwise)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


DEFAULT_TIMEOUT_MINUTES = 120.0


def available_cpus(environ: dict[str, str] | None = None) -> int:
    """The CPU cores this process's task may use: a SLURM task's ``SLURM_CPUS_PER_TASK``, else
    the cores the process is bound to (its affinity: a cgroup's or ``taskset``'s share), else
    the machine's. Ranks that torchrun starts inside one task share them."""
    environ = os.environ if environ is None else environ
    text = environ.get("SLURM_CPUS_PER_TASK", "")
    if text.isdigit() and int(text) > 0:
        return int(text)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def launcher(environ: dict[str, str] | None = None) -> str:
    """Who started this process: ``torchrun`` (it sets ``TORCHELASTIC_RUN_ID`` and
    ``LOCAL_WORLD_SIZE``), ``srun`` (a SLURM task of a multi-task step, as the sweep's SLURM
    engine starts them: ``WORLD_SIZE`` > 1 without torchrun's variables) or ``alone``."""
    environ = os.environ if environ is None else environ
    if int(environ.get("WORLD_SIZE", "1")) <= 1:
        return "alone"
    if "TORCHELASTIC_RUN_ID" in environ or "LOCAL_WORLD_SIZE" in environ:
        return "torchrun"
    return "srun"


def resolve_device(name: str, *, cuda_count: int | None = None,
                   distributed: bool | None = None,
                   environ: dict[str, str] | None = None) -> torch.device:
    """The device of this process for ``--device name``; one GPU per rank, decided before any
    process group starts (docs/distributed.md has the table).

    Alone: ``auto`` is GPU 0 when there is one, else the CPU; ``cuda`` GPU 0; ``cuda:N`` GPU N.
    Under torchrun (every rank sees the node's GPUs): rank r of the node takes GPU r (``auto``,
    ``cuda``) or N + r (``cuda:N``, so two jobs can share a node out); more ranks on the node
    than GPUs are refused in one line (NCCL takes one GPU per rank). Under srun with per-task
    binding (each task sees only its own GPU) every task takes the one it sees; without binding
    (each sees the node's), as torchrun. ``cpu``: the CPU. Always a CUDA device with an index,
    so that ``torch.cuda.set_device`` and DDP's ``device_ids`` take it. ``cuda_count``,
    ``distributed`` and ``environ`` replace what the machine and environment say (tests)."""
    environ = os.environ if environ is None else environ
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    count = count if cuda_count is None else cuda_count
    world = int(environ.get("WORLD_SIZE", "1"))
    distributed = world > 1 if distributed is None else distributed
    local = int(environ.get("LOCAL_RANK", "0")) if distributed else 0
    how = launcher(environ) if distributed else "alone"
    if how == "alone" and distributed:
        how = "torchrun"
    if name == "auto" and count == 0:
        return torch.device("cpu")
    try:
        device = torch.device("cuda" if name == "auto" else name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise UserError(f"unsupported device {name!r}; use auto, cpu, cuda or cuda:N")
    if count == 0:
        raise UserError(f"--device {name} asked for, but CUDA is not available")
    first = device.index or 0
    if how == "srun" and count == 1:  # per-task binding: the task's own GPU, whatever its rank
        if first:
            raise UserError(f"--device {name}: this SLURM task sees one GPU (per-task binding); "
                            "give --device cuda or auto")
        return torch.device("cuda", 0)
    index = first + local
    here = int(environ.get("LOCAL_WORLD_SIZE", "0") or 0) if how == "torchrun" else 0
    if here > count - first:
        raise UserError(f"--device {name}: {here} ranks on this node but "
                        f"{max(count - first, 0)} GPU(s) for them; NCCL takes one GPU per rank: "
                        f"start at most {max(count - first, 0)} ranks per node, or give --device "
                        "cpu")
    if index >= count:
        where = f" (local rank {local})" if distributed else ""
        raise UserError(f"--device {name}{where} needs GPU {index}, but this node has {count}")
    return torch.device("cuda", index)


def env_positive(name: str, default: float, unit: str, value: float | None = None) -> float:
    """``value``, else the environment variable ``name``, else ``default``: a number > 0 of
    ``unit`` (one-line errors naming the variable)."""
    if value is None:
        text = os.environ.get(name)
        try:
            value = default if text is None else float(text)
        except ValueError:
            raise UserError(f"{name} must be {unit}, got {text!r}") from None
    if not value > 0:
        raise UserError(f"{name} must be > 0 {unit}, got {value}")
    return float(value)


def timeout_minutes(value: float | None = None) -> float:
    """The process group's timeout: ``value``, else ``SMOOTHADV_DIST_TIMEOUT``, else
    :data:`DEFAULT_TIMEOUT_MINUTES` (minutes, > 0)."""
    return env_positive("SMOOTHADV_DIST_TIMEOUT", DEFAULT_TIMEOUT_MINUTES, "minutes", value)


def init_process_group(device: torch.device, timeout: float | None = None) -> bool:
    """Join the torchrun process group (NCCL on CUDA, gloo on CPU) with a timeout of
    :func:`timeout_minutes` (``timeout``); False when not distributed. On CUDA the process's
    GPU becomes the current device first (NCCL needs one GPU per rank)."""
    if world_size() == 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        kwargs = {"timeout": datetime.timedelta(minutes=timeout_minutes(timeout))}
        if device.type == "cuda":
            kwargs["device_id"] = device  # binds NCCL to this GPU (eager init)
        try:
            dist.init_process_group(backend=backend, **kwargs)
        except TypeError:  # torch < 2.3 has no device_id
            kwargs.pop("device_id", None)
            dist.init_process_group(backend=backend, **kwargs)
    return True


def setup_device(name: str, *, precision: str = "fp32", deterministic: bool = False,
                 timeout: float | None = None, join: bool = True) -> torch.device:
    """What every stage does first: this process's device (:func:`resolve_device`), the
    backend flags (:func:`smoothadv.runtime.backends.configure`), and with ``join`` the torchrun
    process group (:func:`init_process_group`, ``timeout`` minutes)."""
    from .backends import configure

    device = resolve_device(name)
    if device.type == "cuda":  # cuda:N alone too: pinning and synchronize then touch GPU N
        torch.cuda.set_device(device)
    configure(device, precision, deterministic)
    if join:
        init_process_group(device, timeout)
    return device


def sum_over_ranks(values: torch.Tensor) -> torch.Tensor:
    """``values`` (float64, any shape) summed over every rank (a copy, unchanged alone). One
    collective: on CUDA the tensor travels on the process's GPU."""
    if not (dist.is_available() and dist.is_initialized()):
        return values.clone()
    device = (torch.device("cuda", torch.cuda.current_device())
              if dist.get_backend() == "nccl" else torch.device("cpu"))
    total = values.to(device, torch.float64).clone()
    dist.all_reduce(total)
    return total.to(values.device)


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Give every rank rank 0's buffers of ``model`` (BatchNorm's running statistics): each
    rank updates its own in its last training forward, so they differ after a step, while the
    checkpoint holds rank 0's. Nothing alone."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    for buffer in model.buffers():
        dist.broadcast(buffer.data, src=0)


def all_ranks(flag: bool) -> bool:
    """Whether ``flag`` holds on every rank (one collective; ``flag`` alone): a decision that
    must be the same everywhere, such as compiled code that worked on every rank."""
    if not (dist.is_available() and dist.is_initialized()):
        return bool(flag)
    return bool(sum_over_ranks(torch.tensor([0.0 if flag else 1.0])).item() == 0)


def rank_zero_says(flag: bool) -> bool:
    """Rank 0's ``flag`` on every rank (one collective; ``flag`` alone): one decision for all,
    e.g. ``--compile auto``, which each rank would otherwise time on its own."""
    if not (dist.is_available() and dist.is_initialized()):
        return bool(flag)
    mine = torch.tensor([1.0 if (flag and is_main()) else 0.0], dtype=torch.float64)
    return bool(sum_over_ranks(mine).item() > 0)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def destroy_process_group() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(items: list, rank_: int | None = None, world: int | None = None) -> list:
    """Every ``world``-th item starting at ``rank_`` (a balanced, deterministic split)."""
    rank_ = rank() if rank_ is None else rank_
    world = world_size() if world is None else world
    return items[rank_::world]


def rank_file(out: str | os.PathLike, rank_: int, what: str) -> Path:
    """``OUT.<what><rank>``, beside ``out``: ``part`` (the rows rank ``rank_`` writes before
    they are merged into ``out``), ``done`` (left when its part is complete), ``alive``
    (touched while it works on it), ``failed`` (its one-line error)."""
    out = Path(out)
    return out.with_name(f"{out.name}.{what}{rank_}")


part_path = functools.partial(rank_file, what="part")
done_marker = functools.partial(rank_file, what="done")
alive_marker = functools.partial(rank_file, what="alive")
failed_marker = functools.partial(rank_file, what="failed")


def stale_seconds() -> float:
    """How long a rank may give no sign of life before the ranks waiting for it give up:
    ``SMOOTHADV_RANK_STALE`` seconds, else :data:`STALE_SECONDS`."""
    return env_positive("SMOOTHADV_RANK_STALE", STALE_SECONDS, "seconds")


STALE_SECONDS = 120.0


@contextlib.contextmanager
def working_on(out: str | os.PathLike) -> Iterator[None]:
    """While this rank writes its part of ``out`` under torchrun or srun: a thread touches
    :func:`alive_marker` every third of :func:`stale_seconds` (a process that dies, even by
    SIGKILL for memory, stops touching it), and an error leaves :func:`failed_marker` with its
    line, so that rank 0 waiting in :func:`finish_parts` fails at once instead of waiting
    for ever. Alone, nothing."""
    world, rank_ = world_size(), rank()
    if world == 1:
        yield
        return
    alive, failed = alive_marker(out, rank_), failed_marker(out, rank_)
    failed.unlink(missing_ok=True)
    alive.touch()
    stop = threading.Event()
    interval = stale_seconds() / 3

    def beat() -> None:
        while not stop.wait(interval):
            alive.touch()

    thread = threading.Thread(target=beat, name=f"smoothadv-alive{rank_}", daemon=True)
    thread.start()
    try:
        yield
    except BaseException as err:
        line = str(err).splitlines()[0] if str(err) else type(err).__name__
        failed.write_text(f"{type(err).__name__}: {line}"[:300] + "\n", encoding="utf-8")
        raise
    finally:
        stop.set()
        thread.join()
    alive.unlink(missing_ok=True)  # its part is written: finish_parts' done marker says so


def _check_others(out: Path, world: int, stale: float) -> None:
    """Refuse, in one line, to wait for a rank whose part of ``out`` failed or that has given
    no sign of life for ``stale`` seconds (its part is not done)."""
    for r in range(world):
        if done_marker(out, r).exists():
            continue
        failed = failed_marker(out, r)
        if failed.exists():
            raise UserError(f"rank {r} failed on its part of {out} "
                            f"({failed.read_text(encoding='utf-8').strip()}); the finished "
                            "parts are kept: run the same command again to resume")
        try:
            quiet = time.time() - alive_marker(out, r).stat().st_mtime
        except FileNotFoundError:
            continue  # not started yet: the barrier before the parts saw it alive
        if quiet > stale:
            raise UserError(f"rank {r} has given no sign of life for {quiet:.0f} s (killed, e.g. "
                            f"for memory?) and its part of {out} is not done; the finished "
                            "parts are kept: run the same command again to resume")


def finish_parts(out: str | os.PathLike, world: int, rank_: int, *, wait: bool,
                 poll_seconds: float = 1.0) -> bool:
    """Mark rank ``rank_``'s part of ``out`` complete; the rank that finds every part complete
    merges them (:func:`merge_record_parts`). No collective: a rank that finishes early does
    not sit in a barrier (where NCCL's watchdog would end the job). With ``wait`` (rank 0, whose
    caller reads ``out`` next) the call returns only once ``out`` is merged, polling the files;
    a rank that failed or died meanwhile (:func:`working_on`) ends the wait with a one-line
    error, since under srun the other ranks are not ended with it. Returns whether this rank
    merged."""
    out = Path(out)
    stale = stale_seconds()
    done_marker(out, rank_).touch()
    merged = False
    if all(done_marker(out, r).exists() for r in range(world)):
        lock = out.with_name(out.name + ".merge-lock")
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            fd = None
        if fd is not None:
            os.close(fd)
            merge_record_parts(out, world)
            for r in range(world):
                done_marker(out, r).unlink(missing_ok=True)
            lock.unlink(missing_ok=True)
            merged = True
    while wait and (done_marker(out, rank_).exists()
                    or out.with_name(out.name + ".merge-lock").exists()):
        _check_others(out, world, stale)
        time.sleep(poll_seconds)
    return merged


def merge_record_parts(out: str | os.PathLike, world: int) -> None:
    """Merge ``out`` (rows of earlier runs, if any) and the part files into ``out``.

    Rows are sorted by idx (the first column), duplicates dropped; the result is written to
    a temporary file and renamed, then the part files are removed.
    """
    out = Path(out)
    sources = [out] + [part_path(out, r) for r in range(world)]
    header, rows = None, {}
    for src in sources:
        if not src.exists():
            continue
        lines = src.read_text(encoding="utf-8").splitlines()
        if not lines:
            continue
        if header is None:
            header = lines[0]
        elif lines[0] != header:
            raise UserError(f"{src} has another header than {out}")
        for line in lines[1:]:
            if line.strip():
                rows.setdefault(int(line.split("\t", 1)[0]), line)
    if header is None:
        return
    tmp = out.with_name(out.name + ".merging")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(header + "\n")
        for idx in sorted(rows):
            f.write(rows[idx] + "\n")
    os.replace(tmp, out)
    for r in range(world):
        part_path(out, r).unlink(missing_ok=True)
