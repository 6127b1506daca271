"""STL-10 (Coates, Ng & Lee 2011) from its binary files: 96x96 RGB, 10 classes, 5,000 train, 8,000 test and
100,000 unlabelled images."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .common import STL10_MEAN, STL10_STD, ImageData, dataset_dir, download, require

FOLDER = "stl10_binary"
URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
FILES = {"train": ("train_X.bin", "train_y.bin"), "test": ("test_X.bin", "test_y.bin"),
         "unlabeled": ("unlabeled_X.bin", None)}
SIZE = 96


def read_images(path: Path) -> np.ndarray:
    """uint8 (N, 3, 96, 96) from an ``*_X.bin``: each image is stored channel by channel, each channel
    column by column. Memory-mapped, so the 2.7 GB unlabelled file is copied only once, into the result."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    if raw.size % (3 * SIZE * SIZE):
        raise ValueError(f"{path} holds {raw.size} bytes, not a whole number of 3x96x96 images")
    return np.ascontiguousarray(raw.reshape(-1, 3, SIZE, SIZE).transpose(0, 1, 3, 2))


def read_labels(path: Path) -> np.ndarray:
    """int64 0..9 from a ``*_y.bin`` (stored as uint8 1..10)."""
    y = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1
    if y.size and not (0 <= y.min() and y.max() < len(CLASSES)):
        raise ValueError(f"{path}: labels must be 1..10")
    return y


def load_stl10(root=None, split: str = "train", download: bool = False) -> ImageData:
    """STL-10 from ``stl10_binary/`` under ``root``; split ``train``, ``test`` or ``unlabeled`` (labels -1)."""
    split = "unlabeled" if split == "unlabelled" else split
    if split not in FILES:
        raise ValueError(f"STL-10 has splits {', '.join(FILES)}, not {split!r}")
    folder = dataset_dir(root, FOLDER)
    expected = [f for f in FILES[split] if f]
    by_hand = f"download {URL} (2.6 GB) and unpack it in {folder.parent} (or set FKD_DATA_DIR / root=)."
    if download and any(not (folder / f).exists() for f in expected):
        _download(folder.parent, by_hand[0].upper() + by_hand[1:])
    require(folder, expected, "STL-10", f"Pass download=True (needs internet), or {by_hand}")

    X = torch.from_numpy(read_images(folder / expected[0]))
    y = torch.full((len(X),), -1, dtype=torch.int64)
    if FILES[split][1]:
        y = torch.from_numpy(read_labels(folder / FILES[split][1]))
        if len(y) != len(X):
            raise ValueError(f"STL-10 {split}: {len(X)} images but {len(y)} labels")
    names = folder / "class_names.txt"
    classes = [n.strip() for n in names.read_text().splitlines() if n.strip()] if names.exists() else list(CLASSES)
    return ImageData(X, y, classes, "stl10", split, STL10_MEAN, STL10_STD, "STL-10")


def _download(root: Path, how: str) -> None:
    import torchvision

    download("STL-10", lambda: torchvision.datasets.STL10(str(root), split="train", download=True), how)
