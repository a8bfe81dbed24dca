"""Runs as data: every stage's config writes to JSON and reads back equal, has a stable content
hash that only result-changing options move, and runs through ``smoothadv run FILE.json`` as
it runs from the command line; methods own their options; adding a method is one file."""

import dataclasses
import json
import random
import subprocess
import sys
import typing

import pytest
import torch

from smoothadv.cli import main
from smoothadv.cli.render import command_argv
from smoothadv.cli.train import train_config_from_args
from smoothadv.configs import canonical_json
from smoothadv.errors import UserError
from smoothadv.methods import (
    Option,
    TrainingMethod,
    create_method,
    list_methods,
    method_spec,
    register_method,
    unregister_method,
)
from smoothadv.methods.base import accuracy_logs, cross_entropy
from smoothadv.models import read_checkpoint
from smoothadv.recipes import SCALES, all_recipes, get_recipe, recipe_stages
from smoothadv.records.files import read_records
from smoothadv.stages import STAGES, TrainConfig, load_config

# ------------------------------------------------------------------ random valid configs

REQUIRED = {"dataset": "digits", "teacher": "teacher.pth.tar", "out": "runs/x"}


def _random_value(rng: random.Random, name: str, tp, default):
    """A random value of annotation ``tp`` (or the default, so that validation holds)."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, __import__("types").UnionType):
        inner = [a for a in args if a is not type(None)][0]
        return None if rng.random() < 0.3 else _random_value(rng, name, inner, None)
    if tp is bool:
        return rng.random() < 0.5
    if tp is int:
        return rng.randint(1, 10_000)
    if tp is float:
        return rng.choice([0.12, 0.25, 0.5, 1.0, rng.uniform(0.01, 0.9)])
    if tp is str:
        return f"path/{rng.randint(0, 99)}"
    if origin is tuple:
        return tuple(_random_value(rng, name, args[0], None) for _ in range(rng.randint(1, 3)))
    return default


# fields whose values are constrained by validation: random values among the valid ones
VALID = {
    "split": ["train", "test"], "compile": ["auto", "on", "off"], "alpha": [0.001, 0.01, 0.05],
    "sigma": [0.25, 0.5, 1.0], "format": ["text", "markdown", "csv"], "method": ["gaussian"],
    "input_normalization": [None, "normalize", "center", "none"], "sequence": ["betting"],
    "attack": ["pgd", "ddn"], "estimator": ["grad", "no_grad"], "ddn_decision": ["vote"],
    "objective": ["mse"], "classifier": [None], "surrogates": [()], "sequential": [False],
    "radii": [None], "labelled": [False], "alpha_split": [None], "anytime_tol": [None],
    "round_inputs": [False], "confidence": [0.001], "max": [-1, 100], "epsilon": [0.25, 0.5],
    "lr_gamma": [0.1, 0.5], "extra_weight": [0.5, 1.0], "lr_delay": [0, 1], "options": [{}],
    "drop_last": [False, True], "momentum": [0.0, 0.9], "weight_decay": [0.0, 1e-4],
    "lr_milestones": [None, (10, 20)], "max_radius": [None, 1.5], "shard": [0],
    "shards": [1], "precision": ["fp32", "bf16"], "amp": [False],
    "class_map": [None, "imagenet-cifar10"], "noise": ["gaussian"], "norm": ["l2"],
    "two_sided": [False], "box": [False], "derandomized": [False], "template": [""],
    "budget": [100_000],  # a sequential option: fixed-n configs refuse another value
    "members": [()], "consensus": [0],  # an ensemble goes without a checkpoint (its test)
    "log": [(), ("csv",)],
}


def random_config(cls, rng: random.Random):
    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        default = None if f.default is dataclasses.MISSING else f.default
        if f.name in VALID:
            values[f.name] = rng.choice(VALID[f.name])
        elif f.name in REQUIRED:
            values[f.name] = REQUIRED[f.name]
        else:
            values[f.name] = _random_value(rng, f.name, hints[f.name], default)
    if cls.stage == "analyze":
        values["labels"] = None
    if cls.stage in ("analyze", "compare"):
        values["radii"] = (0.0, 0.5)
    if cls.stage == "compare":
        values["reference"] = "ref.tsv"
    if cls.stage == "attack":
        values["ddn_gamma"] = rng.choice([None, 0.05])
    return cls(**values)


@pytest.mark.parametrize("stage", sorted(STAGES.names()))
def test_json_round_trip_and_hash_over_random_configs(stage):
    cls = STAGES.get(stage).config
    rng = random.Random(stage)
    for _ in range(40):
        cfg = random_config(cls, rng)
        text = json.dumps(cfg.to_dict())
        back = cls.from_dict(json.loads(text))
        assert back == cfg and back.content_hash() == cfg.content_hash()
        assert hash(back) == hash(cfg)
        assert len(cfg.content_hash()) == 16
        # options that do not change results leave the hash alone; those that do move it
        for f in dataclasses.fields(cls):
            if not f.metadata.get("result", True) and f.name not in ("out",):
                other = cfg.replace(**{f.name: _flip(getattr(cfg, f.name), f.name)})
                assert other.content_hash() == cfg.content_hash(), f.name
        if "seed" in cfg.result_fields():
            assert cfg.replace(seed=cfg.seed + 1).content_hash() != cfg.content_hash()


def _flip(value, name):
    if isinstance(value, bool):
        return not value
    if name == "compile":
        return "on" if value != "on" else "off"
    if isinstance(value, int):
        return value + 1
    if name == "device":
        return "cpu" if value != "cpu" else "cuda"
    if name in ("dist_timeout", "workers"):
        return 30 if value is None else None
    if name == "log":
        return () if value else ("csv",)
    return None if value is not None else "examples"


def test_equal_options_give_equal_configs_written_or_implied():
    implied = TrainConfig(dataset="digits", out="a", method="macer", sigma=1)
    written = TrainConfig(dataset="digits", out="b", method="macer", sigma=1.0,
                          options={"lbd": 12, "num_noise": 16, "deferred": 51})
    assert implied == written.replace(out="a")
    assert implied.content_hash() == written.content_hash()
    assert implied.options["deferred"] == 51  # the authors' setting at σ = 1.0, written out


def test_the_hash_is_the_same_in_another_process(tmp_path):
    cfg = TrainConfig(dataset="digits", out=str(tmp_path / "r"), method="smoothadv",
                      options={"epsilon": 0.5, "multi_noise": True, "num_noise": 2})
    path = tmp_path / "cfg.json"
    path.write_text(json.dumps({"stage": cfg.stage, "config": cfg.to_dict()}))
    code = ("import sys; from smoothadv.stages import load_config; "
            "print(load_config(sys.argv[1]).content_hash())")
    other = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True,
                           text=True, check=True, env={"PYTHONHASHSEED": "123"})
    assert other.stdout.strip() == cfg.content_hash()
    # and the hash is that of the canonical JSON, not of Python's hash()
    import hashlib

    assert cfg.content_hash() == hashlib.sha256(
        canonical_json(cfg.identity()).encode()).hexdigest()[:16]


def test_unknown_keys_and_bad_types_are_refused_in_one_line():
    with pytest.raises(UserError, match="unknown option.*sigmaa"):
        TrainConfig.from_dict({"dataset": "digits", "out": "x", "sigmaa": 0.5})
    with pytest.raises(UserError, match="--epochs must be a whole number"):
        TrainConfig(dataset="digits", out="x", epochs="ten")
    with pytest.raises(UserError, match=r"method macer has no option steps; its options: "
                                        r"num_noise \(--m-train\), lbd"):
        TrainConfig(dataset="digits", out="x", method="macer", options={"steps": 1})
    with pytest.raises(UserError, match="method macer has no option steps"):
        create_method("macer", sigma=0.25, steps=1)


def test_a_mistyped_train_option_fails_on_the_command_line(capsys, tmp_path):
    code = main(["train", "--dataset", "digits", "--method", "stability", "--m-train", "4",
                 "--out", str(tmp_path / "x"), "--epochs", "1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "method stability has no option num_noise" in err[0] and "lbd (--lbd)" in err[0]


def test_every_method_declares_its_options_with_flags_and_help():
    for name in list_methods():
        spec = method_spec(name)
        assert spec.summary, name
        for opt in spec.options:
            assert opt.help and opt.cli_flag.startswith("--"), (name, opt.name)
        resolved = spec.resolve(0.25, {})
        assert set(resolved) == set(spec.option_names())
    assert method_spec("catrs").needs == ("soft_targets",)


# ------------------------------------------------------------------ a method in one file


class HalfNoise(TrainingMethod):
    """A method defined here only: Gaussian augmentation at a fraction of σ."""

    name = "halfnoise"

    def __init__(self, *, sigma: float, fraction: float) -> None:
        super().__init__(sigma=sigma)
        self.fraction = fraction

    def loss(self, model, x, y, noise, epoch=0, *, attack_model=None, generator=None,
             **draws):
        logits = model(x + self.fraction * self.sigma * noise[:, 0])
        loss = cross_entropy(logits, y)
        return loss, {"loss": loss.item(), **accuracy_logs(logits, y)}


@pytest.fixture
def halfnoise():
    @register_method("halfnoise", options=(
        Option("fraction", float, 0.5, "the fraction of σ trained at", flag="--fraction"),),
        summary="Gaussian augmentation at a fraction of σ (a test's own method)")
    def build(*, sigma: float, fraction: float) -> HalfNoise:
        return HalfNoise(sigma=sigma, fraction=fraction)

    yield
    unregister_method("halfnoise")


def test_a_method_defined_in_one_file_trains_through_config_and_command_line(
        halfnoise, tmp_path):
    from smoothadv.stages import run_stage

    cfg = TrainConfig(dataset="digits", arch="mlp", out=str(tmp_path / "lib"),
                      method="halfnoise", options={"fraction": 0.25}, epochs=1, batch=64,
                      train_subset=256, test_subset=64, progress=False)
    run_stage(cfg)
    assert main(["train", "--dataset", "digits", "--arch", "mlp", "--method", "halfnoise",
                 "--fraction", "0.25", "--epochs", "1", "--batch", "64", "--train-subset",
                 "256", "--test-subset", "64", "--out", str(tmp_path / "cli"),
                 "--no-progress"]) == 0
    a = read_checkpoint(tmp_path / "lib" / "checkpoint.pth.tar")
    b = read_checkpoint(tmp_path / "cli" / "checkpoint.pth.tar")
    assert a["method"] == "halfnoise" and a["hparams"]["options"] == {"fraction": 0.25}
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert main(["train", "--dataset", "digits", "--method", "halfnoise", "--lbd", "2",
                 "--out", str(tmp_path / "bad")]) == 2


# ------------------------------------------------------------------ smoothadv run FILE.json


def test_run_file_repeats_a_training_and_a_certification(tmp_path):
    base = ["--dataset", "digits", "--arch", "mlp", "--method", "smoothadv", "--epsilon", "0.5",
            "--steps", "2", "--m-train", "2", "--multi-noise", "--epochs", "2", "--batch",
            "64", "--train-subset", "256", "--test-subset", "64", "--no-progress"]
    assert main(["train", *base, "--out", str(tmp_path / "a")]) == 0
    document = json.loads((tmp_path / "a" / "config.json").read_text())
    assert document["stage"] == "train" and len(document["config_hash"]) == 16
    document["config"]["out"] = str(tmp_path / "b")  # the same run, written elsewhere
    (tmp_path / "b.json").write_text(json.dumps(document))
    assert main(["run", str(tmp_path / "b.json")]) == 0
    a = read_checkpoint(tmp_path / "a" / "checkpoint.pth.tar")["state_dict"]
    b = read_checkpoint(tmp_path / "b" / "checkpoint.pth.tar")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert load_config(tmp_path / "b" / "config.json").content_hash() == \
        document["config_hash"]

    ckpt = str(tmp_path / "a" / "checkpoint.pth.tar")
    assert main(["certify", ckpt, "--n0", "10", "--n", "200", "--max", "30", "--skip", "3",
                 "--out", str(tmp_path / "c1.tsv"), "--no-progress"]) == 0
    cert = json.loads((tmp_path / "c1.tsv.config.json").read_text())
    cert["config"]["out"] = str(tmp_path / "c2.tsv")
    (tmp_path / "c2.json").write_text(json.dumps(cert))
    assert main(["run", str(tmp_path / "c2.json")]) == 0
    r1, r2 = read_records(tmp_path / "c1.tsv"), read_records(tmp_path / "c2.tsv")
    for col in ("idx", "label", "predict", "radius", "correct"):
        assert (r1[col] == r2[col]).all(), col


def test_run_show_prints_the_resolved_config(capsys, tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"stage": "train", "dataset": "digits", "out": "x",
                                "method": "stability"}))
    assert main(["run", str(path), "--show"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["config"]["options"] == {"lbd": 2.0} and len(shown["config_hash"]) == 16
    path.write_text(json.dumps({"stage": "nonsense"}))
    assert main(["run", str(path)]) == 2


# ------------------------------------------------------------------ recipes build configs


@pytest.mark.parametrize("scale", SCALES)
def test_recipe_stages_parse_back_from_their_command_lines(scale):
    from smoothadv.cli import build_parser

    parser = build_parser()
    for entry in all_recipes():
        extra = dict(pretrained="pre.pth.tar") if entry["pretraining"] else {}
        if entry["self_training_weight"] is not None:
            extra["extra_data"] = "pseudo.pickle"
        for stage in recipe_stages(entry, "runs/r", scale, "data", "logs", **extra):
            argv = command_argv(stage.config)
            args = parser.parse_args(argv)
            if stage.config.stage == "train":
                back = train_config_from_args(args)
            else:
                from smoothadv.cli.common import config_from_args

                back = config_from_args(type(stage.config), args)
            assert back == stage.config, (entry["name"], stage.name, argv)


def test_the_salman_baseline_at_025_is_the_released_model():
    entry = get_recipe("cifar10-smoothadv-rerun-s0.25")
    released = get_recipe(entry["same_as"])
    assert entry["normalization"] == released["normalization"] == "center"
    for key in ("attack", "steps", "epsilon", "m_train", "multi_noise", "warmup"):
        assert entry[key] == released[key], key
    assert "Not a re-run" in entry["notes"]
    for sigma in ("0.50", "1.00"):
        assert get_recipe(f"cifar10-smoothadv-rerun-s{sigma}")["same_as"] is None


def test_every_config_document_names_the_program_that_wrote_it(tmp_path):
    """Provenance: smoothadv's version, the checkout's commit and whether it had changes,
    torch's and Python's versions — in the document, never in the hash; compare notes records
    written by different programs."""
    import subprocess

    from smoothadv import __version__
    from smoothadv.analysis.compare import compare
    from smoothadv.configs import config_document, provenance
    from smoothadv.records.files import read_records
    from smoothadv.stages import CertifyConfig

    cfg = CertifyConfig(checkpoint="c.pth.tar", out="x.tsv")
    doc = config_document(cfg)
    facts = doc["provenance"]
    assert facts == provenance() and facts["smoothadv"] == __version__
    assert facts["torch"] == torch.__version__.split("+")[0] or facts["torch"] == torch.__version__
    from .conftest import ROOT

    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                          text=True).stdout.strip()
    if head:  # run from the checkout
        assert facts["git_commit"] == head and isinstance(facts["git_dirty"], bool)
    assert "provenance" not in cfg.identity()
    rows = "idx\tlabel\tpredict\tradius\tcorrect\ttime\n0\t1\t1\t0.5\t1\t0:00:00\n"
    for name, commit in (("a", "1" * 40), ("b", "2" * 40)):
        (tmp_path / f"{name}.tsv").write_text(rows)
        (tmp_path / f"{name}.tsv.config.json").write_text(json.dumps(
            {**doc, "radius_rounding": "down", "provenance": {**facts, "git_commit": commit}}))
    result = compare(read_records(tmp_path / "a.tsv"), read_records(tmp_path / "b.tsv"), [0.25])
    assert any("different programs" in n and "git_commit" in n for n in result.warnings)
