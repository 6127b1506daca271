"""Notebook 01's kernel explorer: class-sorted heatmaps of several networks' kernels behind ipywidgets controls,
and the on-disk cache that lets the notebook reach it in seconds on a re-run.

The kernels are computed once, when the explorer is built; a control only picks rows and columns (and, for the
difference view, subtracts two slices) and redraws.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import ipywidgets as W
import matplotlib.pyplot as plt
import torch
import traitlets

from ..distill.kernels import feature_kernel
from .heatmaps import class_sorted, kernel_grid

KINDS = ("normalised", "raw", "difference")
"""What the explorer draws: rho (cosines, one scale), raw k (each panel its own scale), rho - rho(reference)."""


def _label(text: str) -> W.HTML:
    """A control's name, right-aligned in the width ipywidgets gives its own descriptions."""
    return W.HTML(f"<div style='text-align: right; padding-right: 8px'>{text}</div>",
                  layout=W.Layout(width="88px", flex="0 0 auto"))


class ToggleRow(W.HBox):
    """A row of toggle buttons, one per option: a click picks or drops one option, no ctrl-click. ``value`` is the
    tuple of picked options in the options' order; observe it or set it like any widget's value."""

    value = traitlets.Tuple()

    def __init__(self, options: Sequence, value: Sequence = (), description: str = "", all_none: bool = False):
        self.options = [o if isinstance(o, tuple) else (str(o), o) for o in options]   # (label, value) pairs
        self.buttons = [W.ToggleButton(description=label, value=v in value, tooltip=label,
                                       layout=W.Layout(width="auto")) for label, v in self.options]
        extra = [W.Button(description=d, layout=W.Layout(width="auto")) for d in ("all", "none")] if all_none else []
        for button, pick in zip(extra, ([v for _, v in self.options], [])):
            button.on_click(lambda _, pick=pick: setattr(self, "value", tuple(pick)))
        super().__init__([_label(description),
                          W.HBox(self.buttons + extra, layout=W.Layout(flex_flow="row wrap"))])
        self.add_class("fkd-" + "-".join(description.split()))   # e.g. fkd-classes: what a browser test looks for
        self._syncing = False
        self.value = self._picked()
        for b in self.buttons:
            b.observe(self._from_buttons, names="value")
        self.observe(self._to_buttons, names="value")

    def _picked(self) -> tuple:
        return tuple(v for (_, v), b in zip(self.options, self.buttons) if b.value)

    def _from_buttons(self, _=None) -> None:
        if not self._syncing:
            self.value = self._picked()

    def _to_buttons(self, change) -> None:   # one change of ``value`` sets every button, then fires once
        self._syncing = True
        for (_, v), b in zip(self.options, self.buttons):
            b.value = v in change["new"]
        self._syncing = False


