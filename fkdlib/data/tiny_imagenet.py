"""Tiny-ImageNet (cs231n): 200 ImageNet classes at 64x64, 100,000 train and 10,000 val images, as JPEGs.

Decoded once with Pillow and cached as uint8 arrays in ``cache_dir()``. The labelled val set serves as the
test set (the official test split has no labels).
"""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from .common import (IMAGENET_MEAN, IMAGENET_STD, DatasetNotFoundError, ImageData, cached, data_root, dataset_dir,
                     decode_rgb, download, require, to_tensors)

FOLDER = "tiny-imagenet-200"
URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
MD5 = "90528d7ca1a48142e341f4ef8d21d0de"  # 248,100,043 bytes
SIZE = 64


def download_tiny_imagenet(root=None) -> Path:
    """Download the cs231n zip (248 MB) into ``root`` (default ``data_root()``) and unzip it there;
    returns the ``tiny-imagenet-200`` folder. Needs internet."""
    from torchvision.datasets.utils import download_url

    root = Path(root) if root else data_root()
    archive = root / Path(URL).name
    how = f"Download {URL} and unzip it in {root} (or set FKD_DATA_DIR / root=)."

    def fetch():
        download_url(URL, str(root), archive.name, md5=MD5)  # a partial file is fetched again
        with zipfile.ZipFile(archive) as z:
            z.extractall(root)
        archive.unlink()

    download("Tiny-ImageNet", fetch, how)
    return root / FOLDER


def _class_names(folder: Path, wnids: list[str]) -> list[str]:
    """The first WordNet synonym of each class from ``words.txt`` (the wnid if absent or ambiguous)."""
    words = {}
    if (folder / "words.txt").exists():
        for line in (folder / "words.txt").read_text().splitlines():
            wnid, _, text = line.partition("\t")
            words[wnid] = text.split(",")[0].strip()
    names = [words.get(w) or w for w in wnids]
    return [f"{n} ({w})" if names.count(n) > 1 else n for n, w in zip(names, wnids)]


def _files(folder: Path, split: str, wnids: list[str]) -> tuple[list[Path], np.ndarray]:
    index = {w: i for i, w in enumerate(wnids)}
    if split == "train":
        per_class = [sorted((folder / "train" / w / "images").glob("*.JPEG")) for w in wnids]
        files = [f for fs in per_class for f in fs]
        labels = np.repeat(np.arange(len(wnids)), [len(fs) for fs in per_class])
        return files, labels
    rows = [line.split("\t") for line in (folder / "val" / "val_annotations.txt").read_text().splitlines() if line]
    return [folder / "val" / "images" / r[0] for r in rows], np.array([index[r[1]] for r in rows])


def load_tiny_imagenet(root=None, split: str = "train", download: bool = False, cache: bool = True) -> ImageData:
    """Tiny-ImageNet from ``tiny-imagenet-200/`` under ``root``; split ``train`` or ``val`` (alias ``test``)."""
    split = "val" if split == "test" else split
    if split not in ("train", "val"):
        raise ValueError(f"Tiny-ImageNet has splits 'train' and 'val' (used as test), not {split!r}")
    folder = dataset_dir(root, FOLDER)
    expected = ["wnids.txt", "train/" if split == "train" else "val/val_annotations.txt"]
    how = (f"Pass download=True (needs internet) or call download_tiny_imagenet(), or download {URL} "
           f"and unzip it in {folder.parent} (or set FKD_DATA_DIR / root=).")
    if download and any(not (folder / f).exists() for f in expected):
        download_tiny_imagenet(folder.parent)
    require(folder, expected, "Tiny-ImageNet", how)

    wnids = (folder / "wnids.txt").read_text().split()
    key = hashlib.sha256(f"{folder.resolve()}|{split}|{' '.join(wnids)}".encode())
    if split == "val":
        key.update((folder / "val" / "val_annotations.txt").read_bytes())

    def build():
        files, labels = _files(folder, split, wnids)
        missing = [f for f in files if not f.exists()] or ([] if files else [folder / split / "<wnid>/images/*.JPEG"])
        if missing:
            raise DatasetNotFoundError(f"Tiny-ImageNet in {folder} is incomplete: {len(missing)} image(s) missing, "
                                       f"e.g. {missing[0]}. {how}")
        return {"X": decode_rgb(files, SIZE), "y": labels.astype(np.int64)}

    arrays = cached(f"tiny-imagenet-{split}-{key.hexdigest()[:16]}", build, enabled=cache)
    X, y = to_tensors(arrays["X"], arrays["y"])
    return ImageData(X, y, _class_names(folder, wnids), "tiny-imagenet", split, IMAGENET_MEAN, IMAGENET_STD,
                     "Tiny-ImageNet")
