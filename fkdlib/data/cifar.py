"""CIFAR-10 and CIFAR-100 (Krizhevsky 2009) from their python-pickle batches.

Read by a small reader of our own: torchvision's dataset classes check md5 sums, which tiny test files
cannot pass. torchvision is used only to download.
"""
from __future__ import annotations

import importlib
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .common import (CIFAR10_MEAN, CIFAR10_STD, CIFAR100_MEAN, CIFAR100_STD, ImageData, dataset_dir, download, require,
                     to_tensors)


@dataclass(frozen=True)
class _Spec:
    label: str
    folder: str
    train: tuple[str, ...]
    test: tuple[str, ...]
    meta: str
    url: str
    torchvision_class: str
    mean: tuple
    std: tuple


SPECS = {
    "cifar10": _Spec("CIFAR-10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)), ("test_batch",),
                     "batches.meta", "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "CIFAR10",
                     CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": _Spec("CIFAR-100", "cifar-100-python", ("train",), ("test",), "meta",
                      "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "CIFAR100",
                      CIFAR100_MEAN, CIFAR100_STD),
}

# the only globals a CIFAR batch needs (a pickle can run any code it names)
_ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy.core.multiarray", "scalar"),
            ("numpy.core.numeric", "_frombuffer"), ("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode")}


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        if (module.replace("numpy._core", "numpy.core"), name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a CIFAR batch")
        # numpy 2 moved numpy.core to numpy._core; the original files (2009) name numpy.core
        for mod in (module.replace("numpy.core", "numpy._core"), module.replace("numpy._core", "numpy.core")):
            try:
                return getattr(importlib.import_module(mod), name)
            except (ImportError, AttributeError):
                continue
        raise pickle.UnpicklingError(f"cannot find {module}.{name}")


def read_batch(path: Path) -> dict:
    """One CIFAR pickle (``data_batch_1``, ``test``, ``meta``...) as a dict with str keys.

    Only dicts, lists, strings and numpy arrays are unpickled."""
    with open(path, "rb") as f:
        d = _ArrayUnpickler(f, encoding="latin1").load()  # the originals are Python 2 pickles
    return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in d.items()}


def _text(names) -> list[str]:
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def load_cifar(name: str, root=None, split: str = "train", download: bool = False, coarse: bool = False) -> ImageData:
    """CIFAR-10 (``cifar-10-batches-py/``) or CIFAR-100 (``cifar-100-python/``, fine labels unless ``coarse``)
    under ``root``; split ``train`` (50,000) or ``test`` (10,000)."""
    spec = SPECS[name]
    if split not in ("train", "test"):
        raise ValueError(f"{spec.label} has splits 'train' and 'test', not {split!r}")
    folder = dataset_dir(root, spec.folder)
    expected = [*spec.train, *spec.test, spec.meta]
    by_hand = f"download {spec.url} and unpack it in {folder.parent} (or set FKD_DATA_DIR / root=)."
    if download and any(not (folder / f).exists() for f in expected):
        _download(spec, folder.parent, by_hand[0].upper() + by_hand[1:])
    require(folder, expected, spec.label, f"Pass download=True (needs internet), or {by_hand}")

    labels_key, names_key = ("coarse_labels", "coarse_label_names") if coarse else ("fine_labels", "fine_label_names")
    if name == "cifar10":
        labels_key, names_key = "labels", "label_names"
    batches = [read_batch(folder / f) for f in (spec.train if split == "train" else spec.test)]
    X = np.concatenate([np.asarray(b["data"], dtype=np.uint8).reshape(-1, 3, 32, 32) for b in batches])
    y = np.concatenate([np.asarray(b[labels_key], dtype=np.int64) for b in batches])
    classes = _text(read_batch(folder / spec.meta)[names_key])
    X, y = to_tensors(X, y)
    return ImageData(X, y, classes, name, split, spec.mean, spec.std, spec.label + (" (coarse)" if coarse else ""))


def _download(spec: _Spec, root: Path, how: str) -> None:
    import torchvision

    dataset_class = getattr(torchvision.datasets, spec.torchvision_class)
    download(spec.label, lambda: dataset_class(str(root), train=True, download=True), how)
