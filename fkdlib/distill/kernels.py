"""Feature kernels (docs/paper.md §1; He & Ozay 2022, Sec. 3).

A trained network is a data-dependent kernel machine: with h(x) the penultimate representation
that feeds the linear classifier, k(x, x') = <h(x), h(x')>. Over a minibatch of B inputs this is a
B x B matrix, so teacher and student widths may differ. FKD matches the *normalised* (cosine)
kernel rho(x, x') = k(x, x') / sqrt(k(x, x) k(x', x')), whose diagonal is 1.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from . import checks

_EPS = 1e-12


def feature_kernel(h: torch.Tensor, normalize: bool = True) -> torch.Tensor:
    """The (B, B) feature kernel of a batch of features ``h`` of shape (B, D) (or (B, C, H, W), flattened).

    ``normalize=True`` gives the cosine form rho (unit diagonal for non-zero rows); ``False`` the raw
    inner products k. Half-precision inputs are computed in float32.
    """
    return _kernel(checks.features(h, "h", min_batch=1), normalize)


def ensemble_kernel(hs: Sequence[torch.Tensor], normalize: bool = True) -> torch.Tensor:
    """The mean of the feature kernels of E networks on the same batch (docs/paper.md §1, ensembles).

    Widths may differ between networks; batch sizes may not.
    """
    if len(hs) == 0:
        raise ValueError("an ensemble needs at least one network's features")
    for e, h in enumerate(hs[1:], start=1):
        checks.same_batch(hs[0], h, "features of network 0", f"features of network {e}")
    return torch.stack([feature_kernel(h, normalize) for h in hs]).mean(0)


def off_diagonal(K: torch.Tensor) -> torch.Tensor:
    """The B(B-1) entries K[i, j], i != j, as a vector: where a normalised kernel carries its signal."""
    if K.dim() != 2 or K.shape[0] != K.shape[1]:
        raise ValueError(f"expected a square (B, B) kernel, got shape {tuple(K.shape)}")
    mask = ~torch.eye(K.shape[0], dtype=torch.bool, device=K.device)
    return K[mask]


def kernel_alignment(K_a: torch.Tensor, K_b: torch.Tensor, centered: bool = True) -> torch.Tensor:
    """Cosine similarity of two kernels in Frobenius norm, in [-1, 1]; 1 when one is a positive multiple of the other.

    With ``centered=True`` both kernels are double-centred first (H K H, H = I - 11^T / B): for linear
    kernels this is CKA (Kornblith et al. 2019), a standard score of how alike two representations are.
    """
    if K_a.shape != K_b.shape or K_a.dim() != 2:
        raise ValueError(f"kernels must be square and of equal shape, got {tuple(K_a.shape)} and {tuple(K_b.shape)}")
    if centered:
        K_a, K_b = _double_center(K_a), _double_center(K_b)
    num = (K_a * K_b).sum()
    return num / (K_a.norm() * K_b.norm()).clamp_min(_EPS)


def _kernel(h: torch.Tensor, normalize: bool) -> torch.Tensor:
    """``feature_kernel`` without the input checks, for (B, D) features already validated."""
    h = _full_precision(h)
    with _no_autocast(h):
        if normalize:
            h = F.normalize(h, dim=1, eps=_EPS)
        return h @ h.transpose(0, 1)


def _double_center(K: torch.Tensor) -> torch.Tensor:
    return K - K.mean(0, keepdim=True) - K.mean(1, keepdim=True) + K.mean()


def _full_precision(h: torch.Tensor) -> torch.Tensor:
    return h.float() if h.dtype in (torch.float16, torch.bfloat16) else h


def _no_autocast(h: torch.Tensor):
    device_type = h.device.type if h.device.type in ("cuda", "cpu", "mps") else "cpu"
    return torch.autocast(device_type=device_type, enabled=False)
