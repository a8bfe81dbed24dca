from smoothadv.cli import main
from smoothadv.records.files import read_records


def test_demo_writes_records_curves_and_report(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--epochs", "4", "--n", "400", "--no-progress",
                 "--sigmas", "0.25", "0.5", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "Gaussian σ=0.25" in printed and "SmoothAdv-PGD σ=0.5" in printed
    assert "elapsed" in printed
    for run in ("gaussian_sigma0.25", "smoothadv_sigma0.25", "gaussian_sigma0.5",
                "smoothadv_sigma0.5"):
        rec = read_records(out / run / "certify.tsv")
        assert len(rec) == 449  # the whole digits test split
        assert (out / run / "checkpoint.pth.tar").exists()
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    report = (out / "report.md").read_text()
    assert "| SmoothAdv-PGD σ=0.25 |" in report and "n = 400" in report
    assert "has the larger ACR" in report


def test_demo_with_every_method(tmp_path, capsys):
    """--methods all: seven methods, one σ, two seeds (a tiny budget); records per model, the
    table with the paired intervals, and a resumed run that redoes nothing."""
    from smoothadv.demos.methods import ALL

    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "--epochs", "1", "--n", "60", "--no-progress",
            "--sigmas", "0.5", "--seeds", "0", "1", "--workers", "1", "--device", "cpu",
            "--methods", "all"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    for seed in (0, 1):
        for method in ALL:
            assert len(read_records(out / f"{method}_sigma0.5_seed{seed}.tsv")) == 449
    for name in ("| MACER | ", "| CAT-RS | ", "| SmoothMix | ", "ACR − Gaussian [95%]"):
        assert name in printed
    assert (out / "catrs_soft_targets_seed1.pt").exists()  # each seed's teacher
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    before = {p: p.stat().st_mtime_ns for p in out.glob("*/checkpoint.pth.tar")}
    assert main(argv) == 0  # resumed: every model and record is complete
    assert before == {p: p.stat().st_mtime_ns for p in out.glob("*/checkpoint.pth.tar")}
    assert main(["demo", "--out", str(out), "--methods", "nope"]) == 2
    assert main(["demo", "--out", str(out), "--seeds", "1"]) == 2  # not the main demo's


def test_l1_demo_writes_records_curves_and_report(tmp_path, capsys):
    from smoothadv.analysis.settings import record_norm

    assert main(["demo", "--norm", "l1", "--epochs", "2", "--n", "300", "--sigmas", "1.0",
                 "--no-progress", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "Uniform, uniform + box σ=1" in out and "Gaussian, ℓ2 radius σ=1" in out
    assert (tmp_path / "l1_curves.png").stat().st_size > 0
    assert "ℓ1" in (tmp_path / "l1_report.md").read_text()
    plain = tmp_path / "gaussian_uniform_sigma1" / "certify_l1.tsv"
    boxed = plain.with_name("certify_l1_box.tsv")
    assert record_norm(plain) == record_norm(boxed) == "l1"
    a, b = read_records(plain), read_records(boxed)
    assert len(a) == 449 and all(b["radius"] >= a["radius"])
    assert (a["predict"] == b["predict"]).all()
