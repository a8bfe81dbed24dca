"""The SLURM engine, through submitit.

The runner submits each job once its inputs are done (dependencies are kept by the runner, not
by SLURM), watches the submitted jobs with ``squeue`` and, when one has ended, asks its outputs
whether it is done. Each job runs :func:`smoothadv.sweep.jobs.execute` on its ``job.json``
inside a ``submitit.helpers.Checkpointable``, so that a job that reaches its time limit or is
pre-empted is requeued by submitit and resumes from its checkpoint or record file. A job with
``tasks_per_node`` > 1 runs the stage under torch.distributed inside its allocation (one task
per GPU; on CPUs, gloo): submitit's job environment gives each task RANK, WORLD_SIZE,
LOCAL_RANK and the master's address, which smoothadv's ``torchrun`` code reads.

The ledger keeps each submitted job's id: after the runner itself was killed, ``sweep run``
again watches the jobs still pending or running instead of submitting them twice, and
resubmits only what has ended without being done (cancelled, failed, past its limit).
SLURM's ``sacct`` is not needed by the engine (it reads ``squeue``); submitit's own state
queries (``job.state``, ``job.result()``) do use it, so a cluster without accounting needs a
stand-in (``scripts/local_slurm.py`` installs one).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import UserError
from .jobs import execute, finished_by_group, is_done, last_error, write_job_file
from .ledger import Ledger, drop_blocked
from .outlook import Outlook, stage_count
from .plan import Plan

ACTIVE = {"PENDING", "RUNNING", "CONFIGURING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD",
          "REQUEUE_FED", "SUSPENDED", "RESIZING", "SIGNALING", "STAGE_OUT"}


def slurm_available(quiet: bool = False) -> bool:
    """Whether ``sbatch`` is on PATH and submitit is installed; otherwise one line (unless
    ``quiet``)."""
    missing = []
    if shutil.which("sbatch") is None:
        missing.append("sbatch on PATH (a SLURM client)")
    try:
        import submitit  # noqa: F401
    except ImportError:
        missing.append("submitit (pip install 'smoothadv[sweep]')")
    if missing and not quiet:
        raise UserError("the slurm engine needs " + " and ".join(missing))
    return not missing


def _stage_job_class():
    import submitit

    class StageJob(submitit.helpers.Checkpointable):
        """One sweep job on SLURM: requeued from its checkpoint on time-out or pre-emption
        (submitit calls :meth:`checkpoint`, whose default resubmits the same call)."""

        def __call__(self, job_file: str) -> str:
            env = submitit.JobEnvironment()
            lock, owner = True, None
            if env.num_tasks > 1:
                os.environ.update(
                    RANK=str(env.global_rank), WORLD_SIZE=str(env.num_tasks),
                    LOCAL_RANK=str(env.local_rank), MASTER_ADDR=env.hostnames[0],
                    MASTER_PORT=str(20_000 + int(str(env.job_id).split("_")[0]) % 20_000))
                lock, owner = env.global_rank == 0, str(env.job_id)
            code = execute(job_file, lock=lock, owner=owner)
            if code != 0:
                log = Path(job_file).with_name("stage.log")
                tail = log.read_text(errors="replace").strip().splitlines()[-1:] if \
                    log.exists() else []
                raise RuntimeError(f"stage failed (exit {code}): {' '.join(tail)}")
            return "done"

    return StageJob


class SlurmEngine:
    """Submit, watch and resubmit a plan's jobs on SLURM (see the module docstring)."""

    def __init__(self, out: Path, options: dict[str, Any], extra: dict[str, str],
                 poll: float = 2.0) -> None:
        self.out = Path(out)
        self.options = options
        self.extra = extra
        self.poll = poll

    def executor(self):
        import submitit

        try:
            executor = submitit.AutoExecutor(folder=self.out / "slurm" / "%j", cluster="slurm")
        except RuntimeError as err:  # e.g. no srun: a SLURM client without the job launcher
            raise UserError(f"the slurm engine cannot start: {_first_line(err)}") from None
        o = self.options
        params: dict[str, Any] = dict(timeout_min=o.get("time") or 60,
                                      tasks_per_node=o.get("tasks_per_node") or 1, nodes=1)
        for key, name in (("partition", "slurm_partition"), ("gpus_per_task", "gpus_per_node"),
                          ("cpus_per_task", "cpus_per_task"), ("mem", "slurm_mem"),
                          ("account", "slurm_account"), ("qos", "slurm_qos"),
                          ("array_parallelism", "slurm_array_parallelism")):
            if o.get(key) is not None:
                value = o[key]
                if key == "gpus_per_task":
                    value = value * params["tasks_per_node"]
                params[name] = value
        if self.extra:
            params["slurm_additional_parameters"] = dict(self.extra)
        executor.update_parameters(**params)
        return executor

    @staticmethod
    def states(job_ids: list[str]) -> dict[str, str]:
        """{job id: SLURM state} from ``squeue`` (every state, finished ones included while
        SLURM keeps them); ids it does not know are left out."""
        if not job_ids:
            return {}
        proc = subprocess.run(["squeue", "-h", "-t", "all", "-j", ",".join(job_ids),
                               "-o", "%i|%T"], capture_output=True, text=True, check=False)
        out = {}
        for line in proc.stdout.splitlines():
            if "|" in line:
                jid, state = line.strip().split("|", 1)
                out[jid] = state
        return out

    def queued(self, plan: Plan, ledger: Ledger) -> dict[str, str]:
        """{job key: 'queued' or 'running'} for jobs SLURM holds as active."""
        ids = {ledger.get(k).get("job_id"): k for k in plan.jobs if ledger.get(k).get("job_id")}
        states = self.states([i for i in ids if i])
        return {ids[i]: ("running" if s in ("RUNNING", "COMPLETING") else "queued")
                for i, s in states.items() if s in ACTIVE}

    def run(self, plan: Plan, ledger: Ledger, say: Callable[[str], None] = print) -> bool:
        """Submit what is not done as its inputs finish; returns whether all are done."""
        slurm_available()
        stage_job = _stage_job_class()()
        executor = self.executor()
        jobs = plan.jobs
        done = {k for k, j in jobs.items() if is_done(j)}
        failed: set[str] = set()
        active: dict[str, str] = {}  # key → SLURM job id
        previous = {k: ledger.get(k).get("job_id") for k in jobs if k not in done}
        states = self.states([i for i in previous.values() if i])
        for key, jid in previous.items():
            if jid and states.get(jid) in ACTIVE:
                active[key] = jid  # left running by an earlier runner: watch, don't resubmit
                say(f"{key}: already on SLURM as job {jid} ({states[jid]})")
        todo = [k for k in jobs if k not in done and k not in active]
        parallel = self.options.get("array_parallelism") or len(jobs)
        say(stage_count(jobs, todo + list(active), len(done), "on SLURM"))
        outlook = Outlook(jobs, parallel, "on SLURM, not counting time in the queue")
        running_since: dict[str, float] = {}  # key → when it was first seen RUNNING
        while todo or active:
            drop_blocked(ledger, todo, jobs, failed)
            for key in list(todo):
                job = jobs[key]
                if not all(d in done for d in job.deps):
                    continue
                if finished_by_group(key, jobs, todo, done, ledger):
                    continue
                todo.remove(key)
                path = write_job_file(job, jobs)
                executor.update_parameters(name=f"smoothadv-{key}")
                try:
                    submitted = executor.submit(stage_job, str(path))
                except Exception as err:  # submitit raises on sbatch's failure (no controller)
                    raise UserError(f"sbatch could not submit {key}: "
                                    f"{_first_line(err)} (is slurmctld running and reachable? "
                                    "`sinfo` says)") from None
                active[key] = str(submitted.job_id)
                ledger.update(key, status="queued", engine="slurm", job_id=active[key],
                              attempts=ledger.get(key).get("attempts", 0) + 1,
                              started=time.time())
                say(f"{key}: submitted as job {active[key]}")
            if not active:
                break
            time.sleep(self.poll)
            states = self.states(list(active.values()))
            for key, jid in list(active.items()):
                state = states.get(jid, "GONE")
                if state == "RUNNING":
                    running_since.setdefault(key, time.time())
                if state in ACTIVE:
                    continue
                del active[key]
                job = jobs[key]
                started = running_since.pop(key, None)
                if is_done(job):
                    done.add(key)
                    ledger.update(key, status="done", finished=time.time(), error="")
                    if started is not None:
                        outlook.finished(key, time.time() - started)
                    say(f"{key}: done")
                else:
                    failed.add(key)
                    line = last_error(job) or f"SLURM state {state}"
                    ledger.update(key, status="failed", finished=time.time(),
                                  error=f"{state}: {line}"[:200])
                    say(f"{key}: {state}: {line}")
            waiting = [k for k in active if k not in running_since] + todo
            line = outlook.say_now(running_since, waiting)
            if line:
                say(line)
        return not failed and all(k in done for k in jobs)


def _first_line(err: Exception) -> str:
    """The first informative line of an exception's text (submitit's carry sbatch's whole
    output), for a one-line error."""
    lines = [ln.strip() for ln in str(err).splitlines() if ln.strip()]
    useful = [ln for ln in lines if "error" in ln.lower()] or lines or [type(err).__name__]
    return useful[0][:300]
