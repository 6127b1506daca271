"""Figures of the regime the paper tests: the doubling test that fixes how long students train, and the weight
searches that bracket their choice (``fkdlib.experiments.convergence``, ``comparison.ConvergedGrid``)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import seaborn as sns

from ..distill.methods import label
from .figures import PALETTE
from .look import color


def doubling_test(summary: dict) -> plt.Figure:
    """The doubling test (``convergence``'s summary): per method, validation accuracy (left) and clean training
    accuracy (right) at each budget, each pilot seed a dot and their mean a line; each doubling's mean change in
    validation accuracy is written on its segment, green where it is under the tolerance (converged), red where not;
    the dashed line is the regime the comparison trains at."""
    methods, tol = summary["methods"], summary["tolerance"]
    ok, bad = sns.color_palette(PALETTE)[2], sns.color_palette(PALETTE)[3]
    fig, axes = plt.subplots(1, 2, figsize=(9.6, 3.6), layout="constrained", sharex=True)
    for m, row in methods.items():
        at = {int(b): r for b, r in row["budgets"].items()}  # keys: ints as returned, strings as read from JSON
        budgets = sorted(at)
        for ax, key in zip(axes, ("val_acc", "train_clean_acc")):
            means = [at[b][key]["mean"] for b in budgets]
            if None in means:  # pilots that did not score it
                continue
            for b in budgets:
                seeds = at[b][key]["per_seed"].values()
                ax.scatter([b] * len(seeds), list(seeds), s=14, color=color(m), alpha=0.55)
            ax.plot(budgets, means, "-o", color=color(m), ms=4, label=label(m))
        for step, test in summary["doubling"].get(m, {}).items():
            short, long = (int(x) for x in step.split(" -> "))
            y = np.mean([at[b]["val_acc"]["mean"] for b in (short, long)])
            axes[0].annotate(f"{test['mean_delta_val_acc']:+.2f}", (np.sqrt(short * long), y), fontsize=8,
                             ha="center", va="bottom", color=ok if test["converged"] else bad,
                             xytext=(0, 4), textcoords="offset points")
    for ax, what in zip(axes, ("validation accuracy (%)", "clean training accuracy (%)")):
        ax.axvline(summary["regime_epochs"], color="0.4", ls="--", lw=1)
        ax.set_xscale("log", base=2)
        budgets = sorted({int(b) for row in methods.values() for b in row["budgets"]})
        ax.set_xticks(budgets, [str(b) for b in budgets])
        ax.minorticks_off()
        ax.set_xlabel("epochs (decays at the same fractions)")
        ax.set_ylabel(what)
        sns.despine(ax=ax)
    axes[0].legend(frameon=False, fontsize=8, loc="lower right")
    axes[0].set_title(f"doubling the epochs: change in validation accuracy\n(green: under {tol:g} point, converged)",
                      fontsize=9)
    axes[1].set_title(f"how well the students fit their {summary['num_train']:,} training images\n"
                      f"(evaluation mode, no augmentation)", fontsize=9)
    return fig


def weight_searches(summary: dict) -> plt.Figure:
    """Every search that walks a weight (a tuned grid's tables with an ``axis``): validation accuracy against the
    weight on a log axis, each tuning seed a dot and the mean a line, the choice ringed; a candidate off the axis (FKD
    without its regulariser, in the regulariser's search) is the dashed level. The title says whether the choice is
    interior to what was tried (bracketed) or at an edge."""
    order = summary.get("order", {}).get("methods", [])
    keys = sorted((k for k, t in summary["tuning"].items() if t.get("axis")),
                  key=lambda k: order.index(k) if k in order else len(order))
    fig, axes = plt.subplots(1, len(keys), figsize=(2.7 * len(keys) + 0.8, 3.4), layout="constrained", sharey=True,
                             squeeze=False)
    for ax, key in zip(axes[0], keys):
        table, c = summary["tuning"][key], color(key)
        runs = {t["run"]: t for rnd in table["rounds"] for t in rnd}  # the last round a run is in holds most seeds
        on_axis = sorted(table["axis"]["runs"].items(), key=lambda rv: rv[1])
        for run, x in on_axis:
            vals = list(runs[run]["val_acc"].values())
            ax.scatter([x] * len(vals), vals, s=14, color=c, alpha=0.55)
        xs = [x for _, x in on_axis]
        means = [np.mean(list(runs[r]["val_acc"].values())) for r, _ in on_axis]
        ax.plot(xs, means, "-", color=c, lw=2)
        for run in set(runs) - set(table["axis"]["runs"]):
            level = np.mean(list(runs[run]["val_acc"].values()))
            ax.axhline(level, color="0.45", ls="--", lw=1)
            ax.annotate(f"weight 0 ({label(runs[run]['method']['name'])})", (xs[-1], level), fontsize=7,
                        color="0.35", ha="right", va="bottom", xytext=(0, 3), textcoords="offset points")
        chosen = table["run"]
        if chosen in table["axis"]["runs"]:
            ax.plot(table["axis"]["runs"][chosen], np.mean(list(runs[chosen]["val_acc"].values())), "o", ms=14,
                    mfc="none", mec="k")
        ax.set_xscale("log")
        ax.set_xticks(xs, [f"{float(f'{x:.3g}'):g}" for x in xs], rotation=35, fontsize=7)
        ax.minorticks_off()
        ax.set_xlabel(table["axis"]["name"])
        ax.set_title(f"{label(key)}\n{'bracketed' if table.get('bracketed') else 'at an edge'}", fontsize=9)
        sns.despine(ax=ax)
    axes[0][0].set_ylabel("validation accuracy (%)")
    return fig
