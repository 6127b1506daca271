"""Datasets as whole uint8 tensors (N, 3, H, W) with int64 labels, the form the trainer keeps on the GPU.

``load_dataset(name, root, split, download)`` returns an ``ImageData`` (images, labels, class names, mean/std):

- ``cifar10``, ``cifar100``: the python-pickle batches; ``stl10``: the binary files (train/test/unlabeled);
- ``tiny-imagenet``: the cs231n JPEG folders (train/val), decoded once and cached;
- ``cifar10-jpeg``: the lossy JPEG copy of CIFAR-10 in one ``.npz`` (results on it: "CIFAR-10 (JPEG q75 copy)");
- ``synthetic``: the built-in seeded images (``synthetic_images``), needing no files.

``load_real_images(split)`` is what the notebooks use: the CIFAR-10 JPEG copy if it is found, else CIFAR-10 (downloaded).

Nothing is downloaded unless ``download=True``; a missing dataset raises ``DatasetNotFoundError``.
Data lives in ``FKD_DATA_DIR`` (default ``<repo>/data``), decoded caches in ``FKD_CACHE_DIR``
(default ``~/.cache/fkdlib``).
"""
from .cifar import load_cifar, read_batch
from .cifar10_jpeg import load_cifar10_jpeg
from .common import (CIFAR10_MEAN, CIFAR10_STD, IMAGENET_MEAN, IMAGENET_STD, STATS, STL10_MEAN, STL10_STD,
                     DatasetNotFoundError, ImageData, cache_dir, data_root, train_val_split)
from .real import find_jpeg_copy, load_real_images
from .registry import LOADERS, load_dataset, load_synthetic, load_train_test
from .stl10 import load_stl10
from .synthetic import CIFAR100_MEAN, CIFAR100_STD, per_class_indices, synthetic_images, to_float
from .tiny_imagenet import download_tiny_imagenet, load_tiny_imagenet

__all__ = [
    "CIFAR10_MEAN", "CIFAR10_STD", "IMAGENET_MEAN", "IMAGENET_STD", "LOADERS", "STATS", "STL10_MEAN", "STL10_STD",
    "DatasetNotFoundError", "ImageData", "cache_dir", "data_root", "download_tiny_imagenet", "load_cifar",
    "load_cifar10_jpeg", "load_dataset", "load_stl10", "load_synthetic", "load_tiny_imagenet", "read_batch",
    "train_val_split", "CIFAR100_MEAN", "CIFAR100_STD", "per_class_indices", "synthetic_images", "to_float",
    "load_train_test", "find_jpeg_copy", "load_real_images",
]
