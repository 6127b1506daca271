"""The data of the reproduction's grids: fixed validation splits, the teachers' and the
students' training sets, the test sets.

The method comparison and the ensemble grid (``comparison_data``):

Of the training split, ``val_size`` images (a fixed seeded draw) are held out for every choice of weights;
the rest is the training pool. The teacher trains on the first ``teacher_size`` images of a fixed shuffle of
the pool, every student on the first ``train_size`` of the same shuffle (so the students' images are among
the teacher's); all are tested once, on the whole test split.
"""
from __future__ import annotations

from dataclasses import replace

import torch

from ..data import load_real_images, load_train_test


def _splits(cfg: dict, data_root=None):
    """The whole training and test splits of ``cfg["dataset"]`` (``"cifar10-real"``: the CIFAR-10 JPEG copy where
    it is found, else CIFAR-10 itself, downloaded by torchvision when ``cfg["download"]``)."""
    if cfg["dataset"] == "cifar10-real":
        return (load_real_images("train", data_root, download=cfg.get("download", False), verbose=False),
                load_real_images("test", data_root, download=cfg.get("download", False), verbose=False))
    return load_train_test(cfg["dataset"], data_root, cfg.get("download", False), **cfg.get("data_kw", {}))


def _first(data, n: int | None, seed: int = 0):
    """The first ``n`` images (all when ``n`` is 0 or None) of a fixed seeded shuffle of ``data``."""
    order = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    return data.subset(order[:n or len(data)])


def comparison_data(cfg: dict, data_root=None) -> dict:
    """``{"teacher_train", "train", "val", "test"}`` for the sizes ``cfg`` (``config.sizes("method_comparison")``).

    ``cfg["dataset"] == "cifar10-real"``: the CIFAR-10 JPEG copy where it is found, else CIFAR-10 itself
    (downloaded by torchvision when ``cfg["download"]``); every record says which (``data_label``).
    """
    train, test = _splits(cfg, data_root)
    pool, val = train.train_val(cfg["val_size"], seed=0)
    return {"teacher_train": _first(pool, cfg.get("teacher_size")), "train": _first(pool, cfg.get("train_size")),
            "val": val, "test": test}


def cross_data(cfg: dict, data_root=None) -> dict:
    """The cross-dataset grid's data (``config.sizes("cross_dataset")``, docs/paper.md §3.3): one dataset split by
    class into the teacher's label space (``teacher_classes``) and the students' (``student_classes``).

    ``{"teacher_train", "teacher_test"}``: the first ``teacher_size`` of a fixed shuffle of the teacher classes'
    training images, and their test images. ``{"train", "val", "test"}``: of the student classes' training images,
    ``val_size`` held out (a fixed seeded draw) for every choice of weights and learning rate, the first
    ``train_size`` of a fixed shuffle of the rest to train on, and the student classes' test images.
    ``"unlabelled"``: the kernel term's own pool (the STL-10 variant), ``unlabelled_size`` training images of
    any class, the students' validation images excluded, labels dropped.
    """
    if cfg.get("teacher_dataset"):  # the paper's setting: two datasets
        t_train, t_test = _splits(dict(cfg, dataset=cfg["teacher_dataset"]), data_root)
    else:
        t_train, t_test = _splits(cfg, data_root)
    train, test = _splits(cfg, data_root)
    if cfg.get("teacher_classes"):
        t_train, t_test = t_train.select_classes(cfg["teacher_classes"]), t_test.select_classes(cfg["teacher_classes"])
    everything = train
    if cfg.get("student_classes"):
        train, test = train.select_classes(cfg["student_classes"]), test.select_classes(cfg["student_classes"])
    pool, val = train.train_val(cfg["val_size"], seed=0)
    held_out = {bytes(x.numpy().tobytes()) for x in val.X} if len(val) else set()
    keep = torch.tensor([bytes(x.numpy().tobytes()) not in held_out for x in everything.X])
    unlabelled = _first(everything.subset(keep), cfg.get("unlabelled_size"), seed=1)
    unlabelled = replace(unlabelled, y=torch.full_like(unlabelled.y, -1), split="unlabelled")
    return {"teacher_train": _first(t_train, cfg.get("teacher_size")), "teacher_test": t_test,
            "train": _first(pool, cfg.get("train_size")), "val": val, "test": test, "unlabelled": unlabelled}
