import json
import os
import subprocess
import sys

import pytest
import torch

from smoothadv.attacks.smoothadv import SmoothAdvDDN, SmoothAdvPGD
from smoothadv.cli import main
from smoothadv.data.datasets import create_dataset
from smoothadv.methods import create_method, warmup_epsilon
from smoothadv.models import create_model, load_checkpoint, read_checkpoint
from smoothadv.train import TrainConfig, Trainer, load_extra_data, train

from .conftest import ROOT, shared_path

OPTION_KEYS = {"m_train": "num_noise", "steps": "steps", "epsilon": "epsilon",
               "attack": "attack", "multi_noise": "multi_noise", "warmup": "warmup",
               "estimator": "estimator"}


def _cfg(tmp_path, **kw):
    """A digits run; the method's options (m_train, steps, …) go into ``options``."""
    base = dict(dataset="digits", out=str(tmp_path / "run"), epochs=2, batch=64, lr=0.1,
                lr_step=10, progress=False, device="cpu")
    options = {OPTION_KEYS[k]: kw.pop(k) for k in list(kw) if k in OPTION_KEYS}
    base.update(kw)
    return TrainConfig(options=options, **base)


def _log(path):
    lines = (path / "log.tsv").read_text().splitlines()
    return [line.split("\t") for line in lines]


def test_gaussian_training_on_digits_learns(tmp_path):
    ckpt = train(_cfg(tmp_path, epochs=6, sigma=0.25))
    log = _log(tmp_path / "run")
    assert log[0][:7] == ["epoch", "seconds", "lr", "train_loss", "train_acc", "test_loss",
                          "test_acc"]
    assert len(log) == 7
    test_acc = float(log[-1][6])
    assert test_acc > 0.80  # chance is 0.10; measured ≈ 0.9 after 6 epochs at σ = 0.25
    model, meta = load_checkpoint(ckpt)
    assert meta["sigma"] == 0.25 and meta["method"] == "gaussian" and meta["epoch"] == 6
    assert meta["hparams"]["batch"] == 64


def test_warmup_schedule():
    assert [warmup_epsilon(0.5, e, 4) for e in range(6)] == [0.125, 0.25, 0.375, 0.5, 0.5, 0.5]
    assert warmup_epsilon(0.5, 0, 0) == 0.5


@pytest.mark.parametrize("attack_cls", [SmoothAdvPGD, SmoothAdvDDN])
@pytest.mark.parametrize("multi_noise", [True, False])
def test_smoothadv_trains_on_attacked_points(attack_cls, multi_noise):
    torch.manual_seed(0)
    data = create_dataset("digits", "train")
    model = create_model("mlp", 10, mean=(0.3,), std=(0.38,), image_size=8)
    seen = []
    model.register_forward_hook(lambda mod, inp, out: seen.append((mod.training, inp[0])))
    method = create_method("smoothadv", sigma=0.25, epsilon=1.0, steps=3, num_noise=4,
                           attack="pgd" if attack_cls is SmoothAdvPGD else "ddn",
                           multi_noise=multi_noise, warmup=4)
    assert isinstance(method.attack, attack_cls)
    x, y = data.images[:64], data.targets[:64]
    steps = list(method.minibatches(x, y))
    assert len(steps) == (4 if multi_noise else 1)
    trained = []
    for xb, yb in steps:
        noise = torch.randn(xb.shape[0], 4, *xb.shape[1:])
        model.train()
        loss, logs = method.loss(model, xb, yb, noise, epoch=1)  # warm-up ε = 0.5 at epoch 1
        assert loss.requires_grad and logs["count"] == xb.shape[0] * (4 if multi_noise else 1)
        attack_rows = [inp for training, inp in seen if not training]
        assert {r.shape[0] for r in attack_rows} == {64}  # every attack forward holds 64
        noisy = [inp for training, inp in seen if training][-1]
        trained.append((xb, noisy, noise * 0.25))
        seen.clear()
    assert model.training  # restored by the attack
    for xb, noisy, delta in trained:
        rows = noisy.view(xb.shape[0], -1, *xb.shape[1:])
        # the training noise is the attack's own: noisy − δ is the attacked point x′
        x_adv = rows - (delta if multi_noise else delta[:, :1])
        assert torch.allclose(x_adv, x_adv[:, :1].expand_as(x_adv), atol=1e-6)
        dist = (x_adv[:, 0] - xb).flatten(1).norm(dim=1)
        slack = 1e-5 if attack_cls is SmoothAdvPGD else 8 / 510  # DDN rounds to 256 levels
        assert dist.max() > 0 and dist.max() <= 0.5 + slack


