import json
import re

import numpy as np
import pytest

from smoothadv import analysis as A
from smoothadv.cli import main
from smoothadv.errors import UserError
from smoothadv.records.files import read_records

from .conftest import shared_path

HEADER = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"


def _write(path, rows):
    path.write_text(HEADER + "".join(
        f"{i}\t{lab}\t{pred}\t{rad}\t{int(lab == pred)}\t0:00:01.000000\n"
        for i, (lab, pred, rad) in enumerate(rows)))
    return path


@pytest.fixture
def two_files(tmp_path):
    a = _write(tmp_path / "a.tsv", [(0, 0, 0.3), (1, 1, 0.8), (2, 1, 0.4), (3, -1, 0.0)])
    b = _write(tmp_path / "b.tsv", [(0, 0, 0.1), (1, 1, 0.2), (2, 2, 0.6), (3, 3, 0.05)])
    return a, b


def test_exact_figures(two_files):
    a, b = two_files
    s = A.summarize(read_records(a), [0, 0.25, 0.5, 1.0])
    assert s.certified == [0.5, 0.5, 0.25, 0.0]
    assert s.clean == 0.5 and s.abstain == 0.25
    # a file without a config was rounded to nearest: the ACR, like certified accuracy,
    # counts each radius less half a unit of its last digit ('0.3' → 0.25); as written, 0.3
    assert s.acr == pytest.approx((0.25 + 0.75) / 4)
    assert A.average_certified_radius(read_records(a), as_written=True) == \
        pytest.approx((0.3 + 0.8) / 4)
    t = A.summarize(read_records(b), [0, 0.25, 0.5, 1.0])
    assert t.certified == [1.0, 0.25, 0.25, 0.0]
    assert t.acr == pytest.approx((0.05 + 0.15 + 0.55 + 0.045) / 4)
    cells = A.envelope([s, t])
    assert [c.certified for c in cells] == [1.0, 0.5, 0.25, 0.0]
    assert [c.clean for c in cells] == [1.0, 0.5, 1.0, 1.0]  # tie at 0.5 → higher clean wins


def test_lower_bound_is_below_and_tightens_with_rows(tmp_path):
    rng = np.random.default_rng(0)
    rows = [(0, 0, float(r)) for r in rng.uniform(0, 1, 2000)]
    rec = read_records(_write(tmp_path / "big.tsv", rows))
    radii = [0.0, 0.5]
    approx = A.certified_accuracy(rec, radii)
    lower = A.certified_accuracy_lower_bound(rec, radii, alpha=0.001, confidence=0.001)
    assert np.all(lower < approx) and np.all(lower > approx - 0.06)
    small = read_records(_write(tmp_path / "small.tsv", rows[:200]))
    lower_small = A.certified_accuracy_lower_bound(small, radii, 0.001, 0.001)
    gap_small = A.certified_accuracy(small, radii) - lower_small
    assert np.all(gap_small > approx - lower)


def test_formats(two_files):
    summaries = A.load_summaries(list(two_files), [0, 0.5], labels=["A", "B"])
    table = A.summary_table(summaries)
    md = A.render(table, "markdown").splitlines()
    assert md[0].startswith("| model | sigma | inputs | r=0 | r=0.5 | ACR | abstain |")
    assert md[2].startswith("| A |  | 4 | 0.500 | 0.250 |")
    assert A.render(table, "csv").splitlines()[2].startswith("B,,4,1.000,0.250")
    assert json.loads(A.render(table, "json"))[0]["r=0.5"] == "0.250"
    latex = A.render(table, "latex")
    assert r"\begin{tabular}" in latex and r"B &  & 4 & 1.000 & 0.250" in latex
    with pytest.raises(UserError, match="unknown format"):
        A.render(table, "xml")


def test_robust_to_real_world_input(tmp_path):
    empty = tmp_path / "logs" / "header_only.tsv"
    empty.parent.mkdir()
    empty.write_text(HEADER)
    _write(tmp_path / "logs" / "good.tsv", [(0, 0, 0.5)])
    warnings = []
    out = A.load_summaries([tmp_path / "logs"], [0.0], warn=warnings.append)
    assert len(out) == 1 and "header only" in warnings[0]
    (tmp_path / "nothing").mkdir()
    with pytest.raises(UserError, match="no certification record files"):
        A.expand_paths([tmp_path / "nothing"])
    with pytest.raises(UserError, match="every record file given is empty"):
        A.load_summaries([empty], [0.0], warn=lambda m: None)


