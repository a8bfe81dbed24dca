"""What every engine does with one job: its files, whether its outputs are complete, running
it (in whatever process the engine gives it), and merging certification shards.

A job's folder holds ``job.json`` (the stage's config document, or a merge's list of shard
records), ``stage.log`` (what the stage printed) and its outputs. **Done is decided by the
outputs**, never by an engine: a training run is done when its checkpoint is at its last
epoch and records this config's hash, a record file when it holds a row for every selected
input under this config's hash, a soft-label file when it exists, a shared certification when
every record it writes is done. A job runs while holding an
exclusive lock on ``FOLDER/.lock``, so that no two processes (a new ``sweep run`` beside a job
left running by a killed one, a requeued SLURM job) ever work on one stage at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import time
import traceback
from pathlib import Path

from ..configs import config_document
from ..errors import UserError
from ..records.files import read_records
from .plan import OUTPUT_NAMES, Job

BUSY = 75  # exit status of a job whose lock another process holds


def write_job_file(job: Job, plan_jobs: dict[str, Job]) -> Path:
    """``FOLDER/job.json`` for ``job`` (written once; the same content every time)."""
    job.folder.mkdir(parents=True, exist_ok=True)
    path = job.folder / "job.json"
    document = {"kind": job.kind, "key": job.key, **config_document(job.config)}
    if job.kind in ("merge", "rebox"):  # the records it reads
        document["shards"] = [str(plan_jobs[k].output) for k in job.shards]
    if job.kind == "certify-shared":  # the configs it certifies together
        document["members"] = [config_document(m.config) for m in job.members]
    text = json.dumps(document, indent=1) + "\n"
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        tmp = path.with_name("job.json.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return path


def is_done(job: Job) -> bool:
    """Whether ``job``'s outputs are complete (see the module docstring)."""
    if job.kind == "certify-shared":
        return all(is_done(member) for member in job.members)
    out = job.output
    if not out.exists():
        return False
    if job.kind == "train":
        from ..models import read_checkpoint

        try:
            ckpt = read_checkpoint(out)
        except UserError:
            return False
        # the checkpoint's hash, or (a folder an earlier version named by location, adopted
        # by sweep.migrate) its config document's, rewritten with the location-free hash
        if int(ckpt.get("epoch", 0)) < job.config.epochs:
            return False
        wanted = job.config.content_hash()
        return (ckpt.get("config_hash") == wanted
                or _document_hash(job.folder / "config.json") == wanted)
    if job.kind == "train-denoiser":  # its run folder: the last epoch, this config's hash
        try:
            document = json.loads((job.folder / "config.json").read_text(encoding="utf-8"))
            epoch = denoiser_epoch(out)
        except (OSError, ValueError, KeyError, UserError):
            return False
        return (document.get("config_hash") == job.config.content_hash()
                and epoch >= job.config.epochs)
    if job.kind == "rebox":
        try:
            source = read_records(job.folder.parent / job.shards[0] / OUTPUT_NAMES["certify"])
            return len(read_records(out)) >= len(source)
        except (UserError, ValueError):
            return False
    if job.kind in ("certify", "merge"):
        conf = out.with_name(out.name + ".config.json")
        try:
            document = json.loads(conf.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return False
        if document.get("config_hash") != job.config.content_hash():
            return False
        try:
            rows = len(read_records(out))
        except (UserError, ValueError):
            return False
        return rows >= int(document.get("num_inputs", -1))
    return True


def _document_hash(path: Path) -> str | None:
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("config_hash")
    except (OSError, ValueError, AttributeError):
        return None


def finished_by_group(key: str, jobs: dict[str, Job], todo: list[str], done: set[str],
                      ledger) -> bool:
    """Whether the job ``key`` (a member of a certification on shared noise) was done by its
    group's job; if so it moves from ``todo`` to ``done`` and the ledger says so, and no engine
    runs it again."""
    job = jobs[key]
    if not (any(jobs[d].kind == "certify-shared" for d in job.deps) and is_done(job)):
        return False
    todo.remove(key)
    done.add(key)
    ledger.update(key, status="done")
    return True


def denoiser_epoch(path: Path) -> int:
    """The epoch a denoiser checkpoint was saved after."""
    from ..denoise.dncnn import read_checkpoint_dncnn

    return int(read_checkpoint_dncnn(path)["epoch"])


@contextlib.contextmanager
def job_lock(folder: Path):
    """Hold ``FOLDER/.lock`` exclusively; yields False (and holds nothing) when another process
    has it."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / ".lock", "a+")  # noqa: SIM115 — held for the block's duration
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        handle.close()


def lock_held(folder: Path) -> bool:
    """Whether some process holds ``FOLDER/.lock`` now."""
    with job_lock(folder) as mine:
        return not mine


def _owner_file(folder: Path) -> Path:
    return folder / ".owner"


def _refused_file(folder: Path, owner: str) -> Path:
    return folder / f".refused-{owner}"


def wait_for_rank_zero(folder: Path, owner: str, poll: float = 0.2,
                       limit: float | None = None) -> bool:
    """The other ranks of a distributed job (``owner``: the job's id, the same on every rank):
    whether their rank 0 took the job's lock (True) or was refused it because another process
    runs the stage (False, at once: they do not sit in the process group's start-up until its
    time-out). Waits at most ``limit`` seconds (default: the process group's time-out)."""
    from ..runtime.distributed import timeout_minutes

    limit = timeout_minutes() * 60 if limit is None else limit
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        if _refused_file(folder, owner).exists():
            return False
        try:
            if _owner_file(folder).read_text(encoding="utf-8").strip() == owner:
                return True
        except OSError:
            pass
        time.sleep(poll)
    return False


def execute(job_file: str | Path, lock: bool = True, owner: str | None = None) -> int:
    """Run the job of ``job_file`` in this process, its output appended to ``stage.log``;
    returns 0 (done), 2 (a one-line error, the log's last line), 1 (a crash, traceback in the
    log) or :data:`BUSY`. ``lock=False``: the other ranks of a distributed job, whose rank 0
    holds the lock; with ``owner`` (the job's id on every rank) rank 0 says whether it took the
    lock, and the others run only if it did (:func:`wait_for_rank_zero`)."""
    job_file = Path(job_file)
    folder = job_file.parent
    document = json.loads(job_file.read_text(encoding="utf-8"))
    if not lock and owner is not None and not wait_for_rank_zero(folder, owner):
        return BUSY
    with (job_lock(folder) if lock else contextlib.nullcontext(True)) as mine:
        if owner is not None and lock:
            target = _owner_file(folder) if mine else _refused_file(folder, owner)
            target.write_text(owner + "\n", encoding="utf-8")
        if not mine:
            return BUSY
        if owner is not None and lock:  # a requeued job's earlier refusal no longer holds
            _refused_file(folder, owner).unlink(missing_ok=True)
        try:
            return _run_job(document, folder)
        finally:
            if owner is not None and lock:
                _owner_file(folder).unlink(missing_ok=True)


ESTIMATE_NAME = "estimate.json"  # a running stage's forecast (runtime/forecast.py)


@contextlib.contextmanager
def _estimates_to(path: Path):
    """The stage's forecasts go to ``path`` while it runs (for the engine's outlook)."""
    from ..runtime.distributed import rank
    from ..runtime.forecast import ESTIMATE_FILE

    before = os.environ.get(ESTIMATE_FILE)
    if rank() == 0:  # an earlier attempt's (rank 0 alone forecasts; a late rank keeps its)
        path.unlink(missing_ok=True)
    os.environ[ESTIMATE_FILE] = str(path)
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(ESTIMATE_FILE, None)
        else:
            os.environ[ESTIMATE_FILE] = before


def _run_job(document: dict, folder: Path) -> int:
    """The job of ``document`` in this process (see :func:`execute`)."""
    with open(folder / "stage.log", "a", encoding="utf-8") as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log), \
            _estimates_to(folder / ESTIMATE_NAME):
        try:
            JOB_KINDS.get(document["kind"], _run_stage)(document)
            return 0
        except UserError as err:
            print(f"smoothadv: error: {err}")
            return 2
        except Exception:  # noqa: BLE001 — any crash is the job's, told in its log
            traceback.print_exc(file=sys.stderr)
            return 1


def _run_stage(document: dict) -> None:
    """A stage's job: its config document run by the stage's library function."""
    from ..stages import config_from_document, run_stage

    result = run_stage(config_from_document(document))
    if result.text:
        print(result.text)


def _run_shared(document: dict) -> None:
    """A certification on shared noise: its members' configs, run together."""
    from ..stages import config_from_document
    from ..stages.shared import run_shared_certification

    for result in run_shared_certification(
            [config_from_document(m) for m in document["members"]]):
        print(result.text)


def merge_shards(document: dict) -> Path:
    """One record file from a certification's shard records (rows in idx order, each row as
    its shard wrote it), with the unsharded config beside it; written atomically."""
    from ..stages import config_from_document

    config = config_from_document(document)
    out = Path(config.out)
    header, rows, facts = None, {}, {}
    for shard in document["shards"]:
        path = Path(shard)
        lines = path.read_text(encoding="utf-8").splitlines()
        header = header or lines[0]
        for line in lines[1:]:
            if line.strip():
                rows[int(line.split("\t", 1)[0])] = line
        facts = json.loads(path.with_name(path.name + ".config.json").read_text())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".merging")
    tmp.write_text("\n".join([header, *(rows[i] for i in sorted(rows))]) + "\n",
                   encoding="utf-8")
    resolved = {k: v for k, v in facts.items() if k not in ("stage", "config_hash", "config")}
    resolved.update(num_inputs=len(rows), merged_from=document["shards"])
    conf = out.with_name(out.name + ".config.json")
    conf.write_text(json.dumps(config_document(config, **resolved), indent=2, default=str)
                    + "\n", encoding="utf-8")
    os.replace(tmp, out)
    return out


def rebox_job(document: dict) -> Path:
    """The box-constrained radii of the job's source record (:func:`~smoothadv.records.rebox.
    rebox_record`), on the inputs that record certified (rounded to the grid where it did)."""
    from ..data import create_dataset
    from ..noise import GridRounded
    from ..records.rebox import rebox_record
    from ..stages import config_from_document

    config = config_from_document(document)
    dataset = create_dataset(config.dataset, config.split, config.data_root)
    if config.round_inputs:
        dataset = GridRounded(dataset)
    return rebox_record(document["shards"][0], dataset, config.sigma, config.noise, config.out)


def last_error(job: Job) -> str:
    """The line that says why a job failed: its log's last ``smoothadv: error`` line, else its
    last line."""
    log = job.folder / "stage.log"
    if not log.exists():
        return ""
    lines = [ln.strip() for ln in log.read_text(encoding="utf-8",
                                                errors="replace").splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("smoothadv: error")]
    return (errors or lines or [""])[-1][:200]


# jobs that are not one stage's config, by kind (any other kind is a stage: _run_stage)
JOB_KINDS = {"merge": merge_shards, "rebox": rebox_job, "certify-shared": _run_shared}
