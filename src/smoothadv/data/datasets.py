"""Dataset registry: every dataset yields ``(image, label)`` with image a float tensor in
[0,1] of shape [C,H,W] and label an int in [0, num_classes).

``create_dataset(name, split, root=None)`` builds one; ``get_dataset_spec(name)`` gives its
class count, shape and the normalization constants its models use.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from ..errors import UserError
from ..registry import Registry
from .constants import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DIGITS_MEAN,
    DIGITS_STD,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MNIST_MEAN,
    MNIST_STD,
)

SPLITS = ("train", "test")
DEFAULT_CACHE = Path(os.environ.get("SMOOTHADV_DATA", Path.home() / ".cache" / "smoothadv"))


@dataclass(frozen=True)
class DatasetSpec:
    """What a model for this dataset must know: classes, input shape, normalization."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    builder: Callable[[str, str | None], Dataset]
    default_arch: str


DATASETS: Registry[DatasetSpec] = Registry("dataset")


def register_dataset(name: str, **spec) -> Callable:
    """Decorator: register ``builder(split, root) -> Dataset`` with its :class:`DatasetSpec`."""

    def wrap(fn: Callable[[str, str | None], Dataset]) -> Callable:
        DATASETS.add(name, DatasetSpec(name=name, builder=fn, **spec))
        return fn

    return wrap


def list_datasets() -> list[str]:
    """Registered dataset names, sorted."""
    return DATASETS.names()


def get_dataset_spec(name: str) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``name``; :class:`UserError` for an unknown name."""
    return DATASETS.get(name)


def create_dataset(name: str, split: str, root: str | os.PathLike | None = None) -> Dataset:
    """Build dataset ``name`` for ``split`` ('train' or 'test').

    Training splits of 32×32 data carry the paper's augmentation (random crop with 4-pixel
    padding, horizontal flip); test splits none.
    """
    spec = get_dataset_spec(name)
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; choose 'train' or 'test'")
    if root is not None and not Path(root).exists():
        raise UserError(f"data root not found: {root}")
    return spec.builder(split, None if root is None else str(root))


# --------------------------------------------------------------------------------------
# In-memory storage: small images are decoded once and kept as uint8.


def _crop_flip(img: torch.Tensor, padding: int = 4) -> torch.Tensor:
    """Random crop with zero padding and a random horizontal flip of a [C,H,W] tensor."""
    c, h, w = img.shape
    padded = torch.nn.functional.pad(img, (padding,) * 4)
    top, left = np.random.randint(0, 2 * padding + 1, size=2)
    out = padded[:, top : top + h, left : left + w]
    if np.random.rand() < 0.5:
        out = out.flip(-1)
    return out


class InMemoryDataset(Dataset):
    """Images as a uint8 tensor [N,C,H,W] (or floats in [0,1]) with int64 labels [N].

    ``augment`` applies the paper's crop-and-flip to each drawn training image.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, augment: bool = False,
                 classes: list[str] | None = None) -> None:
        if images.dim() != 4 or images.shape[0] != labels.shape[0]:
            raise ValueError("images must be [N,C,H,W] with one label each")
        self.images = images
        self.targets = labels.long()
        self.augment = augment
        self.classes = classes

    def __len__(self) -> int:
        return self.images.shape[0]

    def image(self, i: int) -> torch.Tensor:
        img = self.images[i]
        return img.float() / 255.0 if img.dtype == torch.uint8 else img.float()

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.image(i)
        if self.augment:
            img = _crop_flip(img)
        return img, int(self.targets[i])