@pytest.mark.parametrize("extra", [
    dict(method="smoothadv", attack="pgd", m_train=2, multi_noise=True, steps=2,
         epsilon=0.5, warmup=2),
    dict(method="smoothadv", attack="ddn", m_train=2, steps=2, epsilon=0.5,
         estimator="no_grad"),
])
def test_smoothadv_runs_log_attacked_accuracy(tmp_path, extra):
    train(_cfg(tmp_path, epochs=2, eval_adv_max=64, **extra))
    log = _log(tmp_path / "run")
    assert len(log) == 3
    assert all(0 <= float(row[7]) <= 1 for row in log[1:])
    if extra.get("warmup"):
        assert [float(row[8]) for row in log[1:]] == [0.25, 0.5]


def test_resume_matches_an_uninterrupted_run(tmp_path):
    kw = dict(method="smoothadv", m_train=2, steps=2, epsilon=0.5, train_subset=512)
    train(_cfg(tmp_path / "a", epochs=2, **kw))
    train(_cfg(tmp_path / "b", epochs=1, **kw))
    train(_cfg(tmp_path / "b", epochs=2, resume=True, **kw))
    log_a, log_b = _log(tmp_path / "a" / "run"), _log(tmp_path / "b" / "run")
    assert len(log_a) == len(log_b) == 3

    def no_time(rows):
        return [r[:1] + r[2:] for r in rows]

    assert no_time(log_a) == no_time(log_b)
    ca = read_checkpoint(tmp_path / "a" / "run" / "checkpoint.pth.tar")
    cb = read_checkpoint(tmp_path / "b" / "run" / "checkpoint.pth.tar")
    assert ca["epoch"] == cb["epoch"] == 2
    for k, v in ca["state_dict"].items():
        assert torch.allclose(v.float(), cb["state_dict"][k].float(), atol=1e-6), k
    for i, state in ca["optimizer"]["state"].items():
        assert torch.allclose(state["momentum_buffer"],
                              cb["optimizer"]["state"][i]["momentum_buffer"], atol=1e-6)


def test_finetune_with_another_class_count_and_pseudo_labels(tmp_path):
    # a 10-class teacher, then pseudo-labels for a folder of unlabelled images
    teacher = train(_cfg(tmp_path / "t", epochs=2))
    folder = tmp_path / "unlabelled" / "all"
    folder.mkdir(parents=True)
    images = create_dataset("digits", "test").images[:40]
    for i, img in enumerate(images):
        save_image(img, folder / f"{i}.png")
    out = tmp_path / "pseudo.pt"
    assert main(["pseudo-label", "--teacher", str(teacher), "--dataset", "folder",
                 "--data-root", str(tmp_path / "unlabelled"), "--out", str(out),
                 "--no-progress"]) == 0
    extra = load_extra_data(out)
    assert len(extra) == 40 and extra.images.shape == (40, 1, 8, 8)
    model, _ = load_checkpoint(teacher)
    with torch.no_grad():
        expected = model(torch.stack([extra.image(i) for i in range(40)])).argmax(1)
    assert torch.equal(extra.targets, expected)
    # self-training with the pseudo-labelled data
    train(_cfg(tmp_path / "s", epochs=1, extra_data=str(out), extra_weight=0.5))
    # fine-tuning a 10-class checkpoint on a 3-class folder: the head is replaced
    three = tmp_path / "three"
    for c in range(3):
        (three / "train" / str(c)).mkdir(parents=True)
        (three / "test" / str(c)).mkdir(parents=True)
        for i in range(8):
            save_image(images[(i + c) % 40], three / "train" / str(c) / f"{i}.png")
            save_image(images[(i + c) % 40], three / "test" / str(c) / f"{i}.png")
    trainer = Trainer(_cfg(tmp_path / "f", dataset="folder", data_root=str(three), arch="mlp",
                           epochs=1, pretrained=str(teacher), lr=0.001))
    assert trainer.num_classes == 3
    assert trainer.fresh == ["1.5.bias", "1.5.weight"]
    ckpt = trainer.run()
    model3, meta3 = load_checkpoint(ckpt)
    assert meta3["num_classes"] == 3
    # the first layer starts from the teacher's weights and moves little at lr 0.001
    change = (model3[1][1].weight - model[1][1].weight).abs().max()
    assert 0 < change < 0.05


