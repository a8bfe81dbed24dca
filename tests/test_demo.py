import json

from smoothadv.cli import main
from smoothadv.records.files import read_records


def test_demo_writes_records_curves_and_report(tmp_path, capsys):
    """The main demo runs on the sweep engine: one stage per training and certification, a
    report from the records, and a second run that starts nothing."""
    from smoothadv.demos.main import SWEEP_FILE, DemoConfig, demo_sweep_data
    from smoothadv.sweep import build_plan, load_sweep, sweep_from_data

    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--epochs", "4", "--n", "400", "--no-progress",
            "--sigmas", "0.25", "0.5", "--device", "cpu"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Gaussian σ=0.25" in printed and "SmoothAdv-PGD σ=0.5" in printed
    assert "elapsed" in printed and "train smoothadv σ=0.5 seed=0 epochs=4: done" in printed
    config = DemoConfig(out=str(out), sigmas=(0.25, 0.5), epochs=4, n=400, device="cpu",
                        progress=False)
    plan = build_plan(sweep_from_data(demo_sweep_data(config), SWEEP_FILE))
    assert [plan.jobs[r.train_job].config.method for r in plan.runs] == [
        "gaussian", "smoothadv", "gaussian", "smoothadv"]
    for run in plan.runs:
        assert len(read_records(plan.jobs[run.record_job].output)) == 449  # the whole split
        assert plan.jobs[run.train_job].output.exists()
        smoothadv = plan.jobs[run.train_job].config
        if smoothadv.method == "smoothadv":  # the shipped grid's options, --epochs applied
            assert smoothadv.options["warmup"] == 1 and smoothadv.options["num_noise"] == 2
            assert smoothadv.lr_step == 2 and smoothadv.options["multi_noise"] is True
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert "| SmoothAdv-PGD σ=0.25 |" in report and "n = 400" in report
    assert "has the larger ACR" in report
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("stages/*/*")}
    assert main(argv) == 0  # resumed: nothing starts, nothing is rewritten
    assert ": started" not in capsys.readouterr().out
    assert stamps == {p: p.stat().st_mtime_ns for p in out.glob("stages/*/*")}
    # the grid as a sweep file: the same stages for `smoothadv sweep run`
    sweep_file = tmp_path / "demo.toml"
    assert main([*argv, "--write-sweep", str(sweep_file)]) == 0
    assert list(build_plan(load_sweep(sweep_file)).jobs) == list(plan.jobs)
    assert main(["sweep", "run", str(sweep_file)]) == 0
    assert ": started" not in capsys.readouterr().out


def test_the_docs_name_the_default_demos_record():
    from smoothadv.demos.main import SWEEP_FILE, DemoConfig, demo_sweep_data
    from smoothadv.sweep import build_plan, sweep_from_data

    from .conftest import ROOT

    plan = build_plan(sweep_from_data(demo_sweep_data(DemoConfig()), SWEEP_FILE))
    key = next(r.record_job for r in plan.runs
               if plan.jobs[r.train_job].config.method == "smoothadv")
    assert f"runs/demo/stages/{key}/certify.tsv" in (ROOT / "docs" / "analysis.md").read_text()


