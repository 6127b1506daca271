"""One style and one savefig for every figure; kernel heatmaps and training curves."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns
import torch

from ..distill.methods import label, weights_label
from ..paths import figures_dir
from ..stats import interval
from .look import color

DPI = 120
PALETTE = "colorblind"
KERNEL_CMAP = "RdBu_r"


def set_style() -> None:
    """The project's seaborn theme and palette."""
    sns.set_theme(context="notebook", style="ticks", palette=PALETTE)


def savefig(fig: plt.Figure, name: str, scale: str | None = None, source: str | None = None,
            pdf: bool = False) -> Path:
    """Write ``fig`` as ``<figures>/<name>.png`` (and ``.pdf`` if asked) with a fixed dpi and no timestamp.

    ``name`` starts with the notebook's number (e.g. ``"00_kernels"``); ``scale="smoke"`` writes to
    ``figures/smoke/`` (see ``paths.figures_dir``); ``source`` (a results file or a short provenance
    line) is printed beneath the figure, below every label, so the image says where it came from.
    """
    if source:
        fig.text(0.995, -0.01, f"source: {source}", ha="right", va="top", fontsize=7, color="0.45")
    out = figures_dir(scale)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.png"
    tight = dict(bbox_inches="tight", pad_inches=0.08)  # the saved image grows to hold the source line
    fig.savefig(path, dpi=DPI, metadata={"Software": None}, **tight)
    if pdf:
        fig.savefig(path.with_suffix(".pdf"), metadata={"CreationDate": None, "Creator": None, "Producer": None},
                    **tight)
    return path


def kernel_heatmaps(kernels: Mapping[str, torch.Tensor], labels: torch.Tensor | None = None,
                    size: float = 3.6) -> plt.Figure:
    """Side-by-side heatmaps of (B, B) kernels, one per entry of ``kernels`` (title -> kernel), on one colour scale.

    Pass examples sorted by class and their ``labels`` to draw the class boundaries: a kernel that
    knows the classes shows bright diagonal blocks. Kernels with no negative entry (ReLU features give
    those) use a sequential map from 0; otherwise a diverging map centred on 0.
    """
    mats = {t: torch.as_tensor(K).detach().float().cpu().numpy() for t, K in kernels.items()}
    lo, hi = min(m.min() for m in mats.values()), max(m.max() for m in mats.values())
    if lo >= 0:
        cmap, vmin, vmax = "rocket", 0.0, max(hi, 1e-12)
    else:
        cmap, vmax = KERNEL_CMAP, max(abs(lo), abs(hi))
        vmin = -vmax
    n = len(mats)
    fig, axes = plt.subplots(1, n, figsize=(size * n + 0.8, size), layout="constrained", squeeze=False)
    for ax, (title, K) in zip(axes[0], mats.items()):
        im = ax.imshow(K, cmap=cmap, vmin=vmin, vmax=vmax, interpolation="nearest")
        ax.set_title(title, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
        if labels is not None:
            for b in np.flatnonzero(np.diff(np.asarray(labels.cpu()))) + 0.5:
                ax.axhline(b, color="w", lw=0.6, alpha=0.8)
                ax.axvline(b, color="w", lw=0.6, alpha=0.8)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.85, label="kernel value")
    return fig


def curves(ax: plt.Axes, series: Mapping[str, list[float]], xlabel: str = "step", ylabel: str = "",
           smooth: int = 1, start: int | None = None) -> plt.Axes:
    """Plot named 1-D series on ``ax`` (optionally a running mean over ``smooth`` points).

    x counts from ``start`` (default: 1 for epochs, 0 otherwise); short series get markers so that a
    series of one point still shows.
    """
    start = (1 if xlabel == "epoch" else 0) if start is None else start
    for name, ys in series.items():
        ys = np.asarray(ys, dtype=float)
        if smooth > 1 and len(ys) >= smooth:
            ys = np.convolve(ys, np.ones(smooth) / smooth, mode="valid")
        ax.plot(start + np.arange(len(ys)), ys, label=name, lw=1.8, marker="o" if len(ys) <= 30 else None, ms=4)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.legend(frameon=False)
    sns.despine(ax=ax)
    return ax