def test_carmon_pickle_and_bad_extra_data(tmp_path):
    import pickle

    import numpy as np

    blob = {"data": np.random.default_rng(0).integers(0, 256, (20, 32, 32, 3), dtype=np.uint8),
            "extrapolated_targets": np.arange(20) % 10}
    path = tmp_path / "ti_500K_pseudo_labeled.pickle"
    path.write_bytes(pickle.dumps(blob))
    extra = load_extra_data(path)
    assert extra.images.shape == (20, 3, 32, 32) and extra.targets.tolist()[:3] == [0, 1, 2]
    assert extra.augment  # 32×32 extra images get the paper's crop and flip
    assert torch.equal(extra.images[5].permute(1, 2, 0), torch.from_numpy(blob["data"][5]))
    bad = tmp_path / "bad.pt"
    torch.save({"images": torch.zeros(2)}, bad)
    from smoothadv.errors import UserError

    with pytest.raises(UserError, match="needs keys 'data' and 'extrapolated_targets'"):
        load_extra_data(bad)


def save_image(img: torch.Tensor, path) -> None:
    """A greyscale PNG of a [1,H,W] image in [0,1]."""
    from PIL import Image

    Image.fromarray((img[0] * 255).round().byte().numpy(), mode="L").save(path)


def test_ddp_two_processes_on_cpu(tmp_path):
    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "smoothadv", "train", "--dataset", "digits", "--epochs", "1", "--batch",
           "32", "--train-subset", "256", "--test-subset", "64", "--device", "cpu",
           "--method", "smoothadv", "--m-train", "2", "--steps", "1", "--no-progress",
           "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(_log(out)) == 2
    model, meta = load_checkpoint(out / "checkpoint.pth.tar")
    assert meta["epoch"] == 1
    cfg = (out / "config.json").read_text()
    assert '"world_size": 2' in cfg


def test_one_short_epoch_on_real_cifar10(tmp_path):
    root = shared_path("cifar10")
    train(_cfg(tmp_path, dataset="cifar10", data_root=str(root), arch="cifar_resnet20",
               epochs=1, batch=32, train_subset=128, test_subset=32, method="smoothadv",
               m_train=2, steps=1, epsilon=0.25))
    log = _log(tmp_path / "run")
    assert len(log) == 2 and 0 <= float(log[1][6]) <= 1


def test_bad_training_arguments(tmp_path, capsys):
    assert main(["train", "--dataset", "digits", "--sigma", "-1", "--out", str(tmp_path)]) == 2
    assert "sigma" in capsys.readouterr().err
    assert main(["train", "--dataset", "digits", "--arch", "vgg", "--out", str(tmp_path)]) == 2
    assert "unknown architecture 'vgg'" in capsys.readouterr().err
    assert main(["train", "--dataset", "digits", "--lr-gamma", "0", "--out", str(tmp_path)]) == 2
    assert "--lr-gamma" in capsys.readouterr().err


