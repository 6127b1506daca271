"""The method comparison's data (issue 13's protocol): one fixed validation split, the teacher's and the
students' training sets, and the full test set.

Of the training split, ``val_size`` images (a fixed seeded draw) are held out for every choice of weights;
the rest is the training pool. The teacher trains on the first ``teacher_size`` images of a fixed shuffle of
the pool, every student on the first ``train_size`` of the same shuffle (so the students' images are among
the teacher's); all are tested once, on the whole test split.
"""
from __future__ import annotations

import torch

from .data import load_real_images, load_train_test


def comparison_data(cfg: dict, data_root=None) -> dict:
    """``{"teacher_train", "train", "val", "test"}`` for the sizes ``cfg`` (``config.sizes("method_comparison")``).

    ``cfg["dataset"] == "cifar10-real"``: the CIFAR-10 JPEG copy where it is found, else CIFAR-10 itself
    (downloaded by torchvision when ``cfg["download"]``); every record says which (``data_label``).
    """
    if cfg["dataset"] == "cifar10-real":
        train = load_real_images("train", data_root, download=cfg.get("download", False), verbose=False)
        test = load_real_images("test", data_root, download=cfg.get("download", False), verbose=False)
    else:
        train, test = load_train_test(cfg["dataset"], data_root, cfg.get("download", False), **cfg.get("data_kw", {}))
    pool, val = train.train_val(cfg["val_size"], seed=0)
    order = torch.randperm(len(pool), generator=torch.Generator().manual_seed(0))
    teacher_n = cfg.get("teacher_size") or len(pool)
    student_n = cfg.get("train_size") or len(pool)
    return {"teacher_train": pool.subset(order[:teacher_n]), "train": pool.subset(order[:student_n]),
            "val": val, "test": test}
