"""`smoothadv runs`: the index of run folders and records, their state and figures."""

import json

from smoothadv.cli import main


def test_runs_lists_state_and_figures_and_filters(digits_ckpt, tmp_path, capsys):
    out = tmp_path / "recs" / "c.tsv"
    assert main(["certify", str(digits_ckpt), "--n", "100", "--n0", "10", "--skip", "40",
                 "--no-progress", "--no-compile", "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["runs", str(tmp_path), "--format", "json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["state"] == "done" and entry["stage"] == "certify"
    assert set(entry["figures"]) == {"r=0", "r=0.25", "r=0.5", "r=1", "ACR"}
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[:-3]) + "\n")  # an interrupted record
    assert main(["runs", str(tmp_path), "--where", "state=partial", "n=100"]) == 0
    text = capsys.readouterr().out
    assert f"partial ({len(lines) - 4}/{len(lines) - 1} rows)" in text and "1 found" in text
    assert main(["runs", str(tmp_path), "--where", "sigma=0.5"]) == 0
    assert "no run or record found" in capsys.readouterr().out
    assert main(["runs", str(tmp_path), "--where", "sigma"]) == 2
    assert "KEY=VALUE" in capsys.readouterr().err
    assert main(["runs", str(tmp_path / "nowhere")]) == 2


def test_compare_groups_records_that_differ_only_in_their_training_seed(tmp_path, capsys):
    """Three seeds of one setting and one of another, certified: `compare` shows one "over the
    seeds" row for the three (the lone seed is not a group), equal to over_seeds with the
    reference paired per image, and `runs --where seed=1` finds that seed's run and record."""
    import numpy as np

    from smoothadv.analysis.compare import over_seeds
    from smoothadv.records.files import read_records

    train = ["train", "--dataset", "digits", "--arch", "mlp", "--epochs", "1", "--batch", "64",
             "--train-subset", "256", "--test-subset", "32", "--no-progress", "--device", "cpu"]
    records = {}
    for label, extra in (("s0", ["--seed", "0"]), ("s1", ["--seed", "1"]),
                         ("s2", ["--seed", "2"]), ("other", ["--seed", "0", "--lr", "0.3"])):
        run = tmp_path / label
        assert main([*train, *extra, "--out", str(run)]) == 0
        records[label] = tmp_path / f"{label}.tsv"
        assert main(["certify", str(run / "checkpoint.pth.tar"), "--n", "200", "--n0", "10",
                     "--skip", "15", "--no-progress", "--no-compile", "--out",
                     str(records[label])]) == 0
    capsys.readouterr()
    seeds = [str(records[k]) for k in ("s0", "s1", "s2")]
    assert main(["compare", *seeds, str(records["other"]), "--reference",
                 str(records["other"]), "--radii", "0.25", "0.5", "--format", "markdown"]) == 0
    text = capsys.readouterr().out
    rows = [ln for ln in text.splitlines() if ln.startswith("| method=")]
    assert len(rows) == 1
    cells = [c.strip() for c in rows[0].strip("|").split("|")]
    assert cells[:2] == ["method=gaussian sigma=0.25", "0,1,2"]
    ref = read_records(records["other"])
    expected = over_seeds([read_records(p) for p in seeds], [0.25, 0.5], [ref] * 3)
    assert cells[2:] == expected.cells()
    assert cells[4] == f"{np.mean(expected.acr):.3f} ± {np.std(expected.acr, ddof=1):.3f}"
    assert expected.interval[0] < expected.difference < expected.interval[1]
    assert main(["runs", str(tmp_path), "--where", "seed=1", "--format", "json"]) == 0
    found = {e["path"] for e in json.loads(capsys.readouterr().out)}
    assert found == {str(tmp_path / "s1"), str(records["s1"])}


def test_seed_groups_keep_the_trainings_batch_apart_from_the_certifications(tmp_path):
    """A setting's training batch (or precision) shares its name with certify's options: two
    models trained with batch 64 at seeds 0 and 1 and one with batch 32 at seed 2, certified
    alike, are one group of seeds 0 and 1 — the third is another setting."""
    from smoothadv.stages.reports import seed_groups

    train = ["train", "--dataset", "digits", "--arch", "mlp", "--epochs", "1",
             "--train-subset", "128", "--test-subset", "32", "--no-progress", "--device", "cpu"]
    paths = []
    for seed, batch in ((0, 64), (1, 64), (2, 32)):
        run = tmp_path / f"s{seed}"
        assert main([*train, "--batch", str(batch), "--seed", str(seed), "--out", str(run)]) == 0
        paths.append(tmp_path / f"s{seed}.tsv")
        assert main(["certify", str(run / "checkpoint.pth.tar"), "--n", "50", "--n0", "10",
                     "--skip", "90", "--no-progress", "--no-compile", "--out",
                     str(paths[-1])]) == 0
    ((setting, by_seed),) = seed_groups(paths)
    assert by_seed == {0: str(paths[0]), 1: str(paths[1])}
    assert setting["method"] == "gaussian" and setting["sigma"] == 0.25
