"""Sweeps on the local engine: plan, run, resume after kill -9, never the same stage twice, a
failing stage that stops only its dependents, sharded certification equal to unsharded, and
one-line refusals of bad sweep files."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from smoothadv.cli import main
from smoothadv.errors import UserError
from smoothadv.records.files import read_records
from smoothadv.sweep import Ledger, build_plan, load_sweep, run_local
from smoothadv.sweep.jobs import is_done

from .conftest import ROOT

TRAIN = 'train = { dataset = "digits", arch = "mlp", epochs = 2, batch = 64, ' \
        'train_subset = 128, test_subset = 64 }'
CERTIFY = 'certify = { n = 100, n0 = 10, skip = 40 }'


def write(tmp_path, body: str, name: str = "grid.toml"):
    path = tmp_path / name
    path.write_text(f'out = "{tmp_path / "out"}"\n' + body)
    return path


GRID = f"""
[[runs]]
label = "grid"
{TRAIN}
grid = {{ method = ["gaussian", "stability"], seed = [0, 1] }}
{CERTIFY}

[[runs]]
label = "again"
{TRAIN}
grid = {{ method = ["gaussian"], seed = [0] }}
{CERTIFY}
shards = 2
"""


def rows(path):
    """Record rows without the time column."""
    lines = path.read_text().splitlines()
    time_col = lines[0].split("\t").index("time")
    return [[c for i, c in enumerate(ln.split("\t")) if i != time_col] for ln in lines]


def test_plan_shares_stages_and_names_them_by_hash(tmp_path, capsys):
    sweep = load_sweep(write(tmp_path, GRID))
    plan = build_plan(sweep)
    kinds = [j.kind for j in plan.jobs.values()]
    # 4 trainings (the 'again' run shares gaussian seed 0), 4 certifications + 2 shards + merge
    assert kinds.count("train") == 4 and kinds.count("merge") == 1
    assert kinds.count("certify") == 4 + 2
    shared = [j for j in plan.jobs.values() if j.kind == "train" and len(j.runs) == 2]
    assert len(shared) == 1
    again = build_plan(load_sweep(write(tmp_path, GRID)))
    assert list(again.jobs) == list(plan.jobs)  # the same keys every time
    for job in plan.jobs.values():
        assert all(d in plan.jobs for d in job.deps)
        assert job.key.split("-")[-1] == job.config.content_hash()
    assert main(["sweep", "plan", str(tmp_path / "grid.toml")]) == 0
    assert "11 stages for 5 runs" in capsys.readouterr().out


def test_run_resume_after_kill_and_nothing_twice(tmp_path, capsys):
    path = write(tmp_path, GRID)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen([sys.executable, "-m", "smoothadv", "sweep", "run", str(path)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen = []
    for line in proc.stdout:  # kill -9 once two stages are done
        seen.append(line)
        if sum(": done" in s for s in seen) == 2:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait()
    sweep = load_sweep(path)
    plan = build_plan(sweep)
    finished = {k for k, j in plan.jobs.items() if is_done(j)}
    assert 2 <= len(finished) < len(plan.jobs)
    stamps = {k: plan.jobs[k].output.stat().st_mtime_ns for k in finished}
    time.sleep(0.5)  # the killed runner's workers die with it (PR_SET_PDEATHSIG)
    assert main(["sweep", "run", str(path)]) == 0
    assert all(is_done(j) for j in plan.jobs.values())
    for k in finished:  # what was done was not run again
        assert plan.jobs[k].output.stat().st_mtime_ns == stamps[k]
        assert Ledger(sweep.out).get(k).get("attempts", 1) == 1
    capsys.readouterr()
    assert main(["sweep", "run", str(path)]) == 0  # all done: nothing starts
    assert ": started" not in capsys.readouterr().out
    # the records equal those of an uninterrupted sweep in another folder
    other = tmp_path / "clean"
    other.mkdir()
    clean = write(other, GRID)
    assert main(["sweep", "run", str(clean)]) == 0
    plan2 = build_plan(load_sweep(clean))
    for run, run2 in zip(plan.runs, plan2.runs):  # the same runs, certified in other folders
        assert run.label == run2.label
        assert rows(plan.jobs[run.record_job].output) == rows(plan2.jobs[run2.record_job].output)
    # sharded then merged equals one unsharded certification, row for row
    merge = next(j for j in plan.jobs.values() if j.kind == "merge")
    whole = next(j for j in plan.jobs.values() if j.kind == "certify"
                 and j.config.shards == 1 and j.config.checkpoint == merge.config.checkpoint)
    assert rows(merge.output) == rows(whole.output)
    assert len(read_records(merge.output)) == 12
    # status and report
    assert main(["sweep", "status", str(path)]) == 0
    assert "11 done" in capsys.readouterr().out
    assert main(["sweep", "report", str(path)]) == 0
    report = (sweep.out / "report.md").read_text()
    assert "## σ = 0.25" in report and "ACR" in report
    assert (sweep.out / "curves_sigma0.25.png").exists()
    # the labelled grid's best point by ACR (the one-point 'again' grid has no row)
    from smoothadv.analysis.metrics import average_certified_radius

    acrs = {r.label: average_certified_radius(read_records(plan.jobs[r.record_job].output))
            for r in plan.runs if r.group == "grid"}
    best = max(acrs, key=acrs.get)
    row = next(line for line in report.splitlines() if line.startswith("| grid | 0.25 |"))
    assert row.split(" | ")[2:5] == ["4", best, f"{acrs[best]:.3f}"]
    assert "| again |" not in report


def test_ctrl_c_of_a_sweep_is_one_line_and_resumes(tmp_path):
    """A terminal's Ctrl-C reaches the whole process group: runner and workers alike."""
    slow = TRAIN.replace("epochs = 2", "epochs = 40").replace("train_subset = 128, ", "")
    path = write(tmp_path, f'[[runs]]\nlabel = "slow"\n{slow}\n'
                           'grid = { seed = [0, 1] }\n' + CERTIFY + "\n")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    # as from a terminal: SIGINT at its default (a test run from a background job, as under
    # `nohup … &`, inherits it ignored, and Python then never raises KeyboardInterrupt)
    proc = subprocess.Popen([sys.executable, "-m", "smoothadv", "sweep", "run", str(path),
                             "--workers", "2"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    seen = []
    for line in proc.stdout:  # both workers are starting (importing torch) or training
        seen.append(line)
        if sum(": started" in s for s in seen) == 2:
            break
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGINT)
    out = "".join(seen) + proc.communicate(timeout=120)[0]
    assert proc.returncode == 130, out
    assert "Traceback" not in out and "leaked" not in out and "KeyboardInterrupt" not in out
    assert out.count("smoothadv: interrupted") == 1, out
    ledger = Ledger(load_sweep(path).out)
    assert all(ledger.get(k)["status"] == "todo" for k in build_plan(load_sweep(path)).jobs
               if ledger.get(k))


def test_a_failing_stage_stops_only_its_dependents(tmp_path, capsys):
    path = write(tmp_path, f"""
[[runs]]
{TRAIN}
grid = {{ method = ["gaussian"] }}
{CERTIFY}

[[runs]]
train = {{ dataset = "folder", data_root = "{tmp_path / 'nowhere'}", epochs = 1 }}
{CERTIFY}
""")
    assert main(["sweep", "run", str(path)]) == 2
    assert "some stages failed" in capsys.readouterr().err
    sweep = load_sweep(path)
    plan = build_plan(sweep)
    ledger = Ledger(sweep.out)
    states = {j.kind + str(j.config.dataset): (is_done(j), ledger.get(k).get("status"))
              for k, j in plan.jobs.items()}
    assert states["traindigits"][0] and states["certifydigits"][0]
    assert states["trainfolder"] == (False, "failed")
    assert states["certifyfolder"] == (False, "blocked")
    assert main(["sweep", "status", str(path)]) == 0
    table = capsys.readouterr().out
    assert "failed" in table and "nowhere" in table  # the error line


@pytest.mark.parametrize("body,message", [
    ('[[runs]]\nrecipes = ["no-such-recipe"]\n', "unknown recipe"),
    (f'[[runs]]\n{TRAIN}\ngrid = {{ method = ["nonsense"] }}\n', "unknown method"),
    (f'[[runs]]\n{TRAIN}\ngrid = {{ lbdd = [1.0] }}\n', "grid key 'lbdd'"),
    (f'[[runs]]\n{TRAIN}\ngrid = {{ method = ["stability"], steps = [2] }}\n',
     "grid key 'steps'"),
    ('[[runs]]\ntrain = { dataset = "digits", epochz = 3 }\n', "unknown train option"),
    ('[[runs]]\nrecipes = []\nbogus = 1\n', "unknown key"),
    ('scale = "huge"\n[[runs]]\nrecipes = []\n', "unknown scale"),
    (f'[[runs]]\n{TRAIN}\n{CERTIFY}\nrebox = true\n', "rebox takes a uniform or splitting"),
    (f'[[runs]]\n{TRAIN}\n{CERTIFY}\ndenoiser = {{ objective = "mse", depht = 5 }}\n',
     "unknown denoiser option(s) depht"),
    (f'[[runs]]\n{TRAIN}\n{CERTIFY}\ndenoiser = {{ objective = "mse" }}\n',
     "needs certify.sigma"),
])
def test_bad_sweep_files_fail_in_one_line(tmp_path, capsys, body, message):
    path = write(tmp_path, body)
    assert main(["sweep", "plan", str(path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err


def test_the_slurm_engine_without_sbatch_is_one_line(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, f"[[runs]]\n{TRAIN}\n{CERTIFY}\n")
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["sweep", "run", str(path), "--engine", "slurm"]) == 2
    assert "needs sbatch on PATH" in capsys.readouterr().err
    assert not (tmp_path / "out" / "stages").exists()  # nothing was submitted


def test_recipes_share_the_catrs_teacher_with_the_gaussian_baseline(tmp_path):
    path = write(tmp_path, """scale = "tiny"
[[runs]]
recipes = ["cifar10-gaussian-rerun-s0.25", "cifar10-catrs-s0.50", "cifar10-catrs-s1.00"]
""")
    plan = build_plan(load_sweep(path))
    trains = [j for j in plan.jobs.values() if j.kind == "train"]
    # the Gaussian σ = 0.25 model is the CAT-RS teacher: trained once for three runs
    teacher = [j for j in trains if len(j.runs) == 3]
    assert len(teacher) == 1 and teacher[0].config.method == "gaussian"
    soft = [j for j in plan.jobs.values() if j.kind == "soft-labels"]
    assert len(soft) == 1 and soft[0].deps == [teacher[0].key]
    catrs = [j for j in trains if j.config.method == "catrs"]
    assert len(catrs) == 2 and all(j.deps == [soft[0].key] for j in catrs)
    assert all(j.config.options["soft_targets"] == str(soft[0].output) for j in catrs)
    doc = json.loads(json.dumps(plan.jobs[catrs[0].key].config.to_dict()))
    assert doc["options"]["soft_targets"].startswith(str(tmp_path / "out" / "stages"))


def test_plan_refuses_unknown_engines_before_running(tmp_path, capsys):
    path = write(tmp_path, f"[[runs]]\n{TRAIN}\n{CERTIFY}\n")
    with pytest.raises(SystemExit):
        main(["sweep", "run", str(path), "--engine", "kubernetes"])
    assert "invalid choice" in capsys.readouterr().err
    with pytest.raises(UserError, match="not found"):
        load_sweep(tmp_path / "missing.toml")
    assert run_local.__doc__


def test_a_product_with_catrs_gets_its_teacher_once(tmp_path):
    path = write(tmp_path, f"""
[[runs]]
{TRAIN}
grid = {{ method = ["gaussian", "catrs"], sigma = [0.25, 0.5] }}
{CERTIFY}
teacher_draws = 50
""")
    plan = build_plan(load_sweep(path))
    trains = [j for j in plan.jobs.values() if j.kind == "train"]
    soft = [j for j in plan.jobs.values() if j.kind == "soft-labels"]
    assert len(trains) == 4 and len(soft) == 1 and soft[0].config.num_noise == 50
    gauss = next(j for j in trains if j.config.method == "gaussian" and j.config.sigma == 0.25)
    assert soft[0].deps == [gauss.key]  # the σ = 0.25 Gaussian run is the teacher
    for job in trains:
        if job.config.method == "catrs":
            assert job.deps == [soft[0].key]
            assert job.config.options["soft_targets"] == str(soft[0].output)


def test_a_teacher_table_sets_the_catrs_teachers_training(tmp_path, capsys):
    path = write(tmp_path, f"""
[[runs]]
{TRAIN}
grid = {{ method = ["catrs"] }}
options = {{ catrs = {{ lbd = 0.5 }} }}
{CERTIFY}
teacher_draws = 50
teacher = {{ lr = 0.3, epochs = 3 }}
""")
    plan = build_plan(load_sweep(path))
    teacher = next(j for j in plan.jobs.values()
                   if j.kind == "train" and j.config.method == "gaussian")
    student = next(j for j in plan.jobs.values() if j.kind == "train" and j is not teacher)
    assert (teacher.config.lr, teacher.config.epochs, teacher.config.sigma) == (0.3, 3, 0.25)
    assert "lbd" not in teacher.config.options and student.config.lr != 0.3
    bad = write(tmp_path, f"[[runs]]\n{TRAIN}\n{CERTIFY}\nteacher = {{ lr = 0.3 }}\n", "b.toml")
    assert main(["sweep", "plan", str(bad)]) == 2
    assert "no method of the run trains from a teacher" in capsys.readouterr().err
    bad.write_text(f"[[runs]]\n{TRAIN}\ngrid = {{ method = ['catrs'] }}\n"
                   "teacher = { method = 'macer' }\n")
    assert main(["sweep", "plan", str(bad)]) == 2
    assert "unknown teacher option 'method'" in capsys.readouterr().err


SHARED = f"""
[[runs]]
label = "m"
{TRAIN}
grid = {{ method = ["gaussian", "stability", "macer"] }}
{CERTIFY}

[[runs]]
label = "seq"
{TRAIN}
grid = {{ method = ["gaussian"] }}
certify = {{ sequential = true, radii = [0.1], budget = 500, skip = 40 }}
"""


def test_shared_noise_certifies_a_group_once_with_the_records_of_each_alone(tmp_path):
    """``shared_noise = true``: the three fixed-n certifications (same options, three models)
    become one certify-shared job; each record equals, row for row, the one the same sweep
    writes certifying each model alone, and carries the same config hash."""
    alone = tmp_path / "alone"
    alone.mkdir()
    plain = build_plan(load_sweep(write(alone, SHARED)))
    shared = build_plan(load_sweep(write(tmp_path, "shared_noise = true\n" + SHARED)))
    groups = [j for j in shared.jobs.values() if j.kind == "certify-shared"]
    assert len(groups) == 1 and len(groups[0].members) == 3  # the sequential one stays apart
    members = {m.key for m in groups[0].members}
    assert {r.label for r in shared.runs if r.record_job in members} == {
        "m method=gaussian", "m method=stability", "m method=macer"}
    keys = list(shared.jobs)
    for key, job in shared.jobs.items():  # every dependency before its dependents
        assert all(keys.index(d) < keys.index(key) for d in job.deps)
    assert all(shared.jobs[k].deps == [groups[0].key] for k in members)
    assert run_local(plain, Ledger(alone / "out"), workers=1, say=lambda s: None)
    said = []
    assert run_local(shared, Ledger(tmp_path / "out"), workers=1, say=said.append)
    assert not any(m in line and "started" in line for m in members for line in said)
    for mine, theirs in zip(shared.runs, plain.runs):
        a, b = plain.jobs[theirs.record_job].output, shared.jobs[mine.record_job].output
        assert rows(a) == rows(b) and len(rows(a)) == 13  # a header, every 40th of 450
        assert is_done(shared.jobs[mine.record_job])
    assert run_local(shared, Ledger(tmp_path / "out"), workers=1, say=said.append)  # all done


def test_shared_noise_refuses_configs_that_differ_beyond_the_model(tmp_path):
    from smoothadv.stages import CertifyConfig
    from smoothadv.stages.shared import run_shared_certification, shareable

    one = CertifyConfig(checkpoint="a.pth.tar", n=100, out=str(tmp_path / "a.tsv"))
    assert shareable(one)
    assert not shareable(one.replace(sequential=True, radii=(0.1,)))
    assert not shareable(one.replace(denoiser="dncnn:x", checkpoint=None, classifier="c"))
    with pytest.raises(UserError, match="differ in more than their model"):
        run_shared_certification([one, one.replace(checkpoint="b", n=200, out="b.tsv")])


MOVABLE = f"""
[[runs]]
label = "m"
{TRAIN}
grid = {{ method = ["gaussian", "catrs"] }}
{CERTIFY}
teacher_draws = 20
shards = 2
"""


def _outputs(out):
    """{stage folder name: mtime} of every file the stages wrote."""
    return {str(p.relative_to(out)): p.stat().st_mtime_ns
            for p in (out / "stages").glob("*/*") if p.name not in ("stage.log", ".lock")}


def test_a_finished_sweep_moved_elsewhere_is_still_finished(tmp_path, capsys):
    """Stage names come from what a stage reads, not where it lies: the same grid in two
    folders has the same stage names and equal records; a finished folder copied elsewhere
    and run again does nothing."""
    import shutil

    first = write(tmp_path, MOVABLE, "first.toml")
    assert main(["sweep", "run", str(first)]) == 0
    out = tmp_path / "out"
    plan = build_plan(load_sweep(first))
    kinds = {j.kind for j in plan.jobs.values()}
    assert {"train", "soft-labels", "certify", "merge"} <= kinds
    moved = tmp_path / "elsewhere" / "out"
    moved.parent.mkdir()
    shutil.copytree(out, moved)
    shutil.rmtree(out)  # nothing of the old location is left to read
    second = tmp_path / "second.toml"
    second.write_text(f'out = "{moved}"\n' + MOVABLE)
    again = build_plan(load_sweep(second))
    assert list(again.jobs) == list(plan.jobs)
    before = _outputs(moved)
    capsys.readouterr()
    assert main(["sweep", "status", str(second)]) == 0
    table = capsys.readouterr().out
    assert "todo" not in table and table.count(" done ") >= len(plan.jobs)
    assert main(["sweep", "run", str(second)]) == 0
    assert ": started" not in capsys.readouterr().out
    assert _outputs(moved) == before
    # the same grid run from scratch in a third folder: the same names, equal records
    third = tmp_path / "third.toml"
    third.write_text(f'out = "{tmp_path / "fresh"}"\n' + MOVABLE)
    assert main(["sweep", "run", str(third)]) == 0
    fresh = build_plan(load_sweep(third))
    assert list(fresh.jobs) == list(plan.jobs)
    for key, job in fresh.jobs.items():
        if job.kind in ("certify", "merge"):
            assert rows(job.output) == rows(again.jobs[key].output), key


def _kept(stages):
    """Modification times of the stages' outputs (records, checkpoints, soft labels)."""
    return sorted(p.stat().st_mtime_ns for p in stages.glob("*/*")
                  if p.suffix in (".tsv", ".tar", ".pt"))


def test_a_sweep_folder_of_the_earlier_naming_is_adopted_once(tmp_path, capsys):
    """Folders named by an earlier hash (here: renamed away from their names, with their
    documents' hashes changed) are given their names again in one line, and nothing is
    redone."""
    path = write(tmp_path, MOVABLE)
    assert main(["sweep", "run", str(path)]) == 0
    out = tmp_path / "out"
    plan = build_plan(load_sweep(path))
    stages = out / "stages"
    old_names = {}
    for i, (key, job) in enumerate(plan.jobs.items()):
        if job.kind in ("certify", "merge", "soft-labels") or job.deps:
            old = f"{key.rsplit('-', 1)[0]}-{i:016x}"
            (stages / key).rename(stages / old)
            for doc in (stages / old).glob("*.json"):
                text = doc.read_text()
                if '"config_hash"' in text:
                    data = json.loads(text)
                    data["config_hash"] = "0" * 16  # the earlier hash
                    doc.write_text(json.dumps(data))
            old_names[key] = old
    before = _kept(stages)
    capsys.readouterr()
    assert main(["sweep", "run", str(path)]) == 0
    captured = capsys.readouterr()
    assert f"renamed {len(old_names)} stage folder(s)" in captured.err
    assert ": started" not in captured.out
    assert all((stages / key).is_dir() for key in plan.jobs)
    assert _kept(stages) == before
    assert main(["sweep", "run", str(path)]) == 0
    assert "renamed" not in capsys.readouterr().err  # once


def test_other_ranks_do_not_wait_when_rank_zero_is_refused(tmp_path):
    """A multi-task SLURM stage whose rank 0 finds the stage running in another process: rank 0
    says so, and the other ranks return at once instead of sitting in the process group's
    start-up until its time-out; when rank 0 takes the lock they go on."""
    import threading
    import time

    from smoothadv.sweep.jobs import BUSY, execute, job_lock, wait_for_rank_zero, write_job_file

    plan = build_plan(load_sweep(write(tmp_path, f"[[runs]]\n{TRAIN}\n{CERTIFY}\n")))
    job = next(iter(plan.jobs.values()))
    path = write_job_file(job, plan.jobs)
    with job_lock(job.folder):  # another process runs the stage
        assert execute(path, lock=True, owner="77") == BUSY
    t0 = time.monotonic()
    assert execute(path, lock=False, owner="77") == BUSY
    assert time.monotonic() - t0 < 5
    # a requeued attempt (the same job id) whose rank 0 takes the lock: the others go on
    seen = []
    waiter = threading.Thread(target=lambda: seen.append(
        wait_for_rank_zero(job.folder, "78", poll=0.02, limit=30)))
    waiter.start()
    time.sleep(0.2)
    (job.folder / ".owner").write_text("78\n")
    waiter.join(10)
    assert seen == [True]


def test_local_workers_are_pinned_within_the_gpus_the_runner_was_given():
    """The runner's CUDA_VISIBLE_DEVICES (indices, GPU or MIG UUIDs, or a SLURM allocation's)
    bounds its workers' GPUs; before, workers took 0 … k−1 whatever the runner was given."""
    from smoothadv.sweep.local import worker_gpus

    assert worker_gpus(2, "3,5") == ["3", "5"]
    uuids = "GPU-1f2e3d4c,MIG-6a7b8c9d/1/0"
    assert worker_gpus(2, uuids) == ["GPU-1f2e3d4c", "MIG-6a7b8c9d/1/0"]
    assert worker_gpus(1, "3,5") == ["3"]  # torch sees fewer: the first ones
    assert worker_gpus(0, "") == []
    import os

    saved = os.environ.pop("CUDA_VISIBLE_DEVICES", None)
    try:
        assert worker_gpus(3) == ["0", "1", "2"]  # nothing given: the node's GPUs
    finally:
        if saved is not None:
            os.environ["CUDA_VISIBLE_DEVICES"] = saved


def test_a_sweep_certifies_the_ensemble_of_its_seeds(tmp_path):
    """`ensemble = ["seed"]`: besides each seed's model, the ensemble of the seeds of each grid
    point is certified (its members the sweep's own trainings), as a run of the report."""
    path = write(tmp_path, f"""
[[runs]]
label = "g"
{TRAIN}
grid = {{ method = ["gaussian"], seed = [0, 1, 2] }}
{CERTIFY}
ensemble = ["seed"]
""")
    plan = build_plan(load_sweep(path))
    ens = [j for j in plan.jobs.values() if j.kind == "certify" and j.config.members]
    assert len(ens) == 1 and len(ens[0].config.members) == 3
    trains = [k for k, j in plan.jobs.items() if j.kind == "train"]
    assert sorted(ens[0].deps) == sorted(trains)
    assert any(r.label == "g method=gaussian ensemble of 3 (seed)" for r in plan.runs)
    assert run_local(plan, Ledger(tmp_path / "out"), workers=1, say=lambda s: None)
    assert len(read_records(ens[0].output)) == 12
    assert main(["sweep", "report", str(path)]) == 0
    assert "ensemble of 3" in (tmp_path / "out" / "report.md").read_text()
    bad = write(tmp_path, f"[[runs]]\n{TRAIN}\n{CERTIFY}\nensemble = [\"seed\"]\n", "b.toml")
    with pytest.raises(UserError, match="each a key of the run's grid"):
        load_sweep(bad)


def test_the_report_aggregates_seeds_against_gaussian(tmp_path):
    """Runs that differ only in their seed are one setting: mean ± sd over the seeds and the
    paired ACR difference against the Gaussian setting (the demo's computation, shared)."""
    from smoothadv.analysis.compare import over_seeds, paired_acr_difference

    path = write(tmp_path, f"""
[[runs]]
label = "g"
{TRAIN}
grid = {{ method = ["gaussian", "stability"], seed = [0, 1] }}
{CERTIFY}
""")
    assert main(["sweep", "run", str(path)]) == 0
    assert main(["sweep", "report", str(path)]) == 0
    report = (tmp_path / "out" / "report.md").read_text()
    assert "## Over the seeds" in report
    plan = build_plan(load_sweep(path))
    recs = {r.label: read_records(plan.jobs[r.record_job].output) for r in plan.runs}
    ours = [recs["g method=stability seed=0"], recs["g method=stability seed=1"]]
    ref = [recs["g method=gaussian seed=0"], recs["g method=gaussian seed=1"]]
    diff, (low, high) = paired_acr_difference(list(zip(ours, ref)))
    row = next(ln for ln in report.splitlines() if ln.startswith("| g method=stability | 2 |"))
    assert row.endswith(f"| {diff:+.3f} [{low:+.3f}, {high:+.3f}] |")
    seeds = over_seeds(ours, [0.25], ref)
    assert seeds.acr.shape == (2,) and seeds.difference == diff