def test_resume_without_a_checkpoint_starts_the_run(tmp_path, capsys):
    # a run killed before its first checkpoint: the identical command simply starts it
    args = ["train", "--dataset", "digits", "--epochs", "1", "--batch", "64", "--resume",
            "--train-subset", "128", "--no-progress", "--out", str(tmp_path / "run")]
    assert main(args) == 0
    assert "no checkpoint" in capsys.readouterr().out
    assert len(_log(tmp_path / "run")) == 2
    assert main(args) == 0  # now complete: resuming does nothing more
    assert len(_log(tmp_path / "run")) == 2


def test_lr_gamma(tmp_path):
    train(_cfg(tmp_path, epochs=3, lr=0.1, lr_step=1, lr_gamma=0.5, train_subset=128))
    assert [float(r[2]) for r in _log(tmp_path / "run")[1:]] == [0.1, 0.05, 0.025]


def test_ddp_evaluation_of_a_batchnorm_network_equals_its_checkpoint(tmp_path):
    """Two ranks (gloo) train a BatchNorm network; the logged test figures are those of one
    process evaluating the saved checkpoint (each rank's running statistics drift apart after
    the last step; the evaluation uses rank 0's, which the checkpoint holds)."""
    from smoothadv.train import TrainConfig
    from smoothadv.train.loop import Trainer

    out = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           "2", "-m", "smoothadv", "train", "--dataset", "digits", "--arch", "digits_cnn",
           "--epochs", "1", "--batch", "32", "--train-subset", "256", "--test-subset", "96",
           "--device", "cpu", "--no-progress", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    logged = _log(out)[1]
    document = json.loads((out / "config.json").read_text())
    cfg = TrainConfig.from_dict({**document["config"], "progress": False})
    trainer = Trainer(cfg)  # one process: resumes the finished run's checkpoint
    loss, acc, _ = trainer.evaluate(0)
    assert (f"{loss:.4f}", f"{acc:.4f}") == (logged[5], logged[6])


def test_fp16_training_of_a_method_with_input_gradients_is_refused(tmp_path):
    """Decided for fp16: a step that differentiates with respect to the input (SmoothAdv's
    attack, SmoothMix's and CAT-RS's adversarial steps) would run under autocast without loss
    scaling; such runs are refused in one line, before any file is written (bf16 or fp32)."""
    from smoothadv.errors import UserError
    from smoothadv.methods import create_method
    from smoothadv.methods.catrs import CatRS
    from smoothadv.train import TrainConfig
    from smoothadv.train.loop import Trainer

    assert CatRS.own_input_gradients  # (its runs need soft targets; refused the same way)
    for name, options in [("smoothadv", {}), ("smoothmix", {}),
                          ("consistency", {"attack": "pgd"})]:
        out = tmp_path / name
        cfg = TrainConfig(out=str(out), dataset="digits", method=name, precision="fp16",
                          options=options, device="cuda", progress=False)
        with pytest.raises(UserError, match="fp16 without loss scaling"):
            Trainer(cfg)
        assert not out.exists()
    assert not create_method("macer", sigma=0.25).input_gradients
    assert not create_method("gaussian", sigma=0.25).input_gradients


def test_resume_with_loader_workers_and_augmentation_is_the_uninterrupted_run(tmp_path):
    """Loader workers (the CUDA default) with crop-and-flip augmentation: a run stopped after
    its first epoch and resumed ends with the weights of the uninterrupted run, bit for bit
    (persistent workers kept the random state they were seeded with at start-up, which a
    resumed run seeds anew)."""

    root = shared_path("cifar10")
    common = dict(dataset="cifar10", data_root=str(root), arch="cifar_resnet20", batch=32,
                  train_subset=64, test_subset=16, lr_step=10, workers=2, channels_last=False)
    whole = train(_cfg(tmp_path / "a", epochs=2, **common))
    train(_cfg(tmp_path / "b", epochs=1, **common))
    resumed = train(_cfg(tmp_path / "b", epochs=2, **common))  # the same folder, continued
    a = torch.load(whole, weights_only=False)["state_dict"]
    b = torch.load(resumed, weights_only=False)["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)
