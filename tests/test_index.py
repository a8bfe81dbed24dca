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
