"""The built-in default data: a tiny synthetic image set made in memory from a seed; and uint8 -> float.

Images are uint8 tensors (N, 3, H, W), as real CIFAR batches are kept. Each class is a smooth random
colour pattern; each image is its class pattern, randomly shifted, with a random brightness and
pixel noise, so a small CNN learns the classes in a few hundred steps on a CPU.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

# RepDistiller's CIFAR-100 normalisation (docs/paper.md §3.4)
CIFAR100_MEAN = (0.5071, 0.4867, 0.4408)
CIFAR100_STD = (0.2675, 0.2565, 0.2761)


def synthetic_images(
    n_per_class: int, num_classes: int = 10, image_size: int = 32, seed: int = 0, noise: float = 0.15
) -> tuple[torch.Tensor, torch.Tensor]:
    """``(X, y)``: X uint8 (N, 3, image_size, image_size), y int64 (N,), N = n_per_class * num_classes.

    The same seed gives the same classes and images; examples are shuffled.
    """
    if n_per_class < 1 or num_classes < 2 or image_size < 8:
        raise ValueError("need n_per_class >= 1, num_classes >= 2 and image_size >= 8")
    g = torch.Generator().manual_seed(seed)
    pad = image_size // 4
    # (C, 3, S+2p, S+2p) smooth colour patterns: a 4x4 random field upsampled
    coarse = torch.rand(num_classes, 3, 4, 4, generator=g)
    patterns = F.interpolate(coarse, size=image_size + 2 * pad, mode="bicubic", align_corners=False)
    y = torch.arange(num_classes).repeat_interleave(n_per_class)
    y = y[torch.randperm(len(y), generator=g)]
    dx, dy = (torch.randint(0, 2 * pad + 1, (2, len(y)), generator=g))
    rows = (dy[:, None] + torch.arange(image_size))[:, None, :, None]  # (N, 1, S, 1)
    cols = (dx[:, None] + torch.arange(image_size))[:, None, None, :]  # (N, 1, 1, S)
    X = patterns[y[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
    X = X * (0.7 + 0.6 * torch.rand(len(y), 1, 1, 1, generator=g))
    X = X + noise * torch.randn(X.shape, generator=g)
    return (X.clamp(0, 1) * 255).round().to(torch.uint8), y


def to_float(X: torch.Tensor, mean=CIFAR100_MEAN, std=CIFAR100_STD) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> normalised float32, on X's device."""
    mean_t = torch.tensor(mean, device=X.device).view(1, 3, 1, 1)
    std_t = torch.tensor(std, device=X.device).view(1, 3, 1, 1)
    return (X.float() / 255 - mean_t) / std_t


def per_class_indices(y: torch.Tensor, per_class: int) -> torch.Tensor:
    """Indices of the first ``per_class`` examples of every class, grouped by class (for sorted heatmaps)."""
    return torch.cat([torch.nonzero(y == c).flatten()[:per_class] for c in torch.unique(y)])

