"""Run by tests/test_distributed.py in two gloo processes: the ranks' one-decision helpers."""

import os
import sys

import torch.distributed as dist

from smoothadv.runtime import distributed as D


def main() -> None:
    dist.init_process_group("gloo")
    rank = D.rank()
    results = [D.all_ranks(rank != 1), D.all_ranks(True), D.rank_zero_says(rank == 0),
               D.rank_zero_says(rank == 1)]
    print(f"rank {rank}: {results}", flush=True)
    dist.destroy_process_group()
    sys.exit(0 if results == [False, True, True, False] else 1)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
