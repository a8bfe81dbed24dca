"""The slurm engine against a real single-node SLURM (``scripts/local_slurm.py``): a grid to
completion, ``scancel`` half-way then ``sweep run`` again, a pre-empted job requeued from its
checkpoint, and a two-task distributed stage. Skipped, with the line that says what to install,
where SLURM's daemons are absent or the tests do not run as root."""

import importlib.util
import json
import os
import subprocess
import sys
import time

import pytest

from smoothadv.cli import main
from smoothadv.models import read_checkpoint
from smoothadv.sweep import Ledger, build_plan, load_sweep
from smoothadv.sweep.jobs import is_done

from .conftest import ROOT

pytestmark = pytest.mark.slow

spec = importlib.util.spec_from_file_location("local_slurm", ROOT / "scripts" / "local_slurm.py")
local_slurm = importlib.util.module_from_spec(spec)
spec.loader.exec_module(local_slurm)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    missing = local_slurm.missing_tools()
    if missing:
        pytest.skip(f"no SLURM here ({', '.join(missing)} missing): apt-get install "
                    "--no-install-recommends slurm-wlm munge")
    if os.geteuid() != 0:
        pytest.skip("the test SLURM runs its daemons as root")
    pytest.importorskip("submitit", reason="pip install 'smoothadv[sweep]'")
    import shutil
    import tempfile
    from pathlib import Path

    # munged wants every folder above its socket world-executable: not pytest's tmp folders
    folder = Path(tempfile.mkdtemp(prefix="smoothadv-slurm-", dir="/tmp"))
    folder.chmod(0o755)
    port = 17000 + os.getpid() % 2000 * 2
    local_slurm.start(folder, port, port + 1)
    saved = {k: os.environ.get(k) for k in ("SLURM_CONF", "PATH")}
    os.environ.update(local_slurm.environment(folder))
    yield folder
    local_slurm.stop(folder)
    shutil.rmtree(folder, ignore_errors=True)
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def sweep_file(tmp_path, epochs=2, grid='method = ["gaussian", "stability"]', extra=""):
    path = tmp_path / "grid.toml"
    path.write_text(f'''out = "{tmp_path / 'out'}"
[[runs]]
train = {{ dataset = "digits", arch = "mlp", epochs = {epochs}, batch = 64, test_subset = 64 }}
grid = {{ {grid} }}
certify = {{ n = 100, n0 = 10, skip = 40 }}
{extra}''')
    return path


def squeue(*args):
    return subprocess.run(["squeue", "-h", *args], capture_output=True, text=True).stdout


def test_a_tiny_grid_runs_to_completion_with_two_task_stages(cluster, tmp_path, capsys):
    """Every stage as a two-task job: training under DDP (gloo), certification sharded over
    the two ranks and merged — the code torchrun drives, inside a SLURM allocation."""
    path = sweep_file(tmp_path, grid='method = ["gaussian"]')
    assert main(["sweep", "run", str(path), "--engine", "slurm", "--time", "10",
                 "--tasks-per-node", "2", "--cpus-per-task", "1"]) == 0
    said = capsys.readouterr().out
    assert "sweep: 2 stage(s) to run (1 train, 1 certify), 0 done; on SLURM" in said
    sweep = load_sweep(path)
    plan = build_plan(sweep)
    assert all(is_done(j) for j in plan.jobs.values())
    ledger = Ledger(sweep.out)
    assert all(ledger.get(k)["job_id"] for k in plan.jobs)
    for job in plan.jobs.values():
        if job.kind == "train":
            assert json.loads((job.folder / "config.json").read_text())["world_size"] == 2
    assert main(["sweep", "status", str(path), "--engine", "slurm"]) == 0
    assert "2 done" in capsys.readouterr().out


