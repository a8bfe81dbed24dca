import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from smoothadv.data.constants import CIFAR10_MEAN, CIFAR10_STD
from smoothadv.errors import UserError
from smoothadv.models import (
    NormalizeLayer,
    create_model,
    list_models,
    load_checkpoint,
    save_checkpoint,
)

from .conftest import shared_path


def test_registry_lists_the_paper_architectures():
    for name in ["cifar_resnet20", "cifar_resnet56", "cifar_resnet110", "resnet50", "mlp",
                 "lenet", "imagenet32_resnet110"]:
        assert name in list_models()
    with pytest.raises(UserError, match="unknown architecture 'resnet7'"):
        create_model("resnet7", 10, mean=CIFAR10_MEAN, std=CIFAR10_STD)


def test_cifar_resnet_depths_and_names():
    for depth in (20, 56, 110):
        m = create_model(f"cifar_resnet{depth}", 10, mean=CIFAR10_MEAN, std=CIFAR10_STD)
        convs = [k for k, v in m.state_dict().items() if k.endswith("weight") and v.dim() == 4
                 and "downsample" not in k]
        assert len(convs) + 1 == depth  # convs plus the linear head
        assert m(torch.rand(2, 3, 32, 32)).shape == (2, 10)
    keys = set(create_model("cifar_resnet20", 10, mean=CIFAR10_MEAN, std=CIFAR10_STD)
               .state_dict())
    assert {"1.conv1.weight", "1.layer1.0.bn1.running_mean", "1.layer2.0.downsample.0.weight",
            "1.layer3.0.downsample.1.bias", "1.fc.bias"} <= keys
    assert "1.layer1.0.downsample.0.weight" not in keys


def test_create_model_from_a_dataset():
    model = create_model("lenet", 10, dataset="mnist")
    assert model[0].mean.flatten().tolist() == pytest.approx([0.1307])
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    with pytest.raises(UserError, match="needs mean and std"):
        create_model("mlp", 10)


def test_normalize_layer():
    layer = NormalizeLayer((0.5, 0.25), (0.5, 0.25))
    x = torch.ones(1, 2, 2, 2)
    assert torch.allclose(layer(x)[0, 0], torch.ones(2, 2))
    assert torch.allclose(layer(x)[0, 1], 3 * torch.ones(2, 2))
    assert layer.state_dict() == {}  # constants live in checkpoint metadata, as in the paper


def _reference_forward(sd: dict, x: torch.Tensor, depth: int) -> torch.Tensor:
    """The CIFAR ResNet written out with functional ops straight from a state dict."""
    mean = torch.tensor(CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR10_STD).view(1, 3, 1, 1)

    def bn(h, p):
        return F.batch_norm(h, sd[p + ".running_mean"], sd[p + ".running_var"],
                            sd[p + ".weight"], sd[p + ".bias"], False, 0.0, 1e-5)

    h = (x - mean) / std
    h = F.relu(bn(F.conv2d(h, sd["1.conv1.weight"], padding=1), "1.bn1"))
    n = (depth - 2) // 6
    for stage in (1, 2, 3):
        for i in range(n):
            p = f"1.layer{stage}.{i}"
            stride = 2 if stage > 1 and i == 0 else 1
            out = F.relu(bn(F.conv2d(h, sd[p + ".conv1.weight"], stride=stride, padding=1),
                            p + ".bn1"))
            out = bn(F.conv2d(out, sd[p + ".conv2.weight"], padding=1), p + ".bn2")
            if p + ".downsample.0.weight" in sd:
                h = bn(F.conv2d(h, sd[p + ".downsample.0.weight"], stride=stride),
                       p + ".downsample.1")
            h = F.relu(out + h)
    h = F.avg_pool2d(h, 8).flatten(1)
    return F.linear(h, sd["1.fc.weight"], sd["1.fc.bias"])


