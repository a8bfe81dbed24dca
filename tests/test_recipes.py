"""The catalogue of the paper's models, `smoothadv recipe`, and `smoothadv compare`."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from smoothadv import analysis as A
from smoothadv import recipes as R
from smoothadv.analysis.compare import compare, newcombe_independent, newcombe_paired, wilson
from smoothadv.cli import build_parser, main
from smoothadv.cli.render import command_argv
from smoothadv.errors import UserError
from smoothadv.recipes.paperlogs import parse_log_path
from smoothadv.records.files import read_records

from .conftest import shared_path
from .test_analysis import _expected_tables

GROUPS = ["cifar10/cohen", "cifar10/ours", "cifar10/ours_pretraining",
          "cifar10/ours_selftraining", "cifar10/ours_pretraining_selftraining",
          "imagenet/replication",
          "imagenet/PGD_1step + imagenet/DDN_2steps"]


def _winning_logs(root):
    """Every (group, log path) that wins a cell of the paper's envelopes."""
    out = set()
    for group in GROUPS:
        radii, _ = _expected_tables()[group]
        dirs = [root / g.strip() for g in group.split("+")]
        summaries = A.load_summaries(dirs, radii, warn=lambda m: None, as_written=True)
        paths = {s.label: Path(s.path) for s in summaries}
        for cell in A.envelope(summaries):
            out.add(paths[cell.label].relative_to(root).as_posix())
    return out


def test_catalogue_covers_every_winning_model():
    root = shared_path("paper-logs")
    entries = {f"{e['group']}/{e['paper_log']}": e for e in R.catalogue()}
    winners = _winning_logs(root)
    assert len(winners) >= 30
    for path in winners:
        assert path in entries, path
        facts, entry = parse_log_path(path), entries[path]
        for key in ("sigma", "epsilon", "epsilon_paper", "steps", "m_train", "multi_noise",
                    "attack", "method", "self_training_weight", "arch"):
            assert entry[key] == facts[key], (path, key)
        assert entry["wins"], path
        # ε is a plain ℓ2 radius: the paper's eps_N over 256
        if entry["epsilon_paper"] is not None:
            assert entry["epsilon"] == pytest.approx(entry["epsilon_paper"] / 256, abs=1e-6)
        # the schedule: the paper's, or the fine-tuning length from the folder name
        expected_epochs = facts["finetune_epochs"] or (
            30 if facts["pretraining"] else
            90 if entry["method"] == "gaussian" or entry["dataset"] == "imagenet" else 150)
        assert entry["epochs"] == expected_epochs
        assert entry["lr_step"] == {150: 50, 90: 30, 30: 10}[entry["epochs"]]


