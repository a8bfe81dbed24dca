import pytest
import torch

from smoothadv.data.datasets import create_dataset, get_dataset_spec, list_datasets
from smoothadv.errors import UserError

from .conftest import shared_path


def test_registry():
    assert {"digits", "mnist", "cifar10", "imagenet", "imagenet32", "folder"} <= set(
        list_datasets())
    with pytest.raises(UserError, match="unknown dataset 'svhn'"):
        get_dataset_spec("svhn")


def test_digits_split_is_fixed_and_disjoint():
    train, test = create_dataset("digits", "train"), create_dataset("digits", "test")
    assert len(train) + len(test) == 1797 and len(test) == 449
    x, y = test[0]
    assert x.shape == (1, 8, 8) and 0 <= x.min() and x.max() <= 1 and 0 <= y < 10
    again = create_dataset("digits", "test")
    assert torch.equal(again.images, test.images)
    flat_train = {tuple(v.flatten().tolist()) for v in train.images}
    overlap = sum(tuple(v.flatten().tolist()) in flat_train for v in test.images)
    assert overlap < 10  # the digits data has a handful of exact duplicates at most
    assert sorted(set(test.targets.tolist())) == list(range(10))


def test_mnist_real_files():
    root = shared_path("mnist")
    test = create_dataset("mnist", "test", root)
    assert len(test) == 10_000
    x, y = test[0]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32 and x.max() <= 1
    assert y == 7  # the first official MNIST test digit is a 7


def test_cifar10_folder_subset_decodes_lazily():
    root = shared_path("cifar10")
    test = create_dataset("cifar10", "test", root)
    assert len(test) == 10_000 and test.classes[0] == "airplane" and test.classes[9] == "truck"
    for i in (0, 2500, 9999):
        x, y = test[i]
        assert x.shape == (3, 32, 32) and 0 <= x.min() and x.max() <= 1
        assert y == i // 1000  # class folders in order, 1,000 each
    assert int(test.decoded.sum()) == 3  # only what was asked for was decoded
    first = test.images[2500].clone()
    assert torch.equal(test.images[2500], first)
    train = create_dataset("cifar10", "train", root)
    assert len(train) == 50_000 and train.augment
    x1, _ = train[0]
    assert x1.shape == (3, 32, 32)


def test_bad_root():
    with pytest.raises(UserError, match="data root not found"):
        create_dataset("cifar10", "test", "/nonexistent/place")
    with pytest.raises(UserError, match="split"):
        create_dataset("digits", "validation")


def test_imagenet32_pickles(tmp_path):
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    (tmp_path / "Imagenet32_train").mkdir()
    for i in range(1, 11):
        blob = {"data": rng.integers(0, 256, (3, 3072), dtype=np.uint8),
                "labels": [1, 500, 1000]}
        (tmp_path / "Imagenet32_train" / f"train_data_batch_{i}").write_bytes(pickle.dumps(blob))
    val = {"data": rng.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [7, 8]}
    (tmp_path / "val_data").write_bytes(pickle.dumps(val))
    train = create_dataset("imagenet32", "train", tmp_path)
    assert len(train) == 30 and train.targets[:3].tolist() == [0, 499, 999]  # 1-based → 0-based
    test = create_dataset("imagenet32", "test", tmp_path)
    x, y = test[1]
    assert x.shape == (3, 32, 32) and y == 7
    # rows are channel-major (R plane, G plane, B plane), as the published files are
    assert torch.allclose(x[0].flatten(), torch.tensor(val["data"][1][:1024]) / 255.0)


def test_imagenet_folder_transforms(tmp_path, monkeypatch):
    from PIL import Image

    for split in ("train", "val"):
        for cls in ("n01", "n02"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            Image.new("RGB", (300, 260), (200, 10, 10)).save(folder / "a.jpg")
    monkeypatch.setenv("IMAGENET_DIR", str(tmp_path))
    test = create_dataset("imagenet", "test")
    x, y = test[1]
    assert x.shape == (3, 224, 224) and y == 1 and 0 <= x.min() and x.max() <= 1
    assert create_dataset("imagenet", "train")[0][0].shape == (3, 224, 224)
    monkeypatch.delenv("IMAGENET_DIR")
    with pytest.raises(UserError, match="IMAGENET_DIR"):
        create_dataset("imagenet", "test")


def test_a_missing_data_set_is_downloaded_once_by_concurrent_processes(tmp_path, monkeypatch):
    """Ranks of one job (or sweep workers) that find a data set missing at once: the first
    downloads it, the others wait and read it (they all downloaded into one folder at once)."""
    import threading
    import time

    import torchvision

    from smoothadv.data import datasets

    downloads = []

    class Fake:
        def __init__(self, root, train, download):
            done = tmp_path / "cache" / "fake" / "data.bin"
            if download:
                downloads.append(1)
                time.sleep(0.3)
                done.parent.mkdir(parents=True, exist_ok=True)
                done.write_text("x")
            elif not done.exists():
                raise RuntimeError("Dataset not found")

    monkeypatch.setattr(torchvision.datasets, "Fake", Fake, raising=False)
    monkeypatch.setattr(datasets, "DEFAULT_CACHE", tmp_path / "cache")
    threads = [threading.Thread(target=datasets._torchvision, args=("Fake", "train", None))
               for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert downloads == [1]
