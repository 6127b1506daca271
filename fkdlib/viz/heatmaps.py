"""Class-sorted kernel heatmaps: the rows they show (``class_sorted``), the lines between classes and a grid of
heatmaps (``kernel_grid``). Notebook 01's views (``explore``) and its explorer (``explorer``) both draw with these.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch

from .figures import KERNEL_CMAP


def class_sorted(y: torch.Tensor, per_class: int, classes: Sequence[int] | None = None) -> torch.Tensor:
    """Indices of the first ``per_class`` examples of each of ``classes`` (default: all, ascending), grouped by
    class in the order given: the rows of a class-sorted heatmap."""
    classes = torch.unique(y).tolist() if classes is None else list(classes)
    return torch.cat([torch.nonzero(y == c).flatten()[:per_class] for c in classes])


def class_boundaries(ax: plt.Axes, labels: torch.Tensor, color: str = "w") -> None:
    """Thin lines between the classes of a class-sorted heatmap."""
    for b in np.flatnonzero(np.diff(np.asarray(labels.cpu()))) + 0.5:
        ax.axhline(b, color=color, lw=0.5, alpha=0.7)
        ax.axvline(b, color=color, lw=0.5, alpha=0.7)


def kernel_grid(rows: Mapping[str, Mapping[str, torch.Tensor]], labels: torch.Tensor | None = None,
                shared: Sequence[bool] | None = None, size: float = 2.8,
                class_names: Sequence[str] | None = None, diverging: Sequence[bool] | None = None) -> plt.Figure:
    """Heatmaps of kernels in a grid, a row per entry of ``rows`` (row title -> {column title -> kernel}).

    ``shared[r]`` (default all True) puts row r on one colour scale with one colour bar; otherwise each panel has
    its own (raw kernels of different networks can differ in size many times over). A row with no negative value
    starts its scale at 0; one with both signs, or with ``diverging[r]`` (a difference), is on a diverging map
    centred on 0. With class-sorted ``labels`` and ``class_names``, the first column names the classes of its rows."""
    shared = [True] * len(rows) if shared is None else list(shared)
    diverging = [False] * len(rows) if diverging is None else list(diverging)
    ncol = max(len(r) for r in rows.values())
    fig, axes = plt.subplots(len(rows), ncol, figsize=(size * ncol + 1.2, size * len(rows)), layout="constrained",
                             squeeze=False)
    for r, (row_title, kernels) in enumerate(rows.items()):
        mats = {t: torch.as_tensor(K).detach().float().cpu().numpy() for t, K in kernels.items()}
        lo, hi = min(m.min() for m in mats.values()), max(m.max() for m in mats.values())
        for c, (title, K) in enumerate(mats.items()):
            if not shared[r]:
                lo, hi = K.min(), K.max()
            v = max(-lo, hi, 1e-12)
            cmap, vmin, vmax = (KERNEL_CMAP, -v, v) if lo < 0 or diverging[r] else ("rocket", 0.0, max(hi, 1e-12))
            ax = axes[r, c]
            im = ax.imshow(K, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
            ax.set_title(title, fontsize=10)
            ax.set_xticks([])
            ax.set_yticks([])
            if labels is not None:
                class_boundaries(ax, labels)
            if not shared[r]:
                fig.colorbar(im, ax=ax, shrink=0.8)
        if shared[r]:
            fig.colorbar(im, ax=axes[r].tolist(), shrink=0.8)
        axes[r, 0].set_ylabel(row_title, fontsize=11)
        if labels is not None and class_names is not None:
            lab = np.asarray(labels.cpu())
            starts = np.flatnonzero(np.r_[True, np.diff(lab) != 0])
            ends = np.r_[starts[1:], len(lab)]
            axes[r, 0].set_yticks((starts + ends - 1) / 2, [class_names[c] for c in lab[starts]], fontsize=7)
            axes[r, 0].tick_params(axis="y", length=0)
        for ax in axes[r, len(mats):]:
            ax.axis("off")
    return fig
