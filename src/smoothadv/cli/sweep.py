"""``smoothadv sweep plan|run|status|report SWEEP.toml``: a grid of runs on this machine or on
a SLURM cluster, resumable, never doing the same stage twice (docs/sweeps.md)."""

from __future__ import annotations

import argparse

from .common import command

SLURM_OPTIONS = ("partition", "time", "gpus_per_task", "cpus_per_task", "mem", "account",
                 "qos", "array_parallelism", "tasks_per_node")


def _sweep_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["plan", "run", "status", "report"],
                   help="plan: every stage with its hash and whether it is done; run: execute "
                        "what is not done; status: done/running/queued/failed per stage; "
                        "report: report.md with tables, curves and comparisons")
    p.add_argument("sweep", help="the sweep file (TOML; see docs/sweeps.md)")
    p.add_argument("--engine", default="local", choices=["local", "slurm"],
                   help="local (a pool of processes here; default) or slurm (submitit)")
    p.add_argument("--workers", type=int, default=None,
                   help="local: stages at once (default: one per visible GPU, else 1)")
    from .common import add_shared

    add_shared(p, "--log")
    g = p.add_argument_group("slurm engine", "resources of each job (submitit's options)")
    g.add_argument("--partition", default=None, help="SLURM partition")
    g.add_argument("--time", type=int, default=60, help="time limit per job, minutes (60)")
    g.add_argument("--gpus-per-task", type=int, default=None, help="GPUs per task")
    g.add_argument("--cpus-per-task", type=int, default=None, help="CPUs per task")
    g.add_argument("--tasks-per-node", type=int, default=1,
                   help="tasks (processes) per job: more than one runs the stage under "
                        "torch.distributed, one task per GPU (1)")
    g.add_argument("--mem", default=None, help="memory per job, e.g. 16G")
    g.add_argument("--account", default=None, help="SLURM account")
    g.add_argument("--qos", default=None, help="SLURM quality of service")
    g.add_argument("--array-parallelism", type=int, default=None,
                   help="at most this many jobs of the sweep at once")
    g.add_argument("--sbatch", action="append", default=[], metavar="KEY=VALUE",
                   help="an extra #SBATCH option, e.g. --sbatch constraint=a100 (repeatable)")


@command("sweep", "a grid of runs (recipes, or methods × σ × seeds × …): plan, run on this "
         "machine or SLURM, status, report", _sweep_args)
def run_sweep(args: argparse.Namespace) -> int:
    import sys

    from ..errors import UserError
    from ..sweep import (
        Ledger,
        adopt_earlier_names,
        build_plan,
        load_sweep,
        run_local,
        status_table,
        write_report,
    )
    from ..sweep.jobs import is_done
    from ..sweep.plan import describe

    sweep = load_sweep(args.sweep)
    plan = build_plan(sweep)
    adopt_earlier_names(plan, sweep.out, say=lambda line: print(line, file=sys.stderr))
    ledger = Ledger(sweep.out)
    slurm = None
    if args.engine == "slurm" or args.action == "status":
        from ..sweep.slurm import SlurmEngine, slurm_available

        if args.engine == "slurm" or slurm_available(quiet=True):
            slurm = SlurmEngine(sweep.out, {k: getattr(args, k) for k in SLURM_OPTIONS},
                                dict(kv.split("=", 1) for kv in args.sbatch))
    if args.action == "plan":
        for key, job in plan.jobs.items():
            state = "done" if is_done(job) else "todo"
            deps = f" ← {', '.join(job.deps)}" if job.deps else ""
            print(f"{key}  {state:4s}  {describe(job)}  [{len(job.runs)} run(s)]{deps}")
        print(f"{len(plan.jobs)} stages for {len(plan.runs)} runs in {sweep.out}")
        return 0
    if args.action == "status":
        queued = slurm.queued(plan, ledger) if slurm is not None else None
        print(status_table(plan, ledger, queued))
        return 0
    if args.action == "report":
        path = write_report(plan, sweep.out)
        print(f"report: {path}")
        return 0
    if args.log:
        from ..runtime.loggers import check_loggers
        from ..sweep.plan import log_to

        check_loggers(tuple(args.log))
        log_to(plan, args.log)
    if args.engine == "local":
        ok = run_local(plan, ledger, args.workers)
    else:
        ok = slurm.run(plan, ledger)
    print(status_table(plan, ledger))
    if not ok:
        raise UserError("some stages failed (see the table); fix and run the same sweep again "
                        "— what is done is not run again")
    return 0
