"""Helpers for ``torchrun``: rank, world size, process groups, sharding and merging records.

A plain ``python -m smoothadv …`` is one process (rank 0 of 1) and touches no process group.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.distributed as dist

from .errors import UserError


def world_size() -> int:
    """Number of processes (``WORLD_SIZE`` set by torchrun; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    """This process's rank (``RANK``; 0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    return rank() == 0


def resolve_device(name: str) -> torch.device:
    """'auto' → this rank's CUDA device when CUDA is present, else the CPU; others as given."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank() % torch.cuda.device_count())
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda asked for, but CUDA is not available")
    return device


def init_process_group(device: torch.device) -> bool:
    """Join the torchrun process group (NCCL on CUDA, gloo on CPU); False when not distributed."""
    if world_size() == 1:
        return False
    if not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend=backend)
    return True


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


def part_path(out: str | os.PathLike, rank_: int) -> Path:
    """Where rank ``rank_`` writes its rows before they are merged into ``out``."""
    out = Path(out)
    return out.with_name(f"{out.name}.part{rank_}")


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
