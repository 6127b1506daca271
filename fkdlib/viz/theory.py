"""Notebook 02's figures (the multi-view simulation, ``fkdlib.theory``) and its FKD explorer widget.

Each function takes numbers the simulation already measured (tensors, or the dicts of
``fkdlib.theory.experiment.Simulation``) and returns a figure; the explorer's widget reruns a small simulation
through the callable it is given and redraws.
"""
from __future__ import annotations

import io
from collections.abc import Callable, Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.colors import ListedColormap

from .figures import DPI

VIEW_NAMES = ["none", "view 1", "view 2", "both"]


def patches(examples: Mapping[str, tuple], k: int) -> plt.Figure:
    """Heatmaps of ``{kind: ((P, 2k) coefficient of each view on each patch, class)}``, one per example."""
    fig, axes = plt.subplots(1, len(examples), figsize=(6 * len(examples), 3.2), layout="constrained", squeeze=False)
    for ax, (kind, (coef, c)) in zip(axes[0], examples.items()):
        im = ax.imshow(np.asarray(coef), cmap="RdBu_r", vmin=-1, vmax=1, aspect="auto")
        ax.set(title=f"a {kind} point of class {c}", xlabel="view (class.view)", ylabel="patch")
        ax.set_xticks(range(2 * k), [f"{c_}.{v + 1}" for c_ in range(k) for v in range(2)], fontsize=7)
    fig.colorbar(im, ax=axes[0].tolist(), shrink=0.8, label="<x_p, v>")
    return fig


def activation(z, curves: Mapping[str, object], thr: float) -> plt.Figure:
    """Curves ``{label: values at z}`` (the smoothed ReLU, its derivative, the ReLU) and the threshold, dotted."""
    fig, ax = plt.subplots(figsize=(6, 3.2), layout="constrained")
    for label, y in curves.items():
        ax.plot(np.asarray(z), np.asarray(y), lw=1.8, label=label)
    ax.axvline(thr, color="0.6", lw=0.8, ls=":")
    ax.set(xlabel="z", ylim=(-0.1, 2.1))
    ax.legend(frameon=False)
    return fig


def race(steps, Phi, thr: float, seeds: int = 4, classes: int = 3) -> plt.Figure:
    """Phi[t, net, class, view] over training ``steps``: a panel per class, a colour per seed, view 1 solid."""
    Phi = np.asarray(Phi)
    fig, axes = plt.subplots(1, classes, figsize=(13, 3.6), sharey=True, layout="constrained", squeeze=False)
    for c, ax in enumerate(axes[0]):
        for s in range(min(seeds, Phi.shape[1])):
            for v, style in enumerate(["-", "--"]):
                ax.plot(steps, Phi[:, s, c, v], style, color=f"C{s}", lw=1.6, label=f"seed {s}" if v == 0 else None)
        ax.axhline(thr, color="0.6", lw=0.8, ls=":")
        ax.set(title=f"class {c}: view 1 (solid) vs view 2 (dashed)", xlabel="step")
    ax0 = axes[0, 0]
    ax0.set_yscale("symlog", linthresh=0.1)
    ax0.set_ylim(-0.03, 4)
    ax0.set_ylabel(r"$\Phi_{c,l}=\max_r\langle w_{c,r}, v_{c,l}\rangle$")
    ax0.legend(frameon=False, fontsize=8)
    return fig


def lottery_grid(learned) -> plt.Figure:
    """Which views each net (row) learned for each class (column): none, view 1, view 2 or both."""
    learned = np.asarray(learned).astype(int)
    code = learned[..., 0] + 2 * learned[..., 1]                       # 0 none, 1 view 1, 2 view 2, 3 both
    fig, ax = plt.subplots(figsize=(7, 0.45 * len(code) + 1.4), layout="constrained")
    ax.imshow(code, cmap=ListedColormap(["0.85", "C0", "C1", "C2"]), vmin=-0.5, vmax=3.5, aspect="auto")
    for (s, c), v in np.ndenumerate(code):
        ax.text(c, s, VIEW_NAMES[v].replace("view ", "v"), ha="center", va="center", fontsize=8,
                color="w" if v else "k")
    ax.set(xticks=range(code.shape[1]), yticks=range(len(code)), xlabel="class", ylabel="seed",
           title="which views each net learned (Phi above the threshold)")
    return fig