class LazyImageFolder(Dataset):
    """An ImageFolder of small same-sized images, each PNG decoded at most once.

    ``channels``: 3 (RGB), 1 (grey) or None: grey when the first image is greyscale, else RGB.
    Images are decoded on first access (so certifying 50 of 10,000 images decodes 50) into a
    preallocated uint8 tensor; :meth:`preload` decodes all of them (training calls it once,
    before DataLoader workers fork, so no epoch decodes a PNG again).
    """

    EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".webp")

    def __init__(self, root: str, augment: bool = False, channels: int | None = None) -> None:
        root_path = Path(root)
        classes = sorted(d.name for d in root_path.iterdir() if d.is_dir())
        if not classes:
            raise UserError(f"no class folders in {root}")
        files, labels = [], []
        for label, cls in enumerate(classes):
            names = sorted(
                p for p in (root_path / cls).iterdir() if p.suffix.lower() in self.EXTENSIONS
            )
            files += names
            labels += [label] * len(names)
        if not files:
            raise UserError(f"no images in the class folders of {root}")
        self.classes = classes
        self.files = files
        self.targets = torch.tensor(labels, dtype=torch.long)
        if channels is None:
            from PIL import Image

            with Image.open(files[0]) as im:
                channels = 1 if im.mode in ("L", "I;16", "1") else 3
        self.channels = channels
        first = self._decode(0)
        self.images = torch.empty((len(files), *first.shape), dtype=torch.uint8)
        self.decoded = torch.zeros(len(files), dtype=torch.bool)
        self._store(0, first)
        self.augment = augment

    def _decode(self, i: int) -> torch.Tensor:
        from PIL import Image

        mode = "RGB" if self.channels == 3 else "L"
        try:
            with Image.open(self.files[i]) as im:
                arr = np.asarray(im.convert(mode), dtype=np.uint8)
        except OSError as err:
            raise UserError(f"cannot decode image {self.files[i]}: {err}") from None
        if arr.ndim == 2:
            arr = arr[:, :, None]
        return torch.from_numpy(arr.copy()).permute(2, 0, 1)

    def _store(self, i: int, img: torch.Tensor) -> None:
        if img.shape != self.images.shape[1:]:
            raise UserError(f"image {self.files[i]} has shape {tuple(img.shape)}, "
                            f"others {tuple(self.images.shape[1:])}")
        self.images[i] = img
        self.decoded[i] = True

    def preload(self, indices: list[int] | None = None) -> None:
        """Decode every image (or those of ``indices``) not yet decoded (about 15 s for
        CIFAR-10's 60,000 on one core)."""
        wanted = torch.zeros_like(self.decoded)
        wanted[indices if indices is not None else slice(None)] = True
        for i in torch.nonzero(wanted & ~self.decoded).flatten().tolist():
            self._store(i, self._decode(i))

    def __len__(self) -> int:
        return len(self.files)

    def image(self, i: int) -> torch.Tensor:
        if not self.decoded[i]:
            self._store(i, self._decode(i))
        return self.images[i].float() / 255.0

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        img = self.image(i)
        if self.augment:
            img = _crop_flip(img)
        return img, int(self.targets[i])


# --------------------------------------------------------------------------------------
# The registered datasets.


@register_dataset("digits", num_classes=10, in_channels=1, image_size=8, mean=DIGITS_MEAN,
                  std=DIGITS_STD, default_arch="mlp")
def _digits(split: str, root: str | None) -> Dataset:
    """scikit-learn's bundled 8×8 digits (1,797 images), a fixed seeded 75/25 split."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images / 16.0, dtype=torch.float32).unsqueeze(1)
    labels = torch.tensor(bunch.target, dtype=torch.long)
    order = torch.from_numpy(np.random.RandomState(0).permutation(len(labels)))
    n_train = int(round(0.75 * len(labels)))
    idx = order[:n_train] if split == "train" else order[n_train:]
    return InMemoryDataset(images[idx], labels[idx], classes=[str(i) for i in range(10)])


DIGITS_VALIDATION = 337  # a quarter of digits' 1,348 training images


@register_dataset("digits-val", num_classes=10, in_channels=1, image_size=8, mean=DIGITS_MEAN,
                  std=DIGITS_STD, default_arch="mlp")
def _digits_val(split: str, root: str | None) -> Dataset:
    """For choosing hyper-parameters without the test split: digits' training split divided
    by a fixed seeded permutation into 1,011 images ('train') and 337 held out ('test', the
    validation split). No image of digits' test split is in either."""
    full = _digits("train", root)
    order = torch.from_numpy(np.random.RandomState(1).permutation(len(full)))
    idx = order[DIGITS_VALIDATION:] if split == "train" else order[:DIGITS_VALIDATION]
    return InMemoryDataset(full.images[idx], full.targets[idx], classes=full.classes)


@register_dataset("mnist", num_classes=10, in_channels=1, image_size=28, mean=MNIST_MEAN,
                  std=MNIST_STD, default_arch="lenet")
