"""The training-method baselines as recipes: one per published CAT-RS log, with the authors'
settings, their schedule checked against CAT-RS's training logs, and a tiny run per method."""

import math
from pathlib import Path

import pytest

from smoothadv import recipes as R
from smoothadv.cli import main
from smoothadv.methods import create_method
from smoothadv.recipes.baselines import baselines

from .conftest import shared_path

FACTS = {  # the data README's settings (the CAT-RS authors' EXPERIMENTS file)
    "stability": {0.25: dict(lbd=2.0), 0.5: dict(lbd=2.0), 1.0: dict(lbd=1.0)},
    "macer": {0.25: dict(lbd=12.0, deferred=0), 0.5: dict(lbd=6.0, deferred=0),
              1.0: dict(lbd=12.0, deferred=51)},
    "consistency": {s: dict(lbd=v, eta=0.5, num_noise=2)
                    for s, v in ((0.25, 20.0), (0.5, 10.0), (1.0, 10.0))},
    "smoothmix": {0.25: dict(num_noise=2, steps=4, alpha=0.5, eta=5.0, mix_step=0),
                  0.5: dict(num_noise=2, steps=4, alpha=1.0, eta=5.0, mix_step=1)},
    "catrs": {s: dict(num_noise=4, epsilon=1.0, steps=4, lbd=v)
              for s, v in ((0.25, 0.5), (0.5, 1.0), (1.0, 2.0))},
}


def test_every_published_log_has_a_recipe_with_the_authors_settings():
    logs = shared_path("baseline-logs")
    published = sorted(p.relative_to(logs).as_posix() for p in logs.rglob("noise_*.tsv"))
    assert len(published) == 20
    by_log = {e["paper_log"]: e for e in baselines() if e["paper_log"]}
    assert sorted(by_log) == published
    names = [e["name"] for e in R.all_recipes()]
    assert len(names) == len(set(names))
    for log, entry in by_log.items():
        sigma = float(Path(log).parts[1].split("_")[1])
        # the σ = 0.25 salman log is the SmoothAdv paper's released model (its schedule)
        delay = 0 if entry.get("same_as") else 1
        assert entry["sigma"] == sigma and entry["lr_delay"] == delay and entry["epochs"] == 150
        if entry["method"] in ("gaussian", "smoothadv"):
            continue  # checked by the paper's recipes' tests
        method = create_method(entry["method"], sigma=sigma, **R.method_options(
            entry, entry["steps"], entry["m_train"], entry["warmup"]))
        for key, value in FACTS.get(entry["method"], {}).get(sigma, {}).items():
            assert math.isclose(getattr(method, key), value), (log, key)
    assert next(e for e in baselines() if e["method"] == "macer")["batch"] == 64
    original = R.get_recipe("cifar10-macer-original-s0.25")
    assert (original["normalization"], original["lr_milestones"], original["epochs"],
            original["lr"], original["weight_decay"]) == ("none", [200, 400], 440, 0.01, 5e-4)


def test_catrs_schedule_matches_its_training_logs():
    import torch

    from smoothadv.train import TrainConfig, _scheduler

    entry = R.get_recipe("cifar10-catrs-s0.25")
    for sigma in ("0.25", "0.5", "1.0"):
        rows = shared_path("baseline-logs", "cifar10", f"noise_{sigma}", "cat-rs", "log.txt") \
            .read_text().splitlines()[1:]
        logged = [float(r.split("\t")[2]) for r in rows]
        assert len(logged) == entry["epochs"]
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=entry["lr"])
        sched = _scheduler(opt, TrainConfig(dataset="cifar10", out="x", lr_step=entry["lr_step"],
                                            lr_delay=entry["lr_delay"]))
        ours = []
        for _ in logged:
            ours.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        for epoch, (a, b) in enumerate(zip(ours, logged)):
            if epoch in (51, 101):  # get_lr() under step(epoch) prints γ² there, not the lr used
                assert math.isclose(b, a * 0.1, rel_tol=1e-6)
            else:
                assert math.isclose(a, b, rel_tol=1e-6), epoch


@pytest.mark.parametrize("name", ["cifar10-gaussian-rerun-s0.50", "cifar10-stability-s0.50",
                                  "cifar10-smoothadv-rerun-s0.50", "cifar10-macer-s0.50",
                                  "cifar10-consistency-s0.50", "cifar10-smoothmix-s0.50",
                                  "cifar10-catrs-s0.50"])
def test_tiny_recipe_per_method_runs_and_compares(tmp_path, capsys, name):
    root, logs = shared_path("cifar10"), shared_path("baseline-logs")
    out = tmp_path / "r"
    assert main(["recipe", "run", name, "--scale", "tiny", "--out", str(out), "--data-root",
                 str(root), "--paper-logs", str(logs)]) == 0
    text = capsys.readouterr().out
    assert "difference" in text and "ACR" in text
    assert len((out / "certify.tsv").read_text().splitlines()) == 21
    method = R.get_recipe(name)["method"]
    assert f'"method": "{method}"' in (out / "train" / "config.json").read_text()
