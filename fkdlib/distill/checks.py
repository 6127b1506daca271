"""Input checks shared by the kernels and losses: clear errors instead of silent broadcasting.

Checking that a tensor is finite reads a value back from the device (a host sync). It is on by
default; a training loop that watches its loss itself can switch it off with ``finite_checks(False)``.
"""
from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

_FINITE_CHECKS = True


@contextlib.contextmanager
def finite_checks(enabled: bool) -> Iterator[None]:
    """Turn the (host-syncing) non-finite input check on or off inside a ``with`` block."""
    global _FINITE_CHECKS
    before, _FINITE_CHECKS = _FINITE_CHECKS, enabled
    try:
        yield
    finally:
        _FINITE_CHECKS = before


def features(h: torch.Tensor, name: str, min_batch: int = 2) -> torch.Tensor:
    """Validate a batch of features and return it as (B, D); feature maps (B, C, H, W) are flattened."""
    if not isinstance(h, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(h).__name__}")
    if h.dim() < 2:
        raise ValueError(f"{name} must have a batch dimension and a feature dimension, got shape {tuple(h.shape)}")
    if h.shape[0] < min_batch:
        raise ValueError(
            f"{name} has batch size {h.shape[0]}; this loss compares pairs of examples and needs at least {min_batch}"
        )
    finite(h, name)
    return h.flatten(1)


def same_batch(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Two feature batches must describe the same examples: equal batch sizes."""
    if a.shape[0] != b.shape[0]:
        raise ValueError(
            f"batch sizes differ: {name_a} has shape {tuple(a.shape)} but {name_b} has shape {tuple(b.shape)}"
        )


def finite(x: torch.Tensor, name: str) -> None:
    """Raise if ``x`` holds NaN or Inf (skipped inside ``finite_checks(False)``)."""
    if _FINITE_CHECKS and not bool(torch.isfinite(x).all()):
        n_bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} contains {n_bad} non-finite value(s) (NaN or Inf); shape {tuple(x.shape)}")