def _mnist(split: str, root: str | None) -> Dataset:
    """MNIST via torchvision (downloads into the cache when no root is given)."""
    ds = _torchvision("MNIST", split, root)
    return InMemoryDataset(ds.data.unsqueeze(1).contiguous(), ds.targets, classes=ds.classes)


def _torchvision(cls_name: str, split: str, root: str | None):
    """A torchvision dataset read from ``root``, or downloaded to the cache without one."""
    import contextlib
    import sys

    import torchvision

    download = root is None
    root = root or str(DEFAULT_CACHE / cls_name.lower())
    make = getattr(torchvision.datasets, cls_name)
    try:
        return make(root, train=split == "train", download=False)
    except RuntimeError:
        if not download:
            raise UserError(f"{cls_name} not found under {root}; pass the folder that holds "
                            "it with --data-root") from None
    import fcntl

    Path(root).mkdir(parents=True, exist_ok=True)
    # one download at a time into one folder: the ranks of a job, or several sweep workers,
    # wait for the first and then read what it fetched
    with open(Path(root) / ".download-lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        with contextlib.suppress(RuntimeError):
            return make(root, train=split == "train", download=False)
        print(f"smoothadv: downloading {cls_name} to {root} …", file=sys.stderr)
        return _download(make, cls_name, split, root)


def _download(make, cls_name: str, split: str, root: str):
    """torchvision's download of ``cls_name`` into ``root`` (its chatter kept to one line)."""
    import contextlib
    import io

    chatter = io.StringIO()  # torchvision prints every failed mirror: keep it to one line
    try:
        with contextlib.redirect_stdout(chatter), contextlib.redirect_stderr(chatter):
            return make(root, train=split == "train", download=True)
    except Exception as err:  # noqa: BLE001 — network errors come in many types
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"{cls_name} is not here ({root}) and could not be downloaded "
                        f"({reason[:120]}); pass --data-root with a local copy") from None


@register_dataset("cifar10", num_classes=10, in_channels=3, image_size=32, mean=CIFAR10_MEAN,
                  std=CIFAR10_STD, default_arch="cifar_resnet110")
def _cifar10(split: str, root: str | None) -> Dataset:
    """CIFAR-10: an ImageFolder ``<root>/{train,test}/<class>/`` or torchvision's download."""
    augment = split == "train"
    if root is not None and (Path(root) / split).is_dir():
        return LazyImageFolder(str(Path(root) / split), augment=augment, channels=3)
    ds = _torchvision("CIFAR10", split, root)
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()
    return InMemoryDataset(images, torch.tensor(ds.targets), augment=augment, classes=ds.classes)


def _imagenet_root(root: str | None) -> Path:
    root = root or os.environ.get("IMAGENET_DIR")
    if not root:
        raise UserError("ImageNet needs --data-root or the IMAGENET_DIR environment variable")
    return Path(root)


@register_dataset("imagenet", num_classes=1000, in_channels=3, image_size=224,
                  mean=IMAGENET_MEAN, std=IMAGENET_STD, default_arch="resnet50")
def _imagenet(split: str, root: str | None) -> Dataset:
    """ImageNet as an ImageFolder (``train/`` and ``val/``), the paper's transforms."""
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    base = _imagenet_root(root)
    if split == "train":
        tf = T.Compose([T.RandomResizedCrop(224), T.RandomHorizontalFlip(), T.ToTensor()])
        folder = base / "train"
    else:
        tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor()])
        folder = base / "val"
    if not folder.is_dir():
        raise UserError(f"ImageNet folder not found: {folder}")
    return ImageFolder(str(folder), transform=tf)


@register_dataset("imagenet32", num_classes=1000, in_channels=3, image_size=32,
                  mean=CIFAR10_MEAN, std=CIFAR10_STD, default_arch="imagenet32_resnet110")
