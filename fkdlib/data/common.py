"""What every loader shares: the dataset object, where data and caches live, the not-found error,
normalisation statistics, held-out splits and the decoded-array cache."""
from __future__ import annotations

import hashlib
import os
import warnings
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from ..paths import REPO_ROOT
from .synthetic import CIFAR100_MEAN, CIFAR100_STD

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
# STL-10 (train+unlabelled), the values of lightning-bolts' stl10_normalization
STL10_MEAN = (0.4467, 0.4398, 0.4066)
STL10_STD = (0.2603, 0.2566, 0.2713)
# ImageNet's, the usual choice for Tiny-ImageNet (a 64x64 ImageNet subset)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# RepDistiller normalises every dataset with CIFAR-100's: load_dataset(..., stats="cifar100")
STATS = {
    "cifar10": (CIFAR10_MEAN, CIFAR10_STD),
    "cifar100": (CIFAR100_MEAN, CIFAR100_STD),
    "stl10": (STL10_MEAN, STL10_STD),
    "imagenet": (IMAGENET_MEAN, IMAGENET_STD),
}

_CACHE_VERSION = 1


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not on disk and was not (or could not be) downloaded; the message says how to get it."""


def data_root() -> Path:
    """Where datasets live: ``FKD_DATA_DIR``, else ``<repo>/data`` (git-ignored)."""
    return Path(os.environ.get("FKD_DATA_DIR") or REPO_ROOT / "data")


def cache_dir() -> Path:
    """Where decoded arrays are cached: ``FKD_CACHE_DIR``, else ``~/.cache/fkdlib`` (data may be read-only)."""
    return Path(os.environ.get("FKD_CACHE_DIR") or Path.home() / ".cache" / "fkdlib")


def dataset_dir(root, folder: str) -> Path:
    """``root/folder``; ``root`` may also be the dataset folder itself."""
    root = Path(root) if root else data_root()
    return root if root.name == folder else root / folder


@dataclass(eq=False, repr=False)
class ImageData:
    """A whole split in memory: ``X`` uint8 (N, 3, H, W), ``y`` int64 (N,) (-1: unlabelled), class names,
    and the mean/std to normalise with (``fkdlib.data.to_float(X, data.mean, data.std)``).

    ``name`` is the registry key; ``label`` is what results must call the data (e.g. "CIFAR-10 (JPEG q75 copy)").
    """

    X: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    name: str
    split: str
    mean: tuple[float, float, float] = CIFAR100_MEAN
    std: tuple[float, float, float] = CIFAR100_STD
    label: str = ""

    def __post_init__(self):
        if self.X.dtype != torch.uint8 or self.X.ndim != 4 or self.X.shape[1] != 3:
            raise ValueError(f"X must be uint8 (N, 3, H, W), got {self.X.dtype} {tuple(self.X.shape)}")
        if self.y.dtype != torch.int64 or self.y.shape != (len(self.X),):
            raise ValueError(f"y must be int64 ({len(self.X)},), got {self.y.dtype} {tuple(self.y.shape)}")
        self.label = self.label or self.name

    def __len__(self) -> int:
        return len(self.y)

    def __repr__(self) -> str:
        return (f"ImageData({self.label!r}, split={self.split!r}, X={tuple(self.X.shape)} uint8, "
                f"{self.num_classes} classes, device={self.X.device})")

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def class_counts(self) -> dict[str, int]:
        """Examples per class name (and ``"unlabelled"`` if any)."""
        counts = dict(zip(self.classes, torch.bincount(self.y[self.y >= 0], minlength=self.num_classes).tolist()))
        return counts | ({"unlabelled": int((self.y < 0).sum())} if (self.y < 0).any() else {})

    def subset(self, idx, split: str | None = None) -> ImageData:
        """The examples ``idx`` (indices or a boolean mask), as a new ImageData."""
        idx = torch.as_tensor(idx, device=self.X.device)
        return replace(self, X=self.X[idx], y=self.y[idx], split=split or self.split)

    def select_classes(self, classes: Sequence[int | str]) -> ImageData:
        """Only the examples of ``classes`` (names or indices), relabelled 0..k-1 in the order given."""
        old = [self.classes.index(c) if c in self.classes else -1 if isinstance(c, str) else int(c) for c in classes]
        bad = [c for c in old if not 0 <= c < self.num_classes]
        if bad or len(set(old)) != len(old) or not old:
            raise ValueError(f"classes must be distinct names or indices of {self.classes}, got {list(classes)}")
        lut = torch.full((self.num_classes + 1,), -1, dtype=torch.int64, device=self.y.device)
        lut[torch.tensor(old, device=self.y.device)] = torch.arange(len(old), device=self.y.device)
        new_y = lut[self.y]  # y == -1 (unlabelled) reads the extra last slot: dropped
        keep = new_y >= 0
        return replace(self, X=self.X[keep], y=new_y[keep], classes=[self.classes[c] for c in old])

    def train_val(self, val_size: int | float, seed: int = 0) -> tuple[ImageData, ImageData]:
        """Split off a held-out validation set (see ``train_val_split``)."""
        train_idx, val_idx = train_val_split(len(self), val_size, seed)
        return self.subset(train_idx), self.subset(val_idx, split="val")

    def to(self, device) -> ImageData:
        return replace(self, X=self.X.to(device), y=self.y.to(device))


def train_val_split(n: int, val_size: int | float, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """``(train_idx, val_idx)``: a random held-out set of ``val_size`` examples (a fraction if < 1) out of
    ``n``, the same for the same seed; both sorted. The paper tuned on 5,000 CIFAR-10 / 1,000 STL-10 images."""
    k = round(val_size * n) if isinstance(val_size, float) and val_size < 1 else int(val_size)
    if not 0 < k < n:
        raise ValueError(f"val_size must leave both parts non-empty: {val_size} of {n}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[k:].sort().values, perm[:k].sort().values


def require(folder: Path, expected: Sequence[str], what: str, how: str) -> None:
    """Raise DatasetNotFoundError unless every ``expected`` path exists under ``folder``."""
    missing = [f for f in expected if not (folder / f).exists()]
    if missing:
        lacks = f"expected {', '.join(expected)}" if len(missing) == len(expected) else \
            f"missing {', '.join(missing)} of {', '.join(expected)}"
        raise DatasetNotFoundError(f"{what} not found in {folder} ({lacks}). {how}")


def download(what: str, fetch: Callable[[], object], how: str) -> None:
    """Run ``fetch``; a network or archive failure becomes one DatasetNotFoundError ending in ``how``
    (how to fetch it by hand)."""
    try:
        fetch()
    except (OSError, RuntimeError, zipfile.BadZipFile) as e:  # URLError is an OSError
        raise DatasetNotFoundError(f"could not download {what} ({type(e).__name__}: {e}). {how}") from None


def fingerprint(path: Path) -> str:
    """A cheap content key for a large file: its size and its first and last MiB."""
    h = hashlib.sha256(str(path.stat().st_size).encode())
    with open(path, "rb") as f:
        h.update(f.read(1 << 20))
        f.seek(max(0, path.stat().st_size - (1 << 20)))
        h.update(f.read())
    return h.hexdigest()[:16]


def cached(key: str, build: Callable[[], dict[str, np.ndarray]], enabled: bool = True) -> dict[str, np.ndarray]:
    """``build()``'s arrays, saved in ``cache_dir()/<key>.npz`` and read from there next time."""
    path = cache_dir() / f"{key}-v{_CACHE_VERSION}.npz"
    if enabled and path.exists():
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, zipfile.BadZipFile):
            pass  # a damaged cache: rebuild it
    arrays = build()
    if enabled:
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)
            os.replace(tmp, path)
        except OSError as e:
            tmp.unlink(missing_ok=True)
            warnings.warn(f"could not cache decoded images in {path} ({e}); set FKD_CACHE_DIR", stacklevel=2)
    return arrays


def decode_rgb(sources: Sequence, size: int) -> np.ndarray:
    """Decode image files or buffers with Pillow (greyscale and CMYK made RGB) into uint8 (N, 3, size, size)."""
    out = np.empty((len(sources), size, size, 3), np.uint8)
    for i, src in enumerate(sources):
        with Image.open(src) as im:
            if im.size != (size, size):
                where = src if isinstance(src, Path) else "in memory"
                raise ValueError(f"image {i} ({where}) is {im.size[0]}x{im.size[1]}, not {size}x{size}")
            out[i] = im.convert("RGB")
    return out.transpose(0, 3, 1, 2)


def to_tensors(X: np.ndarray, y: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.from_numpy(np.ascontiguousarray(X)), torch.from_numpy(np.asarray(y, dtype=np.int64))