class KernelExplorer:
    """Class-sorted kernel heatmaps of several networks on one probe batch, behind ipywidgets controls.

    ``features``: network name -> (N, D) penultimate features of the same N probe images; ``labels`` (N,);
    ``class_names``; ``reference``: the network the difference view subtracts (default: "teacher" if there is
    one, else the first). Every network's raw and normalised (N, N) kernels are computed here, once; a control
    only picks rows and columns of them (``view``) and redraws (``figure``).
    """

    def __init__(self, features: Mapping[str, torch.Tensor], labels: torch.Tensor, class_names: Sequence[str],
                 caption: str = "", reference: str | None = None):
        self.labels, self.class_names, self.caption = labels.cpu(), list(class_names), caption
        self.kernels = {(name, norm): feature_kernel(h.cpu(), normalize=norm)
                        for name, h in features.items() for norm in (True, False)}
        self.networks = list(features)
        self.reference = reference or ("teacher" if "teacher" in features else self.networks[0])
        self.max_per_class = int(torch.bincount(self.labels).max())
        self.draws = 0

    def view(self, networks: Sequence[str], classes: Sequence[int], per_class: int, kind: str = "normalised",
             reference: str | None = None) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The chosen networks' kernels on the first ``per_class`` probe images of each of ``classes`` (slices of
        the precomputed kernels), and those images' labels. ``kind="difference"``: rho_net - rho_reference for
        every chosen network but the reference."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        idx = class_sorted(self.labels, per_class, classes)
        normalized = kind != "raw"
        if kind == "difference":
            ref = reference or self.reference
            K_ref = self._slice(ref, normalized, idx)
            return {n: self._slice(n, normalized, idx) - K_ref for n in networks if n != ref}, self.labels[idx]
        return {n: self._slice(n, normalized, idx) for n in networks}, self.labels[idx]

    def _slice(self, network: str, normalized: bool, idx: torch.Tensor) -> torch.Tensor:
        return self.kernels[(network, normalized)][idx][:, idx]

    def figure(self, networks: Sequence[str], classes: Sequence[int], per_class: int,
               kinds: Sequence[str] = ("normalised",), reference: str | None = None) -> plt.Figure:
        """The heatmaps of ``view(...)``, a row per kind: normalised kernels on one colour scale, raw ones each on
        its own, differences on one diverging scale centred on 0."""
        ref = reference or self.reference
        titles = {"normalised": "normalised ρ", "raw": "raw k (own scales)", "difference": f"ρ − ρ({ref})"}
        rows, labels = {}, None
        for kind in kinds:
            rows[titles[kind]], labels = self.view(networks, classes, per_class, kind, ref)
            if not rows[titles[kind]]:
                raise ValueError(f"nothing to draw as {kind}: pick a network besides {ref}, the one subtracted")
        fig = kernel_grid(rows, labels, shared=[k != "raw" for k in kinds], size=3.2, class_names=self.class_names,
                          diverging=[k == "difference" for k in kinds])
        counts = torch.bincount(labels)[list(classes)]
        n = f"{int(counts.min())}" if counts.min() == counts.max() else f"{int(counts.min())}-{int(counts.max())}"
        shown = ", ".join(self.class_names[c] for c in classes)
        fig.suptitle(f"{self.caption + ': ' if self.caption else ''}{n} per class of {shown}", fontsize=10)
        self.draws += 1
        return fig

    def widget(self, networks: Sequence[str] | None = None, classes: Sequence[int] | None = None,
               per_class: int | None = None, kind: str = "normalised") -> W.VBox:
        """The explorer as an ipywidgets box: the controls (networks, classes, kernel, reference, examples per
        class) above the heatmaps. Networks and classes are rows of toggle buttons: one click each."""
        from IPython.display import display

        self.controls = {
            "networks": ToggleRow(self.networks, networks or self.networks[:2], "networks"),
            "classes": ToggleRow([(n, i) for i, n in enumerate(self.class_names)],
                                 range(len(self.class_names)) if classes is None else classes, "classes", all_none=True),
            "kernel": W.ToggleButtons(options=list(KINDS), value=kind, style={"button_width": "auto"},
                                      tooltips=["cosines ρ, one scale", "inner products k, each its own scale",
                                                "ρ minus the reference's ρ: red, more alike than to it; blue, less"]),
            "reference": W.Dropdown(options=self.networks, value=self.reference, description="minus",
                                    disabled=kind != "difference"),
            "per_class": W.IntSlider(value=per_class or min(10, self.max_per_class), min=2, max=self.max_per_class,
                                     description="per class", continuous_update=False),
        }
        self.output = W.Output()

        def redraw(_=None):
            c = {k: w.value for k, w in self.controls.items()}
            self.controls["reference"].disabled = c["kernel"] != "difference"
            with self.output:
                self.output.clear_output(wait=True)
                shown = [n for n in c["networks"] if c["kernel"] != "difference" or n != c["reference"]]
                if not shown or not c["classes"]:
                    print("pick at least one class and one network"
                          + (f" besides {c['reference']}, the one subtracted" if c["kernel"] == "difference" else ""))
                    return
                fig = self.figure(c["networks"], sorted(c["classes"]), c["per_class"], [c["kernel"]], c["reference"])
                display(fig)
                plt.close(fig)

        for w in self.controls.values():
            w.observe(redraw, names="value")
        redraw()
        c = self.controls
        controls = [c["networks"], c["classes"], W.HBox([_label("kernel"), c["kernel"]]), c["reference"], c["per_class"]]
        box = W.VBox([W.VBox(controls), self.output])
        box.add_class("fkd-kernel-explorer")   # what a browser test looks for
        return box
