"""The quickstart's data and its few-step, in-memory loop (notebook 00), on the engine's own parts.

``fit_in_memory`` runs ``steps`` optimisation steps of the engine's ``TrainStep`` (frozen teachers, student,
``methods.loss_terms``, SGD) over a ``DeviceLoader`` of the data, normalised with the data's own mean/std, and
records every step: the loss terms and, on a ``Probe`` batch, the engine's kernel metrics. What it leaves out of
``fkdlib.engine.train`` (epochs, augmentation, checkpoints, resume, run records) a one-page lesson does not need.
"""
from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch

from ..data import ImageData, synthetic_images
from ..data.loader import DeviceLoader
from ..distill.methods import Method
from ..models.teachers import Teacher
from .evaluate import Probe, evaluate_accuracy
from .progress import bar
from .step import TrainStep


def synthetic_splits(per_class: dict[str, int], num_classes: int, image_size: int = 32, noise: float = 0.15,
                     seed: int = 0) -> dict[str, ImageData]:
    """Disjoint splits of one ``synthetic_images`` set: ``{"train": ..., "val": ..., "test": ...}`` with
    ``per_class[split]`` images of every class each (any split names).

    Every split carries the first split's per-channel mean/std (the training images' own statistics), which
    is what every loader normalises with.
    """
    X, y = synthetic_images(sum(per_class.values()), num_classes, image_size, seed=seed, noise=noise)
    rank = torch.empty_like(y)                     # the position of each image among its class's images
    for c in range(num_classes):
        idx = torch.nonzero(y == c).flatten()
        rank[idx] = torch.arange(len(idx))
    splits, start = {}, 0
    for name, n in per_class.items():
        keep = (rank >= start) & (rank < start + n)
        splits[name], start = (X[keep], y[keep]), start + n
    first = splits[next(iter(per_class))][0].float() / 255
    mean = tuple(round(v, 4) for v in first.mean((0, 2, 3)).tolist())
    std = tuple(round(v, 4) for v in first.std((0, 2, 3)).tolist())
    classes = [f"class {c}" for c in range(num_classes)]
    return {name: ImageData(Xs, ys, classes, "synthetic", name, mean, std, f"synthetic (noise {noise:g})")
            for name, (Xs, ys) in splits.items()}


def fit_in_memory(
    student: torch.nn.Module,
    data: ImageData,
    steps: int,
    batch_size: int = 64,
    lr: float = 0.05,
    method: Method | None = None,
    teachers: Sequence[Teacher] = (),
    probe: Probe | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> dict[str, list[float]]:
    """Train ``student`` in place for ``steps`` SGD steps of ``method`` (default: plain cross-entropy) on ``data``.

    ``teachers`` (frozen ``Teacher``s) are what FKD distils from. The learning rate drops tenfold for the last
    quarter of the steps; the batches are shuffled afresh every epoch (by ``seed``) and not augmented (the
    synthetic images are randomly shifted already). Returns a history, one value per step: ``loss`` and its
    weighted terms ``ce``, ``fkd``, ``fr`` (0 where the method has none); with a ``probe``, its metrics
    (``kernel_alignment``, ``kernel_distance``, ``feature_norm``) before training and after every step.
    A non-finite loss stops training with an error naming the step.
    """
    method = method or Method("none")
    if steps < 1 or batch_size < 2:
        raise ValueError(f"need steps >= 1 and batch_size >= 2, got steps={steps}, batch_size={batch_size}")
    if method.needs_teacher and not teachers:
        raise ValueError(f"method {method.name!r} distils from teachers, but none were given")
    device = next(student.parameters()).device
    student.to(memory_format=torch.channels_last)          # as the engine keeps it: faster convolutions on CPU too
    opt = torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[max(1, steps * 3 // 4)], gamma=0.1)
    # the engine's step, in float32 everywhere: steps this small gain nothing from autocast
    step = TrainStep(student, teachers if method.needs_teacher else (), method, opt, device, precision="fp32")
    loader = DeviceLoader(data.X, data.y, min(batch_size, len(data)), train=True, mean=data.mean, std=data.std,
                          device=device, seed=seed, pad=0, flip=False, drop_last=True)
    hist: dict[str, list[float]] = {k: [] for k in ("loss", "ce", "fkd", "fr")}
    if probe is not None:
        hist.update({k: [v] for k, v in probe.metrics(student).items()})
    batches = _endless(loader)
    steps_bar = bar(range(steps), progress, desc=method.name, leave=False)
    student.train()
    for i in steps_bar:
        loss, terms, _ = step(*next(batches))
        sched.step()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {float(loss)} at step {i} "
                                     f"({', '.join(f'{k}={float(v):.4g}' for k, v in terms.items())})")
        hist["loss"].append(float(loss))
        for k in ("ce", "fkd", "fr"):
            hist[k].append(float(terms[k]) if k in terms else 0.0)
        if probe is not None:
            for k, v in probe.metrics(student).items():
                hist[k].append(v)
        steps_bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}")
    return hist


def accuracy_on(model: torch.nn.Module, data: ImageData) -> float:
    """Top-1 accuracy of ``model`` on every image of ``data``, normalised with the data's own mean/std."""
    device = next(model.parameters()).device
    return evaluate_accuracy(model, DeviceLoader(data.X, data.y, 512, train=False, mean=data.mean, std=data.std,
                                                 device=device))


def _endless(loader: DeviceLoader) -> Iterator:
    """The loader's epochs 0, 1, 2, ... one after another: each a fresh shuffle depending only on (seed, epoch)."""
    epoch = 0
    while True:
        yield from loader.iter_epoch(epoch)
        epoch += 1
