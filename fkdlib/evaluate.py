"""Run a trained network over in-memory data: its penultimate features h(x) and its accuracy."""
from __future__ import annotations

import torch

from .data import to_float


@torch.no_grad()
def penultimate_features(model: torch.nn.Module, X: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """h(x) for every image of uint8 ``X`` (N, 3, H, W): the (N, D) embedding that feeds the classifier."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    out = [model(to_float(X[i : i + batch_size].to(device)), is_feat=True)[0][-1].float()
           for i in range(0, len(X), batch_size)]
    model.train(was_training)
    return torch.cat(out)


@torch.no_grad()
def accuracy(model: torch.nn.Module, X: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    """Top-1 accuracy (in [0, 1]) of ``model`` on uint8 images ``X`` with labels ``y``."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    correct = sum(int((model(to_float(X[i : i + batch_size].to(device))).argmax(1).cpu() == y[i : i + batch_size]).sum())
                  for i in range(0, len(X), batch_size))
    model.train(was_training)
    return correct / len(X)
