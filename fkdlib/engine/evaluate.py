"""Run a trained network over in-memory data: its penultimate features h(x) and its accuracy."""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from ..data import to_float


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


def penultimate_features(model: torch.nn.Module, X: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """h(x) for every image of uint8 ``X`` (N, 3, H, W): the (N, D) embedding that feeds the classifier."""
    device = next(model.parameters()).device
    return torch.cat([embedding(model, to_float(X[i : i + batch_size].to(device))) for i in range(0, len(X), batch_size)])


def accuracy(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy (in [0, 1]) of ``model`` on uint8 images ``X`` with labels ``y``."""
    device = next(model.parameters()).device
    with eval_mode(model):
        correct = sum(int((model(to_float(X[i : i + batch_size].to(device))).argmax(1).cpu() == y[i : i + batch_size]).sum())
                      for i in range(0, len(X), batch_size))
    return correct / len(X)