def image_grid(X: torch.Tensor, y: torch.Tensor, per_class: int = 6, class_names: list[str] | None = None,
               zoom: int = 2) -> plt.Figure:
    """uint8 images (N, 3, H, W) as one mosaic: a row per class, ``per_class`` examples each, pixels kept sharp."""
    classes = sorted(set(y.tolist()))
    H, W, gap = X.shape[2], X.shape[3], 2
    mosaic = torch.full((3, len(classes) * (H + gap), per_class * (W + gap)), 255, dtype=torch.uint8)
    for r, c in enumerate(classes):
        for k, i in enumerate(torch.nonzero(y == c).flatten()[:per_class].tolist()):
            mosaic[:, r * (H + gap): r * (H + gap) + H, k * (W + gap): k * (W + gap) + W] = X[i]
    names = [class_names[c] if class_names else f"class {c}" for c in classes]
    h_px, w_px = mosaic.shape[1] * zoom, mosaic.shape[2] * zoom
    left, bottom = 12 + 8 * max(len(n) for n in names), 14  # room for the names, and for savefig's source line
    fig = plt.figure(figsize=((w_px + left) / DPI, (h_px + bottom) / DPI))
    ax = fig.add_axes((left / (w_px + left), bottom / (h_px + bottom), w_px / (w_px + left), h_px / (h_px + bottom)))
    ax.imshow(mosaic.permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([(H + gap) * r + H / 2 for r in range(len(classes))], names, fontsize=8)
    ax.tick_params(length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    return fig


def _half_width(row: dict, missing=None):
    """A summary row's 95% half-width, or ``missing`` where it has none (one seed: NaN, or None read from JSON)."""
    ci = row["ci95"]
    return missing if ci is None or ci != ci else ci


def _values(test_acc) -> list:
    """A cell's per-seed accuracies, whether stored as a list or as ``{seed: accuracy}``."""
    return list(test_acc.values()) if isinstance(test_acc, Mapping) else list(test_acc)


def method_comparison(summary: dict, paper: dict | None = None, paper_pair: str | None = None,
                      show_teacher: bool = True) -> plt.Figure:
    """Our methods' mean test accuracy with 95% CIs (left) beside the paper's numbers for one column (right).

    ``show_teacher=False`` leaves out the teacher's line (across label spaces it measures another task).
    """
    methods = list(summary["methods"])
    n_panels = 2 if paper and paper_pair else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(5.2 * n_panels, 3.8), layout="constrained", squeeze=False)
    ax = axes[0][0]
    colors = [color(m) for m in methods]
    for i, m in enumerate(methods):
        r = summary["methods"][m]
        ax.errorbar(i, r["mean"], yerr=_half_width(r), fmt="o", color=colors[i],
                    capsize=4, ms=7)
        ax.scatter([i] * len(r["test_acc"]), _values(r["test_acc"]), color=colors[i], s=10, alpha=0.45)
    if show_teacher:
        ax.axhline(summary["teacher_test_acc"], color="0.4", ls="--", lw=1)
        ax.text(len(methods) - 0.5, summary["teacher_test_acc"], f"teacher {summary['teacher']}", ha="right",
                va="bottom", fontsize=8, color="0.3")
    ax.set_xticks(range(len(methods)), [label(m) for m in methods], rotation=25, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"ours: {summary['teacher']} -> {summary['student']}, {summary['data']}\n"
                 f"({summary['scale']} scale; mean and 95% CI over seeds)", fontsize=9)
    sns.despine(ax=ax)
    if n_panels == 2:
        ax = axes[0][1]
        col = paper["pairs"].index(paper_pair)
        for i, m in enumerate(methods):
            key = m if m in paper["rows"] else f"{m}*"
            if key in paper["rows"]:
                ci = paper.get("ci95", {}).get(key)
                ax.errorbar(i, paper["rows"][key][col], yerr=ci[col] if ci else None, fmt="s", color=colors[i],
                            capsize=4, ms=6, mfc="white")
        ax.axhline(paper["rows"]["teacher*"][col], color="0.4", ls="--", lw=1)
        ax.set_xticks(range(len(methods)), [label(m) for m in methods], rotation=25, ha="right")
        ax.set_title(f"the paper (reference only): {paper_pair}, CIFAR-100\n(a different setting; open markers)",
                     fontsize=9)
        sns.despine(ax=ax)
    return fig


def ensemble_curve(summary: dict, paper: dict | None = None) -> plt.Figure:
    """Test accuracy against the number of teachers E: students (KD, FKD on the mean of the teachers' kernels, FKD on
    their concatenated features) with 95% CIs over paired seeds, the teacher ensemble and the plain student; the
    paper's curve (a different setting) in a second panel."""
    E, rows = summary["E"], summary["rows"]
    n_panels = 2 if paper else 1
    fig, axes = plt.subplots(1, n_panels, figsize=(5.2 * n_panels, 3.9), layout="constrained", squeeze=False)
    ax = axes[0][0]
    for i, m in enumerate(("kd", "fkd", "fkd-concat")):
        cells = [(e, rows[f"{m} E={e}"]) for e in E if f"{m} E={e}" in rows]
        if cells:
            x = [e * (1 + 0.04 * (i - 1)) for e, _ in cells]  # side by side, so the intervals do not hide each other
            ax.errorbar(x, [c["mean"] for _, c in cells], yerr=[_half_width(c, float("nan")) for _, c in cells],
                        fmt="o-", capsize=3, color=color(m), label=f"{label(m)} student")
    if summary.get("teacher_ensemble"):
        ax.plot(E, summary["teacher_ensemble"], "s--", color="0.25", label="teacher ensemble")
    if "none" in rows:
        ax.axhline(rows["none"]["mean"], color=color("none"), ls=":", label="no distillation")
    ax.set_xscale("log", base=2)
    ax.set_xticks(E, [str(e) for e in E])
    ax.set_xlabel("number of teachers E")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"ours: {summary['arch']} everywhere, {summary.get('data', '')}\n({summary['scale']} scale; "
                 f"mean and 95% CI over paired seeds)", fontsize=9)
    ax.legend(frameon=False, fontsize=8, loc="best")
    sns.despine(ax=ax)
    if paper:
        ax = axes[0][1]
        for m in ("kd", "fkd"):
            ax.plot(paper["E"], paper[m], "o-", color=color(m), mfc="white", label=f"{label(m)} student")
        ax.plot(paper["E"], paper["teacher_ensemble"], "s--", color="0.25", mfc="white", label="teacher ensemble")
        ax.axhline(paper["none"], color=color("none"), ls=":", label="no distillation")
        ax.set_xscale("log", base=2)
        ax.set_xticks(paper["E"], [str(e) for e in paper["E"]])
        ax.set_xlabel("number of teachers E")
        ax.set_title("the paper (reference only): VGG8 everywhere, CIFAR-100\n(a different setting; read off its plot)",
                     fontsize=9)
        sns.despine(ax=ax)
    return fig