def lottery_accuracy(accuracy: Mapping[str, object], k: int) -> plt.Figure:
    """``{test set: accuracy of each net}`` as bars (the mean) with one dot per seed, and chance (1/k) dotted."""
    fig, ax = plt.subplots(figsize=(8, 3.4), layout="constrained")
    for x, (name, a) in enumerate(accuracy.items()):
        a = np.asarray(a)
        ax.bar(x, a.mean(), color=f"C{x}", alpha=0.6)
        ax.plot(np.full(len(a), x) + np.linspace(-0.2, 0.2, len(a)), a, "o", color=f"C{x}", ms=4)
    ax.axhline(1 / k, color="0.5", ls=":", lw=1)
    ax.text(-0.45, 1 / k + 0.02, "chance", fontsize=8)
    ax.set_xticks(range(len(accuracy)), [n.replace(", ", ",\n") for n in accuracy], fontsize=9)
    ax.set(ylabel="test accuracy", ylim=(0, 1.05), title="plain training: one dot per seed")
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))                # room for the source line
    return fig


SPLITS = [("acc_own", "views the student had", "C0"), ("acc_teacher_only", "views only its teachers had", "C1"),
          ("acc_neither", "views nobody had", "C7")]


def fkd_vs_E(fkd: Mapping[str, dict], Es: Sequence[int], n_students: int) -> plt.Figure:
    """Left: single-view accuracy of the FKD students against E, the theorem's curve, the union of the views the nets
    learned, plain and self. Right: the students' accuracy split by who had learned the view shown."""
    Es = np.asarray(Es)

    def at_E(key):
        return [fkd[f"E={E}"][key] for E in Es]

    fig, (ax, right) = plt.subplots(1, 2, figsize=(12, 3.8), layout="constrained")
    grid = np.arange(0, Es.max() + 1)
    ax.plot(grid, 1 - 2.0 ** -(grid + 1), "k--", lw=1.2, label=r"theorem: $1-2^{-(E+1)}$")
    ax.plot(Es, at_E("union_pred"), "s", color="0.5", mfc="none", label="union of the views our nets learned")
    ax.errorbar(Es, at_E("mean"), yerr=at_E("ci95"), fmt="o-", color="C0", capsize=4, lw=2,
                label=f"FKD students (95% CI, {n_students} seeds)")
    for x, name, color in [(-0.15, "plain", "C3"), (0.15, "self", "C2")]:
        ax.errorbar([x], [fkd[name]["mean"]], yerr=[fkd[name]["ci95"]], fmt="D", color=color, capsize=4,
                    label=f"{name} (E=0)")
    ax.set(xlabel="E, number of teachers", ylabel="single-view test accuracy", xticks=[0, *Es], ylim=(0.4, 1.02))
    ax.legend(frameon=False, fontsize=8, loc="lower right")
    for key, label, color in SPLITS:
        right.plot(Es, at_E(key), "o-", color=color, label=label)
        if key != "acc_teacher_only":                                   # plain has no teachers
            right.axhline(fkd["plain"][key], color=color, ls=":", lw=1)
    right.set(xlabel="E", ylabel="single-view test accuracy", xticks=Es, ylim=(0, 1.02),
              title="split by who had learned the shown view (dotted: plain)")
    right.legend(frameon=False, fontsize=8)
    return fig


def lambda_sweep(sweep: Mapping[str, dict], plain: float, lam_kd: float, n_students: int, E: int) -> plt.Figure:
    """Single-view accuracy against lambda for the normalised, raw and self kernels (how many students diverged,
    where any did); plain dotted, the lambda used elsewhere a grey band."""
    fig, ax = plt.subplots(figsize=(8, 3.8), layout="constrained")
    styles = {"normalised": ("C0", f"normalised kernel, E = {E}"), "raw": ("C3", f"raw kernel, E = {E}"),
              "self": ("C2", "normalised kernel, self (teacher = own net)")}
    for kind, (color, label) in styles.items():
        pts = sorted(((v["lam"], v) for v in sweep.values() if isinstance(v, dict) and v["kind"] == kind),
                     key=lambda p: p[0])
        ax.errorbar([p for p, _ in pts], [v["mean"] for _, v in pts], yerr=[v["ci95"] for _, v in pts], fmt="o-",
                    color=color, capsize=4, label=label)
        for p, v in pts:
            if v["diverged"]:
                ax.annotate(f"{v['diverged']}/{n_students} diverged", (p, v["mean"]), textcoords="offset points",
                            xytext=(-30, 8), fontsize=8, color=color)
    ax.axhline(plain, color="0.5", ls=":", label="plain")
    ax.axvline(lam_kd, color="0.8", lw=6, alpha=0.5, zorder=0)
    ax.set(xscale="log", xlabel=r"$\lambda_{KD}$ (grey band: the value used above)",
           ylabel="single-view test accuracy", ylim=(0, 1.02))
    ax.legend(frameon=False, fontsize=8, loc="lower left")
    return fig