def _imagenet32(split: str, root: str | None) -> Dataset:
    """Downsampled ImageNet 32×32: ``Imagenet32_train/train_data_batch_{1..10}`` and
    ``val_data`` pickles (``data``: uint8 [N,3072], ``labels``: 1-based)."""
    base = _imagenet_root(root)
    if split == "train":
        files = [base / "Imagenet32_train" / f"train_data_batch_{i}" for i in range(1, 11)]
    else:
        files = [base / "val_data"]
        if not files[0].exists():
            files = [base / "Imagenet32_val" / "val_data"]
    data, labels = [], []
    for f in files:
        if not f.exists():
            raise UserError(f"ImageNet32 file not found: {f}")
        with open(f, "rb") as fh:
            entry = pickle.load(fh)  # the published format is a pickle of arrays
        data.append(np.asarray(entry["data"], dtype=np.uint8))
        labels.append(np.asarray(entry["labels"], dtype=np.int64) - 1)
    images = torch.from_numpy(np.concatenate(data)).view(-1, 3, 32, 32)
    return InMemoryDataset(images, torch.from_numpy(np.concatenate(labels)),
                           augment=split == "train")


@register_dataset("folder", num_classes=0, in_channels=3, image_size=0, mean=IMAGENET_MEAN,
                  std=IMAGENET_STD, default_arch="resnet50")
def _folder(split: str, root: str | None) -> Dataset:
    """Any ImageFolder of same-sized images: ``<root>/<split>/<class>/`` or ``<root>/<class>/``.

    Images are kept in memory as uint8 once decoded; the class count comes from the folders.
    """
    if root is None:
        raise UserError("dataset 'folder' needs --data-root")
    path = Path(root) / split if (Path(root) / split).is_dir() else Path(root)
    return LazyImageFolder(str(path), augment=False)


def num_classes_of(dataset: Dataset, spec: DatasetSpec) -> int:
    """Class count: the spec's, or (for 'folder') the number of class folders."""
    if spec.num_classes:
        return spec.num_classes
    return len(dataset.classes)


def check_image_range(x: torch.Tensor) -> None:
    """Raise :class:`UserError` unless every value of ``x`` lies in [0,1] (pixel space)."""
    lo, hi = float(x.min()), float(x.max())
    if lo < 0.0 or hi > 1.0:
        raise UserError(
            f"images must lie in [0,1] (pixel space), got values in [{lo:.3g}, {hi:.3g}]"
        )


def check_input_shape(meta: dict, dataset: Dataset, name: str, checkpoint: object) -> None:
    """Raise :class:`UserError` (one line, before any work) when the data set's images do not
    have the channels and size the checkpoint's model was built for (e.g. a digits model given
    CIFAR-10)."""
    if len(dataset) == 0:
        return
    shape = tuple(dataset[0][0].shape)  # [C, H, W]
    channels, size = meta.get("in_channels"), meta.get("image_size")
    wrong_channels = channels is not None and shape[0] != channels
    wrong_size = size is not None and shape[-2:] != (size, size)
    if wrong_channels or wrong_size:
        raise UserError(
            f"checkpoint {checkpoint} expects {channels}×{size}×{size} images, but data set "
            f"{name} has {shape[0]}×{shape[1]}×{shape[2]}"
        )


# --------------------------------------------------------------------------------------
# Subsets for training on a budget.


def class_balanced_subset(ds: Dataset, size: int | None, seed: int) -> Dataset:
    """A fixed random subset of ``size`` images, class-balanced (⌊size/K⌋ per class, the rest
    at random) where the data set exposes its labels; class folders are sorted, so the first
    N would be one class."""
    if size is None or size >= len(ds):
        return ds
    gen = torch.Generator().manual_seed(seed)
    targets = getattr(ds, "targets", None)
    if targets is None:
        perm = torch.randperm(len(ds), generator=gen)[:size]
        return Subset(ds, sorted(perm.tolist()))
    targets = torch.as_tensor(targets)
    classes = targets.unique()
    per_class = size // len(classes)
    chosen = []
    for c in classes.tolist():
        members = torch.nonzero(targets == c).flatten()
        chosen += members[torch.randperm(len(members), generator=gen)[:per_class]].tolist()
    rest = sorted(set(range(len(ds))) - set(chosen))
    extra = torch.randperm(len(rest), generator=gen)[: size - len(chosen)].tolist()
    return Subset(ds, sorted(chosen + [rest[i] for i in extra]))


def subset_indices(ds: Dataset, size: int | None, seed: int) -> list[int] | None:
    """The indices :func:`class_balanced_subset` keeps (None: the whole set)."""
    sub = class_balanced_subset(ds, size, seed)
    return list(sub.indices) if isinstance(sub, Subset) else None
