"""Real images for the notebooks, wherever they run: the CIFAR-10 JPEG copy if one is found, else CIFAR-10.

The JPEG copy (``cifar10_jpeg_bytes.npz``; results on it are "CIFAR-10 (JPEG q75 copy)") is a lossy offline copy of
CIFAR-10 for a machine that cannot download, and you do not need it: without it, torchvision downloads the original
(on Colab, on a laptop). ``load_real_images`` picks one and says which, so a notebook runs unchanged either way.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..paths import REPO_ROOT
from .cifar import load_cifar
from .cifar10_jpeg import FILENAME, load_cifar10_jpeg
from .common import DatasetNotFoundError, ImageData, data_root


def jpeg_copy_candidates(root=None) -> list[Path]:
    """Where the JPEG copy is looked for, in order: ``root`` if given (the ``.npz`` or its folder), else
    ``FKD_DATA_DIR``, then a ``shared/data/`` folder beside the repository's own folder."""
    if root is not None:
        places = [Path(root)]
    else:
        places = [Path(p) for p in [os.environ.get("FKD_DATA_DIR")] if p] + [REPO_ROOT.parent / "shared" / "data"]
    return [p if p.suffix == ".npz" else p / FILENAME for p in places]


def find_jpeg_copy(root=None) -> Path | None:
    """The first of ``jpeg_copy_candidates(root)`` that is a file, or None."""
    return next((p for p in jpeg_copy_candidates(root) if p.is_file()), None)


def load_real_images(split: str = "train", root=None, download: bool = True, verbose: bool = True) -> ImageData:
    """One split of real 32x32 images with 10 classes: the CIFAR-10 JPEG copy if found, else CIFAR-10.

    The JPEG copy is used if ``root`` (a ``.npz`` or a folder holding ``cifar10_jpeg_bytes.npz``) is it, or, with no
    ``root``, if ``FKD_DATA_DIR`` or the ``shared/data/`` folder beside the repository holds it. Otherwise CIFAR-10
    is read from ``root`` (default ``FKD_DATA_DIR``, else ``<repo>/data``) and downloaded there by torchvision if
    absent and ``download``.
    The returned ``ImageData.label`` names what was loaded ("CIFAR-10 (JPEG q75 copy)" or "CIFAR-10"); with ``verbose``
    one line says it and where it came from.
    """
    jpeg = find_jpeg_copy(root)
    if jpeg is not None:
        data = load_cifar10_jpeg(jpeg, split)
        where = jpeg
    elif root is not None and Path(root).suffix == ".npz":
        data = load_cifar10_jpeg(root, split)  # a named .npz that is not there: its not-found error, no download
        where = Path(root)
    else:
        try:
            data = load_cifar("cifar10", root, split, download=download)
        except DatasetNotFoundError as e:
            looked = ", ".join(str(p) for p in jpeg_copy_candidates(root))
            raise DatasetNotFoundError(f"no real images: the CIFAR-10 JPEG copy is not at {looked}, and {e}") from None
        where = Path(root) if root is not None else data_root()
    if verbose:
        print(f"real images: {data.label}, {split} split, {len(data):,} images, from {where}")
    return data
