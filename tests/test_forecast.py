"""Estimates of a run's time: the forecast of a run from its own first units (exact for units
of equal cost, silent for short runs, published for the sweep engine), and the sweep's time
left laid out over its workers from its stages' forecasts and like stages' times."""

import json

import pytest

from smoothadv.runtime.forecast import Forecast, human_seconds
from smoothadv.stages import CertifyConfig, TrainConfig
from smoothadv.sweep.outlook import Outlook, cost_key
from smoothadv.sweep.plan import Job


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_forecast_of_units_of_equal_cost_is_exact_after_the_warm_up(tmp_path, monkeypatch):
    """A first unit of 30 s (warm-up) and 2 s for each of the others: the forecast, made once
    3 s of units past the warm-up are timed, is 30 + 99·2 s, said once and published."""
    target = tmp_path / "estimate.json"
    monkeypatch.setenv("SMOOTHADV_ESTIMATE_FILE", str(target))
    clock, said = Clock(), []
    forecast = Forecast("certify", 100, "input", warmup=1, min_seconds=3.0, say=said.append,
                        clock=clock)
    made = []
    for unit in range(1, 101):
        clock.now += 30.0 if unit == 1 else 2.0
        made.append(forecast.done(unit))
    assert [m for m in made if m is not None] == [pytest.approx(30 + 99 * 2)]
    assert made.index(next(m for m in made if m is not None)) == 2  # units 2 and 3: 4 s ≥ 3 s
    assert len(said) == 1 and "100 inputs will take about 3 min 48 s" in said[0]
    assert "measured on inputs 2–3, 2.0 s each" in said[0]
    published = json.loads(target.read_text())
    assert published["seconds"] == pytest.approx(228) and published["left"] == pytest.approx(194)


def test_a_short_run_is_forecast_but_not_said_and_a_run_of_one_unit_not_at_all():
    clock, said = Clock(), []
    forecast = Forecast("train", 10, "epoch", warmup=0, min_seconds=0, say=said.append,
                        clock=clock)
    clock.now = 0.5
    assert forecast.done(1) == pytest.approx(5.0)
    assert said == []  # 4.5 s left: below the line's threshold
    single = Forecast("train", 1, "epoch", warmup=0, min_seconds=0, clock=clock)
    clock.now = 9.0
    assert single.done(1) is None and single.total_seconds is None


def test_human_seconds():
    assert [human_seconds(s) for s in (0.0314, 2.54, 42, 850, 11_040, 300_000)] == \
        ["31.4 ms", "2.5 s", "42 s", "14 min 10 s", "3 h 04 min", "3 d 11 h"]


def _train(tmp_path, **kw):
    cfg = TrainConfig(dataset="digits", arch="mlp", out=str(tmp_path / "x"), **kw)
    return Job(f"train-{cfg.content_hash()}", "train", cfg, tmp_path / cfg.content_hash())


def test_like_stages_differ_in_floats_seeds_and_files_only(tmp_path):
    base = _train(tmp_path, epochs=4)
    assert cost_key(base) == cost_key(_train(tmp_path, epochs=4, sigma=0.5, seed=3, lr=0.01))
    assert cost_key(base) != cost_key(_train(tmp_path, epochs=8))
    assert cost_key(base) != cost_key(_train(tmp_path, epochs=4, method="smoothadv"))
    smoothadv = _train(tmp_path, epochs=4, method="smoothadv", options={"steps": 2})
    assert cost_key(smoothadv) != cost_key(_train(tmp_path, epochs=4, method="smoothadv",
                                                  options={"steps": 4}))
    a = CertifyConfig(checkpoint="a.pth", out="a.tsv", n=1000)
    b = CertifyConfig(checkpoint="b.pth", out="b.tsv", n=1000, sigma=0.5)
    job = lambda c: Job("certify-x", "certify", c, tmp_path)  # noqa: E731
    assert cost_key(job(a)) == cost_key(job(b))
    assert cost_key(job(a)) != cost_key(job(CertifyConfig(checkpoint="a.pth", out="a.tsv",
                                                          n=2000)))