def test_catalogue_entries_and_list_json(capsys):
    assert len(R.catalogue()) == 86
    names = [e["name"] for e in R.catalogue()]
    assert len(set(names)) == len(names)
    assert main(["recipe", "list", "--format", "json", "--dataset", "cifar10", "--winners"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows and all(set(R.FIELDS) <= set(r) for r in rows)
    assert all(r["dataset"] == "cifar10" and r["wins"] for r in rows)
    with pytest.raises(UserError, match="did you mean"):
        R.get_recipe("cifar10-pgd2-m8-mn-eps255-s0.26")


@pytest.mark.parametrize("scale", R.SCALES)
def test_shown_commands_parse(scale, capsys):
    parser = build_parser()
    for entry in R.catalogue()[::7]:
        for stage in R.recipe_stages(entry, "runs/x", scale, "data", "logs", None, None):
            argv = command_argv(stage.config)
            args = parser.parse_args(argv)  # accepted by the real parser
            assert args.command == argv[0] == stage.config.stage
    assert main(["recipe", "show", "cifar10-pre-pgd6-eps64-s0.12", "--scale", scale]) == 0
    text = capsys.readouterr().out
    assert "--dataset imagenet32" in text and "--pretrained" in text


def test_recipe_run_tiny_and_resume(tmp_path, capsys):
    root = shared_path("cifar10")
    logs = shared_path("paper-logs")
    out = tmp_path / "run"
    args = ["recipe", "run", "cifar10-pgd2-m8-mn-eps255-s0.25", "--scale", "tiny", "--out",
            str(out), "--data-root", str(root), "--paper-logs", str(logs)]
    assert main(args) == 0
    record = out / "certify.tsv"
    rows = record.read_text().splitlines()
    assert len(rows) == 1 + 20
    assert json.loads((out / "recipe.json").read_text())["scale"] == "tiny"
    # interrupted during certification: the same command continues it
    record.write_text("\n".join(rows[:6]) + "\n" + rows[6][:4])
    capsys.readouterr()
    assert main(args) == 0
    again = record.read_text().splitlines()
    assert [r.rsplit("\t", 1)[0] for r in again] == [r.rsplit("\t", 1)[0] for r in rows]
    assert len((out / "train" / "log.tsv").read_text().splitlines()) == 2  # trained once
    assert "difference" in capsys.readouterr().out  # the compare stage ran


def test_recipe_run_needs_pretrained_or_extra_data(tmp_path, capsys):
    assert main(["recipe", "run", "cifar10-pre-pgd6-eps64-s0.12", "--out", str(tmp_path)]) == 2
    assert "--pretrained" in capsys.readouterr().err
    assert main(["recipe", "run", "cifar10-self-w1-pgd8-eps64-s0.12", "--out",
                 str(tmp_path)]) == 2
    assert "--extra-data" in capsys.readouterr().err


def _log(root, group, rel):
    return root / group / rel


def test_compare_reproduces_the_papers_cells_and_intervals(capsys):
    root = shared_path("paper-logs")
    cohen = _log(root, "cifar10/cohen", "resnet110/noise_0.25/test/sigma_0.25")
    best = _log(root, "cifar10/ours", "cifar10/PGD_2steps_multiNoiseSamples/8-multitrain/eps_255/"
                "cifar10/resnet110/noise_0.25/test/sigma_0.25")  # wins r = 0.5
    radii, expected = _expected_tables()["cifar10/ours"]
    c = compare(read_records(best), read_records(cohen), [0.5], as_written=True)
    assert round(c.radii[0].ours, 2) == expected[radii.index(0.5)][1]  # 0.58, the paper's
    assert c.paired and c.radii[0].low > 0  # SmoothAdv's gain at r = 0.5 is not noise
    # a file against itself: difference 0, an interval around 0
    same = compare(read_records(best), read_records(best), radii)
    assert all(r.difference == 0 and r.low <= 0 <= r.high for r in same.radii)
    assert all(r.ours_only == r.reference_only == 0 for r in same.radii)
    assert main(["compare", str(best), "--reference", str(cohen), "--radii", "0.25", "0.5",
                 "--format", "csv"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    head = lines[0].split(",")
    assert {"ours", "reference", "difference", "low", "high"} <= set(head)
    assert main(["compare", str(best), "--reference", str(cohen), "--format", "json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"ours", "reference", "difference", "low", "high"} <= set(data[0]["radii"][0])


def test_compare_warns_about_different_images(tmp_path, capsys):
    head = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n"
    a, b = tmp_path / "a.tsv", tmp_path / "b.tsv"
    a.write_text(head + "".join(f"{i}\t1\t1\t0.6\t1\t0:00:01\n" for i in range(50)))
    b.write_text(head + "".join(f"{i}\t1\t1\t0.3\t{i % 2}\t0:00:01\n" for i in range(50, 90)))
    assert main(["compare", str(a), "--reference", str(b), "--radii", "0.25"]) == 0
    captured = capsys.readouterr()
    assert "different images" in captured.err and "independent" in captured.out


def test_newcombe_intervals():
    # Newcombe (1998), independent proportions 56/70 vs 48/80: (0.0524, 0.3339)
    low, high = newcombe_independent(56, 70, 48, 80)
    assert (round(low, 4), round(high, 4)) == (0.0524, 0.3339)
    lo, hi = wilson(0, 10)
    assert lo == 0 and hi == pytest.approx(0.2775, abs=1e-4)
    # paired: coverage of the true difference in simulation, and narrower than independent
    rng = np.random.default_rng(0)
    covered, widths = 0, []
    p1, p2, reps, n = 0.7, 0.6, 2000, 200
    for _ in range(reps):
        u = rng.random(n)
        a, b = u < p1, u < p2  # strongly correlated outcomes on the same images
        flip = rng.random(n) < 0.1
        b = np.where(flip, ~b, b)
        true = p1 - ((1 - 0.1) * p2 + 0.1 * (1 - p2))
        both, only_a = int((a & b).sum()), int((a & ~b).sum())
        only_b, neither = int((~a & b).sum()), int((~a & ~b).sum())
        low, high = newcombe_paired(both, only_a, only_b, neither)
        covered += low <= true <= high
        widths.append((high - low,
                       np.subtract(*newcombe_independent(int(a.sum()), n, int(b.sum()), n)[::-1])))
    assert covered / reps >= 0.93
    assert np.mean([w[0] for w in widths]) < np.mean([w[1] for w in widths])
    assert math.isfinite(newcombe_paired(5, 0, 0, 5)[0])