def schedule(schedule: Mapping[str, dict], plain: float, E: int) -> plt.Figure:
    """Single-view accuracy when the kernel term starts after the lottery or at step 0, with the views per class
    that landed in another class's neurons written on each bar; plain dotted."""
    fig, ax = plt.subplots(figsize=(6, 3.6), layout="constrained")
    rows = {k: v for k, v in schedule.items() if isinstance(v, dict)}
    ax.bar(range(len(rows)), [v["single_view"][0] for v in rows.values()],
           yerr=[v["single_view"][1] for v in rows.values()], color=["C0", "C1"], capsize=4, width=0.6)
    for x, v in enumerate(rows.values()):
        ax.text(x, 0.05, f"{v['wrong_block_views'][0]:.2f} views/class\nin another class's\nneurons", ha="center",
                fontsize=8, color="w")
    ax.axhline(plain, color="0.5", ls=":", label="plain")
    ax.legend(frameon=False, fontsize=8)
    ax.set(xticks=range(len(rows)), xticklabels=list(rows), ylim=(0, 1.02), ylabel="single-view test accuracy",
           title=f"when the kernel term starts (E = {E})")
    fig.get_layout_engine().set(rect=(0, 0.04, 1, 0.96))
    return fig


def explorer(probe: dict) -> plt.Figure:
    """One rerun of the FKD students (``Simulation.probe``): left, each student's single-view accuracy beside plain's,
    the theorem's value and the union of views; right, the same split by who had learned the view shown."""
    fig, (ax, right) = plt.subplots(1, 2, figsize=(11, 3.6), layout="constrained", width_ratios=(1, 1.3))
    plain, acc = probe["plain"], np.asarray(probe["acc"])
    for x, (a, color) in enumerate([(np.asarray(plain["acc"]), "C3"), (acc, "C0")]):
        ax.bar(x, a.mean(), color=color, alpha=0.5, width=0.6)
        ax.plot(np.full(len(a), x) + np.linspace(-0.2, 0.2, len(a)), a, "o", color=color, ms=4)
    ax.axhline(probe["theorem"], color="k", ls="--", lw=1.2, label=r"theorem $1-2^{-(E+1)}$")
    ax.axhline(probe["union_pred"], color="0.5", ls=":", lw=1.5, label="union of the views the nets learned")
    ax.set(xticks=[0, 1], xticklabels=["plain", f"FKD, E = {probe['E']}"], ylim=(0, 1.3),
           yticks=np.linspace(0, 1, 6), ylabel="single-view test accuracy")
    ax.legend(frameon=False, fontsize=8, loc="upper center", ncol=2)
    keys = [key for key, _, _ in SPLITS]
    x = np.arange(len(keys))
    right.bar(x - 0.2, [plain[k] for k in keys], 0.4, color="C3", alpha=0.6, label="plain")
    right.bar(x + 0.2, [probe[k] for k in keys], 0.4, color="C0", alpha=0.8, label=f"FKD, E = {probe['E']}")
    right.set(xticks=x, ylim=(0, 1.3), yticks=np.linspace(0, 1, 6), title="split by who had learned the view shown")
    right.set_xticklabels([label for _, label, _ in SPLITS], fontsize=9)
    right.legend(frameon=False, fontsize=8, loc="upper center", ncol=2)
    fig.suptitle(f"E = {probe['E']}, λ = {probe['lam_kd']:.3g}, teachers combined by {probe['combine']}: single-view "
                 f"{probe['mean']:.3f} ± {probe['ci95']:.3f} (plain {plain['mean']:.3f})", fontsize=10)
    return fig


def explorer_widget(probe: Callable[..., dict], E: int, E_max: int, lam_kd: float, combine: str,
                    lam_range: tuple[float, float] = (0.0, 3.5)):
    """An ipywidgets ``interactive`` over E, lambda (log10 range ``lam_range``) and the combination rule: each change
    calls ``probe(E, lam_kd, combine)`` (a rerun of seconds), prints its result and redraws ``explorer``."""
    import ipywidgets as W
    from IPython.display import Image, display

    controls = dict(
        E=W.IntSlider(value=E, min=1, max=E_max, description="E teachers", continuous_update=False),
        lam_kd=W.FloatLogSlider(value=lam_kd, base=10, min=lam_range[0], max=lam_range[1], step=0.25,
                                description="λ", continuous_update=False, readout_format=".3g"),
        combine=W.ToggleButtons(options=["concat", "mean"], value=combine, description="combine"))

    def redraw(E, lam_kd, combine):
        p = probe(E, lam_kd, combine)
        print(f"E = {E}, λ = {lam_kd:.3g}, {combine}: single-view {p['mean']:.3f} ± {p['ci95']:.3f} over "
              f"{len(p['acc'])} students (plain {p['plain']['mean']:.3f}); rerun in {p['seconds']:.1f} s")
        fig = explorer(p)
        plt.close(fig)        # out of pyplot's list first: the inline backend's flush (ipywidgets calls it around
        png = io.BytesIO()    # every update) must never draw this figure while it is being rendered here
        fig.savefig(png, format="png", dpi=DPI, bbox_inches="tight")
        display(Image(png.getvalue()))

    return W.interactive(redraw, **controls)
