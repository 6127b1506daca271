"""Evaluation: a network's penultimate features h(x), its accuracy (in memory or over a device loader), an
ensemble's accuracy, and the probe batch on which a student's kernel is compared with its teachers'."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from ..data import per_class_indices, to_float
from ..data.loader import DeviceLoader
from ..distill.kernels import ensemble_kernel, feature_kernel, kernel_alignment
from ..distill.losses import fkd_loss
from ..distill.methods import Method
from ..models.teachers import Teacher


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """``model`` in eval mode without gradients inside the block, its previous mode restored after."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield model
    finally:
        model.train(was_training)


def embedding(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """h(x) in float32 for an already-normalised batch ``x``: ``feats[-1]`` of ``model(x, is_feat=True)``."""
    with eval_mode(model):
        return model(x, is_feat=True)[0][-1].float()


def penultimate_features(model: torch.nn.Module, X: torch.Tensor, mean, std, batch_size: int = 500) -> torch.Tensor:
    """h(x) for every image of uint8 ``X`` (N, 3, H, W), normalised with ``mean`` and ``std`` (the training data's,
    ``ImageData.mean``/``.std``): the (N, D) embedding that feeds the classifier, on the model's device."""
    device = next(model.parameters()).device
    return torch.cat([embedding(model, to_float(x.to(device), mean, std)) for x in X.split(batch_size)])


def evaluate_accuracy(model: torch.nn.Module, loader: DeviceLoader, autocast=None) -> float:
    """Top-1 accuracy of ``model`` over an evaluation loader, with one host sync at the end.

    ``autocast``: a context to run the model under (the engine passes its training precision's).
    """
    correct, n = torch.zeros((), device=loader.device, dtype=torch.long), 0
    with eval_mode(model):
        for xb, yb in loader:
            with autocast or nullcontext():
                logits = model(xb)
            correct += (logits.argmax(1) == yb).sum()
            n += len(yb)
    return float(correct) / max(n, 1)


@torch.no_grad()
def ensemble_accuracy(models: Sequence[torch.nn.Module], loader: DeviceLoader) -> float:
    """Top-1 accuracy of an ensemble that averages its members' softmax probabilities."""
    for m in models:
        m.eval()
    correct, n = torch.zeros((), device=loader.device), 0
    for xb, yb in loader:
        probs = torch.stack([F.softmax(m(xb).float(), dim=1) for m in models]).mean(0)
        correct += (probs.argmax(1) == yb).sum()
        n += len(yb)
    return float(correct) / max(n, 1)


class Probe:
    """A fixed, class-balanced batch of test images on which the student's kernel is compared with the teachers'."""

    def __init__(self, x: torch.Tensor | None, teachers: Sequence[Teacher], method: Method | None = None):
        self.x = x
        h_t = [embedding(t.model, x) for t in teachers] if x is not None else []
        self.h_t = method.kernel_target(h_t) if method is not None and h_t else h_t
        self.K_t = ensemble_kernel(self.h_t) if self.h_t else None

    def metrics(self, student) -> dict:
        if self.K_t is None:
            return {}
        h_s = embedding(student, self.x)
        return {"kernel_alignment": float(kernel_alignment(feature_kernel(h_s), self.K_t)),
                "kernel_distance": float(fkd_loss(h_s, self.h_t)),
                "feature_norm": float(h_s.norm(dim=1).mean())}


def probe(test_data, size: int, teachers, device, method: Method | None = None) -> Probe:
    """The probe batch, with the teachers' kernel as ``method`` targets it (the mean of their kernels, or concat)."""
    if not teachers or size < 2:
        return Probe(None, ())
    idx = per_class_indices(test_data.y, max(1, size // len(test_data.classes)))[:size]
    x = DeviceLoader(test_data.X[idx], test_data.y[idx], len(idx), train=False, mean=test_data.mean,
                     std=test_data.std, device=device)
    return Probe(next(iter(x))[0], teachers, method)
