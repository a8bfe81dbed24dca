"""Lower precision (``--precision bf16|fp16``): the certificate is that of the classifier
evaluated in that precision, which must be a fixed function of each input (independent of its
batch, of the batch size and of padding); radii of a linear classifier stay below its true
radius; the precision is recorded and ``compare`` refuses to mix precisions."""

import json

import numpy as np
import pytest
import torch

from smoothadv import ABSTAIN, Smooth
from smoothadv.cli import main
from smoothadv.errors import UserError
from smoothadv.models import create_model, to_channels_last
from smoothadv.runtime.precision import Autocast, at_precision, check_precision


@pytest.mark.parametrize("arch,shape,channels_last", [
    ("cifar_resnet20", (3, 32, 32), True), ("cifar_resnet20", (3, 32, 32), False),
    ("mlp", (1, 8, 8), False), ("lenet", (1, 28, 28), True)])
def test_bf16_logits_of_a_row_do_not_depend_on_its_batch(arch, shape, channels_last):
    torch.manual_seed(0)
    net = create_model(arch, 10, mean=(0.5,) * shape[0], std=(0.25,) * shape[0],
                       image_size=shape[-1]).eval()
    if channels_last:
        net = to_channels_last(net)
    model = Autocast(net, "bf16")
    x = torch.rand(96, *shape)
    with torch.no_grad():
        whole = model(x)
        assert whole.dtype == torch.float32
        split = torch.cat([model(c) for c in x.split(37)])  # other batch sizes
        alone = torch.cat([model(x[i:i + 1]) for i in range(6)])  # one row at a time
        beside = model(torch.cat([x[:6], torch.rand(50, *shape)]))[:6]  # other rows
        padded = model(torch.cat([x[:6], torch.zeros(58, *shape)]))[:6]  # compile's padding
    for other in (split, alone, beside, padded):
        assert torch.equal(whole[:len(other)] if other is split else whole[:6], other)


def test_bf16_radii_of_the_linear_classifier_never_exceed_the_true_radius(linear_model):
    sigma, n, alpha = 0.5, 20_000, 0.001
    g = torch.Generator().manual_seed(5)
    xs = torch.rand(40, 1, 4, 4, generator=g)
    smooth = Smooth(at_precision(linear_model, "bf16"), 2, sigma)
    certs = smooth.certify_many(xs, 100, n, alpha, 5000, seeds=list(range(40)))
    true = linear_model.true_radius(xs)
    checked = 0
    for c, r, x in zip(certs, true, xs):
        if c.prediction == ABSTAIN:
            continue
        assert c.prediction == int(linear_model.margin(x[None]).item() > 0)
        assert c.radius <= float(r) + 1e-6
        checked += 1
    assert checked >= 20
    # bf16 and fp32 counts agree closely on this classifier (its margins are not near ties)
    fp32 = Smooth(linear_model, 2, sigma).certify_many(xs, 100, n, alpha, 5000,
                                                       seeds=list(range(40)))
    radii = np.array([[c.radius for c in fp32], [c.radius for c in certs]])
    assert np.nanmax(np.abs(radii[0] - radii[1])) < 0.02


def test_fp16_needs_cuda_and_unknown_precisions_are_refused():
    with pytest.raises(UserError, match="fp16 runs on CUDA only"):
        check_precision("fp16", torch.device("cpu"))
    with pytest.raises(UserError, match="unknown precision"):
        check_precision("fp8", torch.device("cpu"))
    assert check_precision("fp32", torch.device("cpu")) is None


def test_precision_is_recorded_and_compare_refuses_to_mix(digits_ckpt, tmp_path, capsys):
    base = ["certify", str(digits_ckpt), "--n0", "10", "--n", "200", "--max", "60", "--skip",
            "3", "--no-progress"]
    assert main([*base, "--out", str(tmp_path / "fp32.tsv")]) == 0
    assert main([*base, "--precision", "bf16", "--out", str(tmp_path / "bf16.tsv")]) == 0
    doc = json.loads((tmp_path / "bf16.tsv.config.json").read_text())
    assert doc["config"]["precision"] == "bf16"
    # into the fp32 record, bf16 is another configuration
    assert main([*base, "--precision", "bf16", "--out", str(tmp_path / "fp32.tsv")]) == 2
    assert "precision" in capsys.readouterr().err
    cmp = ["compare", str(tmp_path / "bf16.tsv"), "--reference", str(tmp_path / "fp32.tsv"),
           "--radii", "0.25"]
    assert main(cmp) == 2
    assert "different precisions" in capsys.readouterr().err
    assert main([*cmp, "--allow-mixed"]) == 0
    assert main([*base, "--precision", "fp16", "--out", str(tmp_path / "h.tsv")]) == 2
    assert "fp16 runs on CUDA only" in capsys.readouterr().err


def test_bf16_training_runs_and_records_its_precision(tmp_path, capsys):
    from smoothadv.models import read_checkpoint

    base = ["train", "--dataset", "digits", "--arch", "mlp", "--epochs", "1", "--batch", "64",
            "--train-subset", "128", "--test-subset", "64", "--no-progress"]
    assert main([*base, "--precision", "bf16", "--out", str(tmp_path / "b")]) == 0
    assert main([*base, "--out", str(tmp_path / "f")]) == 0
    b = read_checkpoint(tmp_path / "b" / "checkpoint.pth.tar")
    f = read_checkpoint(tmp_path / "f" / "checkpoint.pth.tar")
    assert b["hparams"]["precision"] == "bf16"
    assert any(not torch.equal(v, f["state_dict"][k]) for k, v in b["state_dict"].items())
    assert main([*base, "--precision", "fp16", "--out", str(tmp_path / "h")]) == 2
    assert "CUDA only" in capsys.readouterr().err


def test_bf16_composes_with_sequential_sound_and_attack(digits_ckpt, tmp_path):
    from smoothadv.records.files import read_records

    base = [str(digits_ckpt), "--max", "30", "--skip", "3", "--no-progress", "--precision",
            "bf16"]
    assert main(["certify", *base, "--sequential", "--radii", "0.25", "--budget", "2000",
                 "--out", str(tmp_path / "q.tsv")]) == 0
    assert main(["certify", *base, "--sound", "--round-inputs", "--n0", "10", "--n", "200",
                 "--out", str(tmp_path / "s.tsv")]) == 0
    assert main(["attack", *base, "--n", "100", "--steps", "2", "--m-test", "2",
                 "--out", str(tmp_path / "a.tsv")]) == 0
    for name in ("q.tsv", "s.tsv", "a.tsv"):
        assert len(read_records(tmp_path / name)) == 10