def test_the_time_left_is_laid_out_over_the_workers_after_the_dependencies(tmp_path):
    """Four trainings of one cost (one finished in 100 s), each followed by a certification
    whose cost a running one forecasts at 40 s: on 2 workers, with training 1 running for 30 s
    and certification 0 for 10 s, the rest is laid out greedily in plan order, each stage
    after its dependency (the same schedule by hand below)."""
    trains = [_train(tmp_path, epochs=4, seed=s) for s in range(4)]
    certs = []
    for t in trains:
        c = CertifyConfig(checkpoint=str(t.output), out="c.tsv", n=500)
        certs.append(Job(f"certify-{t.key}", "certify", c, tmp_path / f"c-{t.key}",
                         deps=[t.key]))
    jobs = {j.key: j for j in trains + certs}
    outlook = Outlook(jobs, workers=2)
    outlook.finished(trains[0].key, 100.0)
    running_cert = certs[0]
    running_cert.folder.mkdir(parents=True)
    now = 1000.0
    (running_cert.folder / "estimate.json").write_text(json.dumps(
        {"seconds": 40.0, "left": 30.0, "at": now}))
    running = {trains[1].key: now - 30.0, running_cert.key: now - 10.0}
    todo = [trains[2].key, trains[3].key, certs[1].key, certs[2].key, certs[3].key]
    seconds, counted, unknown = outlook.left(running, todo, now=now)
    assert (counted, unknown) == (7, 0)
    assert seconds == pytest.approx(_by_hand()) == 210.0


def _by_hand():
    free = [70.0, 30.0]  # running: train 1 has 70 s left, cert 0 has 30 s left
    ends = {"t1": 70.0}
    for key, cost, deps in (("t2", 100, []), ("t3", 100, []), ("c1", 40, ["t1"]),
                            ("c2", 40, ["t2"]), ("c3", 40, ["t3"])):
        free.sort()
        start = max(free[0], max((ends[d] for d in deps), default=0.0))
        free[0] = ends[key] = start + cost
    return max(free)


def test_the_sweep_line_is_a_lower_bound_while_stages_are_not_estimated(tmp_path):
    """A training measured at 100 s and a certification no like stage has measured: the line
    says "more than" the trainings' time and how many stages it left out; a sweep with under
    10 s left says nothing."""
    trains = [_train(tmp_path, epochs=4, seed=s) for s in range(2)]
    cert = Job("certify-x", "certify", CertifyConfig(checkpoint="a", out="c.tsv", n=500),
               tmp_path / "c", deps=[trains[1].key])
    jobs = {j.key: j for j in [*trains, cert]}
    outlook = Outlook(jobs, workers=1)
    outlook.finished(trains[0].key, 100.0)
    line = outlook.say_now({}, [trains[1].key, cert.key], now=0.0)
    assert line.startswith("sweep: more than 1 min 40 s left (1 stage(s) estimated")
    assert "1 not yet estimated, left out; 1 worker(s))" in line
    quick = Outlook(jobs, workers=1)
    quick.finished(trains[0].key, 5.0)
    assert quick.say_now({}, [trains[1].key], now=0.0) is None


def test_sweep_status_shows_a_running_stages_time_left(tmp_path):
    """A stage whose lock is held and whose forecast says 754 s are left shows "about 12 min
    34 s" in `sweep status`; one without a forecast shows "?"; others nothing."""
    import time

    from smoothadv.sweep import Ledger, build_plan, load_sweep
    from smoothadv.sweep.jobs import job_lock
    from smoothadv.sweep.report import status_table

    spec = tmp_path / "s.toml"
    spec.write_text(f'out = "{tmp_path / "out"}"\n[[runs]]\n'
                    'train = { dataset = "digits", arch = "mlp", epochs = 1 }\n'
                    'certify = { n = 50 }\ngrid = { seed = [0, 1] }\n')
    sweep = load_sweep(spec)
    plan = build_plan(sweep)
    first, second = [j for j in plan.jobs.values() if j.kind == "train"]
    first.folder.mkdir(parents=True)
    (first.folder / "estimate.json").write_text(json.dumps(
        {"seconds": 900.0, "left": 754.0, "at": time.time()}))
    with job_lock(first.folder), job_lock(second.folder):
        table = status_table(plan, Ledger(sweep.out))
    rows = {line.split()[0]: line for line in table.splitlines()}
    assert "running  about 12 min 3" in rows[first.key]  # 754 s less the moments since
    assert "running  ?" in rows[second.key]
    assert "2 running, 2 todo" in table