def test_demo_with_every_method(tmp_path, capsys):
    """--methods all: seven methods, one σ, one seed (a tiny budget) on the sweep engine: one
    certification of the seven models on shared noise, the table with the paired intervals, a
    resumed run that redoes nothing, the runs index finding its runs, and the sweep file."""
    from smoothadv.demos.methods import ALL, MethodsDemo, methods_sweep_data
    from smoothadv.sweep import build_plan, sweep_from_data

    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--epochs", "1", "--n", "60", "--no-progress",
            "--sigmas", "0.5", "--seeds", "1", "--workers", "1", "--device", "cpu",
            "--methods", "all"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("certify ×7 on shared noise σ=0.5 n=60: done") == 1
    cfg = MethodsDemo(out=str(out), sigmas=(0.5,), seeds=(1,), epochs=1, n=60,
                      device="cpu", progress=False, workers=1)
    plan = build_plan(sweep_from_data(methods_sweep_data(cfg), out / "x.toml"))
    assert len(plan.runs) == 7
    for run in plan.runs:
        assert len(read_records(plan.jobs[run.record_job].output)) == 449
    trained = {(j.config.method, j.config.sigma, j.config.seed) for j in plan.jobs.values()
               if j.kind == "train"}
    assert {(m, 0.5, 1) for m in ALL} | {("gaussian", 0.25, 1)} == trained
    for name in ("| MACER | ", "| CAT-RS | ", "| SmoothMix | ", "ACR − Gaussian [95%]"):
        assert name in printed
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    before = {p: p.stat().st_mtime_ns for p in out.glob("stages/*/*.*")}
    assert main(argv) == 0  # resumed: every model and record is complete
    assert ": started" not in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("stages/*/*.*")}
    capsys.readouterr()
    assert main(["runs", str(out), "--where", "method=catrs", "--format", "json"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert sorted(e["kind"] for e in found) == ["record", "run"]
    assert all(e["state"] == "done" and e["settings"]["sigma"] == 0.5 for e in found)
    assert {e["settings"]["seed"] for e in found} == {1}
    assert main(["demo", "--out", str(out), "--methods", "nope"]) == 2
    assert main(["demo", "--out", str(out), "--seeds", "1"]) == 2  # not the main demo's
    sweep_file = tmp_path / "seven.toml"
    assert main([*argv, "--write-sweep", str(sweep_file)]) == 0
    assert main(["sweep", "run", str(sweep_file)]) == 0
    assert ": started" not in capsys.readouterr().out


def test_l1_demo_writes_records_curves_and_report(tmp_path, capsys):
    """The ℓ1 demo on the engine: three trainings, each shared by its certifications, and the
    box radii post hoc from the uniform record (a rebox stage), at least the plain radii."""
    from smoothadv.analysis.settings import record_norm
    from smoothadv.demos.l1 import SWEEP_FILE
    from smoothadv.demos.main import DemoConfig, shipped_sweep
    from smoothadv.records.files import threat_model
    from smoothadv.sweep import build_plan, sweep_from_data

    argv = ["demo", "--norm", "l1", "--epochs", "2", "--n", "300", "--sigmas", "1.0",
            "--no-progress", "--out", str(tmp_path)]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "Uniform, uniform + box σ=1" in out and "Gaussian, ℓ2 radius σ=1" in out
    assert (tmp_path / "l1_curves.png").stat().st_size > 0
    assert "ℓ1" in (tmp_path / "l1_report.md").read_text()
    cfg = DemoConfig(out=str(tmp_path), epochs=2, n=300, sigmas=(1.0,), progress=False)
    plan = build_plan(sweep_from_data(shipped_sweep(SWEEP_FILE, cfg), SWEEP_FILE))
    kinds = [j.kind for j in plan.jobs.values()]
    assert kinds.count("train") == 3 and kinds.count("rebox") == 1
    by_label = {r.group: plan.jobs[r.record_job] for r in plan.runs}
    plain, boxed = by_label["Uniform, uniform"].output, by_label["Uniform, uniform + box"].output
    assert record_norm(plain) == record_norm(boxed) == "l1"
    assert threat_model(boxed).inputs == "box" and threat_model(plain).inputs != "box"
    a, b = read_records(plain), read_records(boxed)
    assert len(a) == 449 and all(b["radius"] >= a["radius"])
    assert (a["predict"] == b["predict"]).all()
    grid = by_label["Splitting, deterministic (8-bit grid)"].config
    assert grid.derandomized and grid.template == "seed0" and grid.round_inputs
    assert main(argv) == 0  # resumed: nothing starts
    assert ": started" not in capsys.readouterr().out


def test_denoised_demo_on_the_engine(tmp_path, capsys):
    """Denoised smoothing's demo as sweep stages: one noise-free classifier for every run and
    σ, the MSE denoiser shared by its own run and Stab+MSE's initialisation, the certified
    composite f(D(·)), and a second run that starts nothing."""
    from smoothadv.demos.main import DENOISED_FILE, DemoConfig, denoised_sweep_data
    from smoothadv.sweep import build_plan, sweep_from_data

    argv = ["demo", "--denoised", "--epochs", "4", "--quick", "--sigmas", "0.25",
            "--no-progress", "--device", "cpu", "--out", str(tmp_path)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Stab+MSE denoiser σ=0.25" in printed and "no denoiser σ=0.25" in printed
    cfg = DemoConfig(out=str(tmp_path), epochs=4, quick=True, sigmas=(0.25,), device="cpu",
                     progress=False)
    plan = build_plan(sweep_from_data(denoised_sweep_data(cfg), DENOISED_FILE))
    kinds = [j.kind for j in plan.jobs.values()]
    assert kinds.count("train") == 2 and kinds.count("train-denoiser") == 2  # clean, Gaussian
    clean = next(j for j in plan.jobs.values() if j.kind == "train"
                 and j.config.method == "clean")
    mse, stab = sorted((j for j in plan.jobs.values() if j.kind == "train-denoiser"),
                       key=lambda j: j.config.objective)
    assert (mse.config.objective, stab.config.objective) == ("mse", "stab")
    assert stab.config.init == str(mse.output) and stab.config.classifier == str(clean.output)
    assert mse.config.epochs == 2 and stab.config.epochs == 1 and mse.key in stab.deps
    records = {r.group: plan.jobs[r.record_job] for r in plan.runs}
    assert records["Stab+MSE denoiser"].config.denoiser == f"dncnn:{stab.output}"
    assert records["no denoiser"].config.checkpoint == str(clean.output)
    for job in records.values():
        assert len(read_records(job.output)) == 449 and job.config.n == 1000
    assert (tmp_path / "denoised_report.md").exists()
    assert main(argv) == 0
    assert ": started" not in capsys.readouterr().out