def validation_choices(summary: dict) -> plt.Figure:
    """Every candidate weight tried per method (``fkdlib.experiments.comparison``'s tuning): validation accuracy of each seed
    (dots) and their mean (bar), the chosen one ringed, and the winner's margin band (twice the validation SE)."""
    methods = [m for m, t in summary["tuning"].items() if len(t["rounds"][0]) > 1]
    fig, axes = plt.subplots(1, len(methods), figsize=(2.3 * len(methods) + 1.2, 3.6), layout="constrained",
                             sharey=True, squeeze=False)
    for ax, m in zip(axes[0], methods):
        table = summary["tuning"][m]
        tries = {t["run"]: t for rnd in table["rounds"] for t in rnd}  # the last round holds the most seeds
        names = [t["run"] for t in table["rounds"][0]]
        for i, run in enumerate(names):
            vals = list(tries[run]["val_acc"].values())
            c = color(m)  # "rkd weight": the weight stage of RKD's choice
            ax.scatter([i] * len(vals), vals, s=12, color=c, alpha=0.6)
            ax.plot([i - 0.3, i + 0.3], [np.mean(vals)] * 2, color=c, lw=2)
            if run == table["run"]:
                ax.plot(i, np.mean(vals), "o", ms=15, mfc="none", mec="k")
                if table.get("two_se"):
                    ax.axhspan(np.mean(vals) - table["two_se"], np.mean(vals), color="0.85", zorder=0)
        ax.set_xticks(range(len(names)), [weights_label(tries[r]["method"]) for r in names], rotation=35, ha="right",
                      fontsize=7)
        name, _, stage = m.partition(" ")
        if not stage and len({tries[r]["method"].get("lr") for r in names}) > 1:
            stage = "learning rate"
        ax.set_title(label(name) + (f": {stage}" if stage else ""), fontsize=10)
        sns.despine(ax=ax)
    axes[0][0].set_ylabel("validation accuracy (%)")
    return fig


def paired_differences(summary: dict, contrasts: list[str] | None = None) -> plt.Figure:
    """The paired differences of test accuracy (``summary["paired"]``, "a - b" -> mean, 95% CI, per-seed values):
    one row each, the interval coloured by what it shows (above 0, below 0, or containing 0)."""
    names = contrasts or list(summary["paired"])
    fig, ax = plt.subplots(figsize=(6.4, 0.42 * len(names) + 1.3), layout="constrained")
    up, down, none = sns.color_palette(PALETTE)[2], sns.color_palette(PALETTE)[3], "0.5"
    for row, name in enumerate(reversed(names)):
        d = summary["paired"][name]
        lo, hi = interval(d)
        color = up if lo > 0 else down if hi < 0 else none
        ax.plot([lo, hi], [row, row], color=color, lw=3, solid_capstyle="butt")
        ax.plot(d["mean"], row, "o", color=color, ms=7)
        ax.scatter(d["diffs"], [row + 0.22] * len(d["diffs"]), s=9, color=color, alpha=0.5)
    a_b = [n.split(" - ") for n in reversed(names)]
    ax.set_yticks(range(len(names)), [f"{label(a)} − {label(b)}" for a, b in a_b])
    ax.axvline(0, color="0.3", lw=1)
    ax.set_xlabel("difference in test accuracy (points), 95% CI")
    n = max(summary["paired"][k]["n"] for k in names)
    pair = (f"{summary['teacher']} -> {summary['student']}" if "teacher" in summary
             else f"{summary['arch']} teachers and students")
    ax.set_title(f"paired differences over {n} seeds\n{pair}, {summary.get('data', '')}", fontsize=9)
    sns.despine(ax=ax)
    return fig
