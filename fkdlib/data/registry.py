"""One entry point for every dataset: ``load_dataset(name, root, split, download)``."""
from __future__ import annotations

from functools import partial
from typing import Sequence

from .cifar import load_cifar
from .cifar10_jpeg import load_cifar10_jpeg
from .common import STATS, ImageData
from .stl10 import load_stl10
from .synthetic import CIFAR100_MEAN, CIFAR100_STD, synthetic_images
from .tiny_imagenet import load_tiny_imagenet


def load_synthetic(root=None, split: str = "train", download: bool = False, n_per_class: int = 100,
                   num_classes: int = 10, image_size: int = 32, seed: int = 0, test_fraction: float = 0.2) -> ImageData:
    """``synthetic_images(n_per_class, num_classes, image_size, seed)``, its first ``1 - test_fraction`` as
    ``train`` and the rest as ``test`` (the examples come shuffled, so this is a random split, as in notebook 00)."""
    if split not in ("train", "test"):
        raise ValueError(f"synthetic data has splits 'train' and 'test', not {split!r}")
    X, y = synthetic_images(n_per_class, num_classes, image_size, seed=seed)
    n_train = int((1 - test_fraction) * len(X))
    part = slice(None, n_train) if split == "train" else slice(n_train, None)
    return ImageData(X[part].clone(), y[part].clone(), [f"class {c}" for c in range(num_classes)], "synthetic",
                     split, CIFAR100_MEAN, CIFAR100_STD, "synthetic")


LOADERS = {
    "cifar10": partial(load_cifar, "cifar10"),
    "cifar100": partial(load_cifar, "cifar100"),
    "stl10": load_stl10,
    "tiny-imagenet": load_tiny_imagenet,
    "cifar10-jpeg": load_cifar10_jpeg,
    "synthetic": load_synthetic,
}
_ALIASES = {"tinyimagenet": "tiny-imagenet", "tiny-imagenet-200": "tiny-imagenet", "stl-10": "stl10",
            "cifar-10": "cifar10", "cifar-100": "cifar100"}


def load_dataset(name: str, root=None, split: str = "train", download: bool = False, *,
                 classes: Sequence[int | str] | None = None, stats: str | None = None, **kw) -> ImageData:
    """Load one split of a dataset into memory as an ``ImageData`` (uint8 images, int64 labels).

    ``name``: one of ``LOADERS`` (cifar10, cifar100, stl10, tiny-imagenet, cifar10-jpeg, synthetic).
    ``root``: the folder that holds the dataset's folder (default ``FKD_DATA_DIR``, else ``<repo>/data``); for
    cifar10-jpeg the ``.npz`` or its folder. ``download``: fetch it if absent (needs internet; never otherwise).
    ``classes``: keep only these classes (names or indices), relabelled 0..k-1 in the order given.
    ``stats``: normalise with another dataset's mean/std, e.g. ``"cifar100"`` as RepDistiller does everywhere.
    Other keywords go to the loader (``coarse`` for cifar100, ``cache``, the synthetic sizes).
    A dataset that is not on disk raises ``DatasetNotFoundError`` saying where it was looked for and how to get it.
    """
    key = _ALIASES.get(name.lower().replace("_", "-"), name.lower().replace("_", "-"))
    if key not in LOADERS:
        raise ValueError(f"unknown dataset {name!r}: choose one of {', '.join(LOADERS)}")
    if stats is not None and stats not in STATS:
        raise ValueError(f"unknown stats {stats!r}: choose one of {', '.join(STATS)}")
    data = LOADERS[key](root=root, split=split, download=download, **kw)
    if stats is not None:
        data.mean, data.std = STATS[stats]
    return data.select_classes(classes) if classes is not None else data



TEST_SPLIT = {"tiny-imagenet": "val"}


def load_train_test(name: str, root=None, download: bool = False, *, classes: Sequence[int | str] | None = None,
                    test_split: str | None = None, **kw) -> tuple[ImageData, ImageData]:
    """The training split and the split we test on (``test``; Tiny-ImageNet: ``val``), loaded alike."""
    key = _ALIASES.get(name.lower().replace("_", "-"), name.lower().replace("_", "-"))
    test_split = test_split or TEST_SPLIT.get(key, "test")
    return (load_dataset(name, root, "train", download, classes=classes, **kw),
            load_dataset(name, root, test_split, download, classes=classes, **kw))
