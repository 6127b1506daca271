"""Looking at feature kernels (notebook 01): class-sorted views, block contrast, centred eigen-spectra, a kernel
machine built from a network's kernel, alignment tables. The heatmaps are drawn by ``heatmaps.py`` and the ipywidgets
explorer lives in ``explorer.py``; both are named here too (``explore.kernel_grid``, ``explore.KernelExplorer``).

Every function takes kernels or features that were computed once.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch
import torch.nn.functional as F

from ..distill.kernels import kernel_alignment
from .explorer import KernelExplorer
from .figures import KERNEL_CMAP
from .heatmaps import class_boundaries, class_sorted, kernel_grid


def block_contrast(K: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean kernel value over same-class pairs (i != j) minus the mean over different-class pairs.

    Near 0: the kernel does not know the classes; large: bright blocks on the diagonal of a class-sorted heatmap."""
    same = labels[:, None] == labels[None, :]
    off = ~torch.eye(len(labels), dtype=torch.bool, device=K.device)
    return float(K[same & off].mean() - K[~same].mean())


def class_means(K: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The (C, C) matrix of a kernel's mean over each block of class pairs (i != j), classes in ascending order:
    the heatmap's blocks, each as one number."""
    classes = torch.unique(labels)
    onehot = (labels[:, None] == classes[None, :]).to(K.dtype)          # (B, C)
    K_off = K - torch.diag_embed(K.diagonal())                           # leave out k(x, x)
    n = onehot.sum(0)
    pairs = torch.outer(n, n) - torch.diag(n)                            # (C, C) numbers of pairs i != j
    return (onehot.T @ K_off @ onehot) / pairs.clamp_min(1)


def centre(K: torch.Tensor) -> torch.Tensor:
    """H K H with H = I - 11^T / n: the kernel with its mean row and column taken out, so that what is left is how
    the images *differ* (the centring CKA uses). Its spectrum no longer leads with "all images alike"."""
    return K - K.mean(0, keepdim=True) - K.mean(1, keepdim=True) + K.mean()


def class_share(K: torch.Tensor, labels: torch.Tensor) -> float:
    """The share of the centred kernel's trace along the class directions: trace(P H K H) / trace(H K H), with P the
    projection onto the centred class indicators (the C - 1 directions the class means span). 1 for a kernel that
    is all classes; about (C - 1) / (n - 1) for one blind to them."""
    Z = F.one_hot(labels).double()
    Z = Z - Z.mean(0)                                                    # (n, C) centred class indicators
    P = Z @ torch.linalg.pinv(Z)                                         # (n, n) projection, rank C - 1
    K_c = centre(K.double())
    return float(torch.trace(P @ K_c) / torch.trace(K_c))


def spectrum(K: torch.Tensor, centred: bool = False) -> torch.Tensor:
    """The eigenvalues of a symmetric kernel (of ``centre(K)`` if ``centred``), largest first, divided by their sum
    (the trace): the share of the kernel each direction carries."""
    K = centre(K) if centred else K
    lam = torch.linalg.eigvalsh(K.double()).flip(0).clamp_min(0)
    return (lam / lam.sum()).float()


def effective_rank(K: torch.Tensor, centred: bool = False) -> float:
    """The participation ratio (sum lambda)^2 / sum lambda^2 of K's eigenvalues (of ``centre(K)``'s if ``centred``):
    about r for r equal directions."""
    lam = spectrum(K, centred).double()
    return float(1.0 / (lam**2).sum())


def spearman(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman's rank correlation of two 1-D tensors (no ties assumed): 1 when one grows with the other."""
    ranks = torch.stack([a.flatten().argsort().argsort(), b.flatten().argsort().argsort()]).double()
    return float(torch.corrcoef(ranks)[0, 1])


def kernel_ridge_accuracy(h_train: torch.Tensor, y_train: torch.Tensor, h_test: torch.Tensor, y_test: torch.Tensor,
                          ridge: float = 1e-2, normalize: bool = True) -> float:
    """Test accuracy of a kernel machine that sees the data only through the feature kernel of ``h``.

    Kernel ridge regression on one-hot labels: alpha = (K_train + r I)^-1 Y, prediction argmax K(x, X_train) alpha,
    with k the (normalised, unless ``normalize=False``) feature kernel and r = ``ridge`` times the mean of K_train's
    diagonal (for the normalised kernel: ``ridge`` itself)."""
    a, b = h_train.double(), h_test.double()
    if normalize:
        a, b = F.normalize(a, dim=1), F.normalize(b, dim=1)
    K = a @ a.T
    Y = F.one_hot(y_train, int(max(y_train.max(), y_test.max())) + 1).double()
    alpha = torch.linalg.solve(K + ridge * K.diagonal().mean() * torch.eye(len(K), dtype=K.dtype), Y)
    return float(((b @ a.T @ alpha).argmax(1) == y_test).double().mean())


def alignment_table(kernels: Mapping[str, torch.Tensor]) -> tuple[list[str], torch.Tensor]:
    """Names and the (n, n) matrix of CKA alignments between every pair of kernels (1 on the diagonal)."""
    names = list(kernels)
    A = torch.tensor([[float(kernel_alignment(kernels[a], kernels[b])) for b in names] for a in names])
    return names, A


def plot_spectra(ax: plt.Axes, kernels: Mapping[str, torch.Tensor], num_classes: int | None = None,
                 top: int = 40, centred: bool = False) -> plt.Axes:
    """The first ``top`` eigenvalues / trace of each kernel (of its ``centred`` form if asked) on a log scale, each
    legend entry with the effective rank of the same matrix; a dotted line at ``num_classes`` (centred: minus one,
    the directions C class means span once their mean is taken out)."""
    for name, K in kernels.items():
        lam = spectrum(K, centred)[:top].numpy()
        ax.plot(np.arange(1, len(lam) + 1), lam, marker="o", ms=3, lw=1.5,
                label=f"{name} (eff. rank {effective_rank(K, centred):.1f})")
    if num_classes:
        ax.axvline(num_classes - centred + 0.5, color="0.5", ls=":", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("eigenvalue index")
    ax.set_ylabel("eigenvalue / trace")
    ax.legend(frameon=False, fontsize=8)
    sns.despine(ax=ax)
    return ax


def plot_class_matrix(ax: plt.Axes, M: torch.Tensor, names: Sequence[str], title: str = "",
                      diverging: bool | None = None) -> plt.Axes:
    """An annotated (C, C) heatmap with class names, e.g. of ``class_means``; on a diverging scale centred on 0 if
    ``diverging`` (default: if M has both signs; pass True for a difference)."""
    v = float(M.abs().max())
    signed = bool(M.min() < 0 < M.max()) if diverging is None else diverging
    sns.heatmap(M.numpy(), ax=ax, cmap=KERNEL_CMAP if signed else "rocket", vmin=-v if signed else None,
                vmax=v if signed else None, annot=True, fmt=".2f", square=True, cbar=False,
                xticklabels=names, yticklabels=names, annot_kws={"fontsize": 7})
    ax.tick_params(labelsize=8)
    ax.set_xticklabels(names, rotation=35, ha="right")
    ax.set_yticklabels(names, rotation=0)
    ax.set_title(title, fontsize=11)
    return ax


def plot_alignment(ax: plt.Axes, names: Sequence[str], A: torch.Tensor) -> plt.Axes:
    """An annotated heatmap of an ``alignment_table``."""
    sns.heatmap(A.numpy(), ax=ax, vmin=0, vmax=1, cmap="rocket", annot=True, fmt=".2f", square=True, cbar=False,
                xticklabels=names, yticklabels=names, annot_kws={"fontsize": 8})
    ax.tick_params(labelsize=8)
    ax.set_xticklabels(names, rotation=35, ha="right")
    ax.set_title("kernel alignment (CKA)", fontsize=11)
    return ax


__all__ = ["KernelExplorer", "alignment_table", "block_contrast", "centre", "class_boundaries", "class_share",
           "class_means", "class_sorted", "effective_rank", "kernel_grid", "kernel_ridge_accuracy", "plot_alignment",
           "plot_class_matrix", "plot_spectra", "spearman", "spectrum"]
