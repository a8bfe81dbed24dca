"""A real single-node SLURM cluster on this machine, for trying the sweep's slurm engine and for
the tests: munged, slurmctld and slurmd bound to 127.0.0.1, all state under one folder.

    python scripts/local_slurm.py start DIR [--ctld-port 6817] [--d-port 6818]
    export SLURM_CONF=DIR/etc/slurm.conf PATH=DIR/bin:$PATH
    smoothadv sweep run grid.toml --engine slurm
    python scripts/local_slurm.py stop DIR

Needs Debian's ``slurm-wlm`` and ``munge`` (``apt-get install --no-install-recommends
slurm-wlm munge``) and root (the daemons run as root here). Without accounting there is no
``sacct``; ``DIR/bin/sacct`` stands in for the query submitit makes (job id, state, node list)
by asking ``squeue``, which keeps finished jobs for an hour (``MinJobAge``). ``stop`` cancels
every job, then ends the three daemons by the PIDs they wrote, and nothing else.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

DAEMONS = ("slurmd", "slurmctld", "munged")
NEEDED = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel")

SACCT = """#!/bin/sh
# a stand-in for sacct on a cluster without accounting: the fields submitit asks for
ids=""
while [ $# -gt 0 ]; do
  case "$1" in
    -j) ids="$2"; shift 2 ;;
    -j*) ids="${1#-j}"; shift ;;
    *) shift ;;
  esac
done
echo "JobID|State|NodeList"
[ -n "$ids" ] && squeue -h -r -t all -j "$ids" -o '%i|%T|%N'
exit 0
"""


def missing_tools() -> list[str]:
    """What this machine lacks to run the cluster (empty when it can)."""
    return [t for t in NEEDED if shutil.which(t) is None]


def config_text(d: Path, ctld_port: int, d_port: int) -> str:
    cpus = os.cpu_count() or 1
    with open("/proc/meminfo") as f:
        total_kib = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
    memory = int(total_kib / 1024 * 0.9)
    node = (f"NodeName=localhost NodeAddr=127.0.0.1 NodeHostname=localhost CPUs={cpus} "
            f"RealMemory={memory} State=UNKNOWN")
    return f"""ClusterName=local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={d}/munge/munge.sock,cred_expire=10
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
StateSaveLocation={d}/state
SlurmdSpoolDir={d}/spool
SlurmctldPidFile={d}/run/slurmctld.pid
SlurmdPidFile={d}/run/slurmd.pid
SlurmctldLogFile={d}/log/slurmctld.log
SlurmdLogFile={d}/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,bf_interval=2
MailProg=/bin/true
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=3600
KillWait=5
InactiveLimit=0
{node}
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


def environment(d: Path) -> dict[str, str]:
    """The variables a process that submits needs (sbatch passes them on into jobs)."""
    return {"SLURM_CONF": str(d / "etc" / "slurm.conf"),
            "PATH": f"{d / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"}


def start(d: Path, ctld_port: int = 6817, d_port: int = 6818, timeout: float = 30) -> None:
    """Bring the cluster up under ``d`` and wait until the node is idle."""
    missing = missing_tools()
    if missing:
        raise SystemExit(f"local_slurm: missing {', '.join(missing)}: apt-get install "
                         "--no-install-recommends slurm-wlm munge")
    d = d.resolve()
    for sub in ("etc", "state", "spool", "log", "run", "munge", "bin"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    for path in (d, d / "munge"):
        path.chmod(0o755)
    key = d / "munge" / "munge.key"
    if not key.exists():
        key.write_bytes(os.urandom(1024))
    key.chmod(0o400)
    sacct = d / "bin" / "sacct"
    sacct.write_text(SACCT)
    sacct.chmod(0o755)
    conf = d / "etc" / "slurm.conf"
    conf.write_text(config_text(d, ctld_port, d_port))
    subprocess.run(["munged", f"--socket={d}/munge/munge.sock", f"--key-file={key}",
                    f"--log-file={d}/log/munged.log", f"--pid-file={d}/run/munged.pid",
                    f"--seed-file={d}/munge/munged.seed"], check=True)
    env = dict(os.environ, **environment(d))
    subprocess.run(["slurmctld", "-f", str(conf)], check=True, env=env)
    subprocess.run(["slurmd", "-f", str(conf), "-N", "localhost"], check=True, env=env)
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True,
                               text=True, env=env).stdout.strip()
        if state == "idle":
            return
        time.sleep(0.3)
    raise SystemExit(f"local_slurm: the node did not become idle (state {state!r}); see "
                     f"{d}/log")


def _pid(d: Path, name: str) -> int | None:
    try:
        return int((d / "run" / f"{name}.pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover
        return True


def stop(d: Path, timeout: float = 20) -> None:
    """Cancel every job, then end the daemons this folder started (by their PIDs)."""
    d = d.resolve()
    env = dict(os.environ, **environment(d))
    if (d / "etc" / "slurm.conf").exists() and shutil.which("scancel"):
        subprocess.run(["scancel", "--full", "-u", "root"], env=env, capture_output=True)
        deadline = time.time() + 10
        while time.time() < deadline:
            left = subprocess.run(["squeue", "-h", "-t", "active"], env=env,
                                  capture_output=True, text=True).stdout.strip()
            if not left:
                break
            time.sleep(0.3)
    pids = [p for p in (_pid(d, n) for n in DAEMONS) if p and _alive(p)]
    for pid in pids:
        os.kill(pid, signal.SIGTERM)
    deadline = time.time() + timeout
    while time.time() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.2)
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("action", choices=["start", "stop", "env"])
    p.add_argument("folder", type=Path)
    p.add_argument("--ctld-port", type=int, default=6817)
    p.add_argument("--d-port", type=int, default=6818)
    args = p.parse_args(argv)
    if args.action == "start":
        start(args.folder, args.ctld_port, args.d_port)
        print(f"SLURM is up: export SLURM_CONF={args.folder.resolve()}/etc/slurm.conf "
              f"PATH={args.folder.resolve()}/bin:$PATH")
    elif args.action == "stop":
        stop(args.folder)
    else:
        for k, v in environment(args.folder.resolve()).items():
            print(f"export {k}={v}")


if __name__ == "__main__":
    sys.exit(main())