@pytest.mark.parametrize("depth", [20, 110])
def test_paper_checkpoints_load_and_compute_the_same(depth):
    path = shared_path("paper-checkpoints", f"cifar_resnet{depth}_sigma0.25.pth.tar")
    model, meta = load_checkpoint(path, normalization="normalize")
    assert meta["arch"] == f"cifar_resnet{depth}" and meta["num_classes"] == 10
    assert meta["mean"] == CIFAR10_MEAN and not model.training
    sd = torch.load(path, weights_only=True)["state_dict"]
    x = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, ref = model(x), _reference_forward(sd, x, depth)
    assert torch.allclose(ours, ref, rtol=1e-4, atol=1e-4 * ref.abs().max().item())


def test_paper_layout_and_dataparallel_keys(tmp_path):
    net = create_model("cifar_resnet20", 10, mean=CIFAR10_MEAN, std=CIFAR10_STD)
    for p in net.parameters():
        nn.init.normal_(p, std=0.1)
    sd = net.state_dict()
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        expected = net.eval()(x)
    layouts = {
        "paper": sd,
        "dataparallel": {k.replace("1.", "1.module.", 1): v for k, v in sd.items()},
        "wrapped": {"module." + k: v for k, v in sd.items()},
    }
    for name, state in layouts.items():
        path = tmp_path / f"{name}.pth.tar"
        torch.save({"epoch": 3, "arch": "cifar_resnet20", "state_dict": state,
                    "optimizer": {}}, path)
        model, meta = load_checkpoint(path, normalization="normalize")
        with torch.no_grad():
            assert torch.allclose(model(x), expected, atol=1e-5), name
        assert meta["epoch"] == 3


def test_save_load_roundtrip_with_metadata(tmp_path):
    model = create_model("mlp", 10, mean=(0.3,), std=(0.4,), image_size=8)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    path = tmp_path / "run" / "checkpoint.pth.tar"
    save_checkpoint(path, model, arch="mlp", epoch=7, optimizer=opt,
                    meta=dict(dataset="digits", num_classes=10, in_channels=1, image_size=8,
                              mean=(0.3,), std=(0.4,), sigma=0.25, method="gaussian",
                              hparams={"lr": 0.1}))
    loaded, meta = load_checkpoint(path)
    assert meta["sigma"] == 0.25 and meta["dataset"] == "digits" and meta["epoch"] == 7
    assert meta["method"] == "gaussian" and meta["hparams"] == {"lr": 0.1}
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    assert not list(path.parent.glob("*.tmp"))


def test_bad_checkpoints(tmp_path):
    with pytest.raises(UserError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"this is not a checkpoint")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        load_checkpoint(corrupt)
    unsafe = tmp_path / "unsafe.pt"
    torch.save({"arch": "mlp", "state_dict": {}, "obj": object.__new__(_Evil)}, unsafe)
    with pytest.raises(UserError, match="Python objects beyond tensors") as err:
        load_checkpoint(unsafe)
    assert "\n" not in str(err.value) and len(str(err.value)) < 250  # one short line
    truncated = tmp_path / "truncated.pt"
    good = tmp_path / "good.pt"
    torch.save({"arch": "mlp", "state_dict": {"w": torch.zeros(100, 100)}}, good)
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_checkpoint(truncated)
    wrong = tmp_path / "wrong.pt"
    sd = create_model("mlp", 10, mean=(0.3,), std=(0.4,), image_size=8).state_dict()
    torch.save({"arch": "lenet", "state_dict": sd, "mean": (0.3,), "std": (0.4,)}, wrong)
    with pytest.raises(UserError, match="does not fit architecture 'lenet'"):
        load_checkpoint(wrong, normalization="normalize")


class _Evil:
    pass


def test_resnet50_is_written_with_the_papers_dataparallel_keys(tmp_path):
    from smoothadv.models import create_model, load_checkpoint, read_checkpoint, save_checkpoint

    model = create_model("resnet50", 10, dataset="imagenet")
    path = tmp_path / "r50.pth.tar"
    save_checkpoint(path, model, arch="resnet50", epoch=1, meta=dict(num_classes=10))
    keys = list(read_checkpoint(path)["state_dict"])
    assert keys and all(k.startswith("1.module.") for k in keys)  # the paper's loader's layout
    loaded, _ = load_checkpoint(path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k])