def _start_runner(path, *extra):
    return subprocess.Popen([sys.executable, "-m", "smoothadv", "sweep", "run", str(path),
                             "--engine", "slurm", "--time", "10", *extra], cwd=ROOT,
                            env=dict(os.environ, PYTHONUNBUFFERED="1"),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for(predicate, timeout=120, step=0.5):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def test_scancel_half_way_then_sweep_run_again(cluster, tmp_path):
    path = sweep_file(tmp_path, epochs=6, grid='method = ["gaussian"], seed = [0, 1]')
    runner = _start_runner(path, "--cpus-per-task", "2")  # one job at a time: one pending
    assert _wait_for(lambda: "R" in squeue("-o", "%t").split())
    subprocess.run(["scancel", "--full", "-u", "root"], check=True)  # running and pending
    out, _ = runner.communicate(timeout=120)
    assert runner.returncode == 2, out
    sweep = load_sweep(path)
    plan = build_plan(sweep)
    before = {k for k, j in plan.jobs.items() if is_done(j)}
    assert len(before) < len(plan.jobs)
    stamps = {k: plan.jobs[k].output.stat().st_mtime_ns for k in before}
    assert main(["sweep", "run", str(path), "--engine", "slurm", "--time", "10"]) == 0
    assert all(is_done(j) for j in plan.jobs.values())
    for k in before:
        assert plan.jobs[k].output.stat().st_mtime_ns == stamps[k]


def test_a_preempted_job_is_requeued_and_resumes(cluster, tmp_path):
    path = sweep_file(tmp_path, epochs=30, grid='method = ["gaussian"]')
    runner = _start_runner(path)
    sweep = load_sweep(path)
    plan = build_plan(sweep)
    train = next(j for j in plan.jobs.values() if j.kind == "train")

    def one_epoch_done():
        try:
            return read_checkpoint(train.output)["epoch"] >= 1
        except Exception:  # noqa: BLE001 - not written yet
            return False

    assert _wait_for(one_epoch_done, timeout=180)
    job_id = Ledger(sweep.out).get(train.key)["job_id"]
    subprocess.run(["scancel", "--signal", "USR2", job_id], check=True)  # as a pre-emption
    out, _ = runner.communicate(timeout=400)
    assert runner.returncode == 0, out
    assert is_done(train)
    log = (train.folder / "stage.log").read_text()
    assert "resuming" in log  # the requeued job continued from its checkpoint
    shown = subprocess.run(["scontrol", "show", "job", job_id], capture_output=True,
                           text=True).stdout
    assert "Restarts=1" in shown or "Restarts=2" in shown


def _task_pid(job_id: str, procid: int) -> int | None:
    """The pid of task ``procid`` of SLURM job ``job_id`` (its python process, found by the
    environment srun gave it)."""
    from pathlib import Path

    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            env = dict(kv.split("=", 1) for kv in
                       (proc / "environ").read_bytes().decode(errors="replace").split("\0")
                       if "=" in kv)
            cmd = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if (env.get("SLURM_JOB_ID") == job_id and env.get("SLURM_PROCID") == str(procid)
                and "python" in cmd and "submitit" in cmd):
            return int(proc.name)
    return None


def test_a_two_task_stage_whose_second_task_dies_fails_in_one_line(cluster, tmp_path):
    """srun does not end a step's other tasks when one dies: a certification's rank 1 killed
    with SIGKILL (as for memory) must not leave rank 0 waiting until the time limit. Rank 0
    notices within SMOOTHADV_RANK_STALE seconds, the job fails with that line, the runner says
    so; rank 0's rows are kept."""
    import signal

    path = tmp_path / "grid.toml"
    path.write_text(f'''out = "{tmp_path / 'out'}"
[[runs]]
train = {{ dataset = "digits", arch = "mlp", epochs = 1, batch = 64, test_subset = 64 }}
certify = {{ n = 100000, n0 = 10, skip = 12, batch = 2000 }}
''')
    env = dict(os.environ, PYTHONUNBUFFERED="1", SMOOTHADV_RANK_STALE="4")
    runner = subprocess.Popen([sys.executable, "-m", "smoothadv", "sweep", "run", str(path),
                               "--engine", "slurm", "--time", "10", "--tasks-per-node", "2",
                               "--cpus-per-task", "1"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    sweep = load_sweep(path)
    plan = build_plan(sweep)
    cert = next(j for j in plan.jobs.values() if j.kind == "certify")
    part = cert.output.with_name(cert.output.name + ".part1")
    assert _wait_for(lambda: part.exists() and part.read_text().count("\n") > 1, timeout=240,
                     step=0.1)
    job_id = Ledger(sweep.out).get(cert.key)["job_id"]
    pid = _task_pid(job_id, 1)
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    out, _ = runner.communicate(timeout=240)
    assert runner.returncode == 2, out
    error = Ledger(sweep.out).get(cert.key).get("error", "")
    assert "rank 1 has given no sign of life" in error, (error, out[-2000:])
    assert cert.output.with_name(cert.output.name + ".part0").exists()