def test_empirical_robustness_beside_certified(two_files, tmp_path, capsys):
    att = tmp_path / "att.tsv"
    att.write_text("idx\tlabel\tpredict\tbasePredict\tcorrect\ttime\tcleanPredict\tl2\n"
                   "0\t1\t1\t1\t1\t0:00:01.000000\t1\t0.5\n"
                   "1\t2\t3\t3\t0\t0:00:01.000000\t2\t0.25\n"
                   "2\t4\t-1\t4\t0\t0:00:01.000000\t1\t0.5\n")
    (tmp_path / "att.tsv.config.json").write_text('{"epsilon": 0.5}')
    (s,) = A.load_empirical([att])
    assert s.accuracy == pytest.approx(1 / 3) and s.clean == pytest.approx(2 / 3)
    assert s.mean_l2 == pytest.approx(1.25 / 3) and s.abstain == pytest.approx(1 / 3)
    assert s.epsilon == 0.5
    assert main(["analyze", str(two_files[0]), str(att), "--labels", "cert", "attacked",
                 "--radii", "0", "0.5", "--format", "csv"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[1].startswith("cert,,4,0.500,0.250")
    assert out[-1] == "attacked,3,0.5,0.667,0.333,0.4167,0.333"


def test_plot(two_files, tmp_path):
    summaries = A.load_summaries(list(two_files), [0, 0.5])
    png = A.plot_curves(summaries, tmp_path / "curves.png", A.envelope(summaries))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    with pytest.raises(UserError, match="plot file"):
        A.plot_curves(summaries, tmp_path / "curves.txt")


def test_cli_analyze(two_files, tmp_path, capsys):
    a, b = two_files
    assert main(["analyze", str(a), str(b), "--labels", "Gaussian", "SmoothAdv", "--radii",
                 "0", "0.5", "--format", "markdown", "--plot", str(tmp_path / "c.pdf")]) == 0
    out = capsys.readouterr().out
    assert "| Gaussian |" in out and "| SmoothAdv |" in out
    assert (tmp_path / "c.pdf").read_bytes()[:4] == b"%PDF"
    bad = tmp_path / "bad.tsv"
    bad.write_text(HEADER + "0\t1\t1\n")
    assert main(["analyze", str(bad)]) == 2
    assert "bad.tsv:2: expected 6 fields" in capsys.readouterr().err


def _expected_tables():
    text = (shared_path("paper-logs") / "EXPECTED.md").read_text()
    tables = {}
    radii = None
    for line in text.splitlines():
        if line.startswith("| group |"):
            radii = [float(x) for x in line.strip("| ").split(" | ")[1:]]
        elif line.startswith("| ") and "(" in line:
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            values = [tuple(map(float, re.match(r"\((.*)\) (.*)", c).groups()))
                      for c in cells[1:]]
            tables[cells[0]] = (radii, values)
    return tables


@pytest.mark.parametrize("group", [
    "cifar10/cohen", "cifar10/ours", "cifar10/ours_pretraining", "cifar10/ours_selftraining",
    "cifar10/ours_pretraining_selftraining", "imagenet/replication",
    "imagenet/PGD_1step + imagenet/DDN_2steps",
])
def test_reproduces_the_papers_tables(group, capsys):
    root = shared_path("paper-logs")
    radii, expected = _expected_tables()[group]
    dirs = [str(root / g.strip()) for g in group.split("+")]
    assert main(["analyze", *dirs, "--envelope", "--radii", *map(str, radii), "--format",
                 "csv", "--as-written"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[1].split(",")[1:]
    got = [tuple(map(float, re.match(r"\((.*)\) (.*)", c).groups())) for c in row]
    assert [g[1] for g in got] == [e[1] for e in expected]  # every certified cell
    assert [g[0] for g in got] == [e[0] for e in expected]  # and every clean bracket
    # by default the logs' nearest-rounded radii lose half a unit: never more certified,
    # and within a point of the paper's own arithmetic
    assert main(["analyze", *dirs, "--envelope", "--radii", *map(str, radii), "--format",
                 "csv"]) == 0
    row = capsys.readouterr().out.strip().splitlines()[1].split(",")[1:]
    safe = [tuple(map(float, re.match(r"\((.*)\) (.*)", c).groups())) for c in row]
    assert all(s[1] <= e[1] and s[1] >= e[1] - 0.01 for s, e in zip(safe, expected))


def test_radii_never_round_up(tmp_path):
    from smoothadv.records.files import format_radius

    assert format_radius(0.4996) == "0.499599"  # the double 0.4996 is 0.49959999…
    assert format_radius(0.49999999) == "0.499999"
    assert float(format_radius(0.1 + 0.2)) <= 0.1 + 0.2
    for r in np.random.default_rng(0).uniform(0, 4, 1000):
        assert float(format_radius(r)) <= r
    # a file rounded to nearest (the paper's way): 0.4996 was written 0.500
    old = tmp_path / "nearest.tsv"
    old.write_text(HEADER + "0\t1\t1\t0.500\t1\t0:00:01.0\n1\t1\t1\t0.501\t1\t0:00:01.0\n")
    rec = read_records(old)
    assert rec.rounding == "nearest"
    assert A.certified_accuracy(rec, [0.0, 0.5]).tolist() == [1.0, 0.5]
    assert A.certified_accuracy(rec, [0.5], as_written=True).tolist() == [1.0]
    # our files say they were rounded down, and compare exactly
    new = tmp_path / "down.tsv"
    new.write_text(HEADER + "0\t1\t1\t0.499999\t1\t0:00:01.0\n1\t1\t1\t0.500000\t1\t0:00:01.0\n")
    (tmp_path / "down.tsv.config.json").write_text('{"radius_rounding": "down"}')
    assert A.certified_accuracy(read_records(new), [0.5]).tolist() == [0.5]
