"""Figures: one style, one savefig, kernel heatmaps, the experiments' plots, the regime's (doubling test, weight
searches), the theory's, the kernel explorer, widgets."""
from ..distill.methods import label, weights_label
from .figures import (DPI, KERNEL_CMAP, PALETTE, curves, ensemble_curve, image_grid, kernel_heatmaps,
                      method_comparison, paired_differences, savefig, set_style, validation_choices)
from .look import color
from .regime import doubling_test, weight_searches

__all__ = ["DPI", "KERNEL_CMAP", "PALETTE", "color", "curves", "ensemble_curve", "image_grid", "kernel_heatmaps", "label",
           "method_comparison", "paired_differences", "savefig", "set_style", "validation_choices", "weights_label",
           "doubling_test", "weight_searches"]
