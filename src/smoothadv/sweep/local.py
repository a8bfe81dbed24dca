"""The local engine: a pool of worker processes on this machine, dependencies respected.

Each worker is started once (torch imported once), so a stage costs its own time plus a
queue hand-off. On a CPU ``workers`` processes share the cores (each gets ⌊cores / workers⌋
threads); with GPUs there is one worker per visible GPU, each pinned to its own. Workers die
with the runner (``PR_SET_PDEATHSIG``): a runner killed with ``kill -9`` leaves no stage
running, and ``sweep run`` again resumes each stage from its checkpoint or record file. A
failing stage marks its dependents blocked and the others go on. Ctrl-C is the runner's alone:
workers are started with SIGINT ignored (a terminal sends it to the whole process group), so
they print no traceback of their own; the runner kills them and says one line.
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator

from .jobs import (
    BUSY,
    execute,
    finished_by_group,
    is_done,
    last_error,
    lock_held,
    write_job_file,
)
from .ledger import Ledger, drop_blocked
from .outlook import Outlook, stage_count
from .plan import Plan


def init_worker(threads: int, gpus: multiprocessing.Queue | None) -> None:
    """Die with the runner; claim a GPU when there are some; size torch's thread pool."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:  # pragma: no cover - not Linux
        pass
    if gpus is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = str(gpus.get())
    import torch

    torch.set_num_threads(max(1, threads))


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT while a worker is spawned, so that the child inherits the disposition.

    An ignored signal stays ignored across ``exec`` and Python keeps it so; the runner alone
    answers Ctrl-C. Off the main thread (where handlers cannot change) this does nothing.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def worker_gpus(count: int, visible: str | None = None) -> list[str]:
    """The GPUs the runner was given, as ``CUDA_VISIBLE_DEVICES`` entries for its workers: the
    runner's own ``CUDA_VISIBLE_DEVICES`` (``visible``; indices, GPU or MIG UUIDs — a SLURM
    allocation sets it too), else 0 … ``count`` − 1. A worker is pinned to one of them, never
    to a GPU outside them."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES") if visible is None else visible
    if visible is None:
        return [str(g) for g in range(count)]
    entries = [v.strip() for v in visible.split(",") if v.strip()]
    return entries[:count]


def _timed(path: str) -> tuple[int, float]:
    """(exit status, seconds) of one job in a worker."""
    t0 = time.perf_counter()
    code = execute(path)
    return code, time.perf_counter() - t0


def default_workers() -> int:
    """One per visible GPU, else one."""
    try:
        import torch

        return max(1, torch.cuda.device_count())
    except Exception:  # noqa: BLE001 - no torch CUDA at all
        return 1


def run_local(plan: Plan, ledger: Ledger, workers: int | None = None,
              say: Callable[[str], None] = print, poll: float = 0.05) -> bool:
    """Run every job of ``plan`` that is not done; returns whether all are done."""
    import torch

    gpus = torch.cuda.device_count()
    workers = workers or default_workers()
    jobs = plan.jobs
    done = {k for k, j in jobs.items() if is_done(j)}
    todo = [k for k in jobs if k not in done]
    failed: set[str] = set()
    if not todo:
        return True
    context = multiprocessing.get_context("spawn")
    queue = None
    if gpus:
        queue = context.Queue()
        given = worker_gpus(gpus)
        for g in given:
            queue.put(g)
        workers = min(workers, len(given))
    from ..runtime.distributed import available_cpus

    threads = max(1, available_cpus() // workers)
    say(stage_count(jobs, todo, len(done), f"{workers} worker(s)"))
    outlook = Outlook(jobs, workers)
    started: dict[str, float] = {}
    pool = cf.ProcessPoolExecutor(max_workers=workers, mp_context=context,
                                  initializer=init_worker, initargs=(threads, queue))
    running: dict[cf.Future, str] = {}
    waiting: set[str] = set()  # held by another process (a job left running elsewhere)
    try:
        while todo or running:
            drop_blocked(ledger, todo, jobs, failed)
            for key in list(todo):
                job = jobs[key]
                if len(running) >= workers or not all(d in done for d in job.deps):
                    continue
                if finished_by_group(key, jobs, todo, done, ledger):
                    continue
                if lock_held(job.folder):
                    if key not in waiting:
                        say(f"{key}: running in another process; waiting for it")
                    waiting.add(key)
                    continue
                todo.remove(key)
                path = write_job_file(job, jobs)
                ledger.update(key, status="running", engine="local", started=time.time(),
                              attempts=ledger.get(key).get("attempts", 0) + 1)
                with sigint_ignored():  # the pool spawns its workers on submit
                    running[pool.submit(_timed, str(path))] = key
                started[key] = time.time()
                say(f"{key}: started")
            for key in list(waiting):  # a job another process held: done, or ours now
                if not lock_held(jobs[key].folder):
                    waiting.discard(key)
                    if is_done(jobs[key]):
                        todo.remove(key)
                        done.add(key)
                        ledger.update(key, status="done")
            if not running:
                if waiting:
                    time.sleep(0.5)
                    continue
                if todo and not any(all(d in done for d in jobs[k].deps) for k in todo):
                    break
                continue
            finished, _ = cf.wait(running, timeout=poll, return_when=cf.FIRST_COMPLETED)
            for future in finished:
                key = running.pop(future)
                job = jobs[key]
                code, seconds = future.result()
                started.pop(key, None)
                if code == BUSY:
                    todo.append(key)
                    continue
                if code == 0 and is_done(job):
                    done.add(key)
                    ledger.update(key, status="done", finished=time.time(), error="",
                                  seconds=seconds)
                    outlook.finished(key, seconds)
                    say(f"{key}: done")
                else:
                    failed.add(key)
                    line = last_error(job) or f"exit {code}"
                    ledger.update(key, status="failed", finished=time.time(), error=line)
                    say(f"{key}: FAILED: {line}")
            if todo or len(started) > 1:
                line = outlook.say_now(started, todo)
                if line:
                    say(line)
    except KeyboardInterrupt:
        say("interrupted: stopping the workers; run the same command again to continue "
            "(finished stages are kept)")
        for future, key in running.items():
            future.cancel()
            ledger.update(key, status="todo")
        for process in list(getattr(pool, "_processes", {}).values()):
            process.kill()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
    return not failed and all(k in done for k in jobs)
