"""Folding a frozen network's BatchNorm layers into the convolutions before them, for fast inference.

In eval mode a BatchNorm is a fixed per-channel affine map, ``y = (x - mean) / sqrt(var + eps) * w + b``;
when ``x`` is a convolution's output, that map can be merged into the convolution's weights and bias
(``torch.nn.utils.fusion.fuse_conv_bn_eval``), so the network does the same arithmetic with one pass over
each activation fewer. A frozen teacher runs only in eval mode, so the training engine folds every
teacher once (:func:`fold_batchnorm`) and runs the folded copy under ``torch.inference_mode``.

Which BatchNorm follows which convolution is found by running the network once and watching its
modules (a BatchNorm whose input *is* a convolution's output, each called once per forward), not by
reading module names, so it works for every model of the zoo. The folded copy is then checked against
the original on that input -- every tensor of ``model(x, is_feat=True)`` -- and, should they disagree
beyond ``1e-4`` times the tensor's scale (float32 rounding is ~1e-6), the unfolded copy is returned
instead with a warning: folding can only make a teacher faster, never different.
"""
from __future__ import annotations

import copy
import inspect
import warnings

import torch
import torch.nn as nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

__all__ = ["fold_batchnorm", "conv_bn_pairs", "max_relative_difference", "FOLD_RTOL"]

FOLD_RTOL = 1e-4  # largest |folded - original| allowed, relative to max |original| of each output tensor


def fold_batchnorm(model: nn.Module, example: torch.Tensor | None = None, check: bool = True) -> nn.Module:
    """A copy of ``model`` in eval mode, without gradients, with every conv -> BatchNorm pair folded.

    ``model`` itself is left untouched. ``example``: an input batch to trace with (default: two random
    32x32 images with the first convolution's channels, on the model's device). With ``check`` the folded
    copy's outputs (all features and the logits) are compared with the original's on ``example``;
    if any differs by more than ``FOLD_RTOL`` relative to its scale, the unfolded copy is returned.
    """
    original = copy.deepcopy(model).eval().requires_grad_(False)
    x = _example(original) if example is None else example
    pairs = conv_bn_pairs(original, x)
    if not pairs:
        return original
    folded = copy.deepcopy(original)
    for conv_name, bn_name in pairs:
        conv, bn = folded.get_submodule(conv_name), folded.get_submodule(bn_name)
        fused = fuse_conv_bn_eval(conv, bn).requires_grad_(False)
        _set_submodule(folded, conv_name, fused)
        _set_submodule(folded, bn_name, nn.Identity())
    if check:
        diff = max_relative_difference(original, folded, x)
        if not diff <= FOLD_RTOL:  # also catches NaN
            warnings.warn(f"folding BatchNorm changed {type(model).__name__}'s outputs by {diff:.2e} of their scale "
                          f"(more than {FOLD_RTOL:g}); using the unfolded network", RuntimeWarning, stacklevel=2)
            return original
    return folded


def conv_bn_pairs(model: nn.Module, x: torch.Tensor) -> list[tuple[str, str]]:
    """``(conv_name, bn_name)`` for every BatchNorm fed directly by a convolution in ``model``'s forward on ``x``.

    Only pairs whose two modules each run exactly once per forward, whose BatchNorm tracks running
    statistics, and whose convolution output feeds nothing else that is a module (tensors used by plain
    functions cannot be seen here; :func:`fold_batchnorm` checks the outputs instead) are returned.
    """
    names = {m: n for n, m in model.named_modules()}
    calls: dict[str, int] = {}
    produced: dict[int, str] = {}  # id(output tensor) -> conv name
    keep: list[torch.Tensor] = []  # holds the outputs so their ids stay unique during the trace
    consumers: dict[str, list[str]] = {}  # conv name -> modules that took its output as input
    hooks = []

    def pre_hook(module, args):
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        for a in args:
            if isinstance(a, torch.Tensor) and id(a) in produced:
                consumers.setdefault(produced[id(a)], []).append(name)

    def conv_hook(module, args, out):
        produced[id(out)] = names[module]
        keep.append(out)

    for m in model.modules():
        if m is not model and not _is_container(m):
            hooks.append(m.register_forward_pre_hook(pre_hook))
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
    try:
        with torch.no_grad():
            _outputs(model, x)
    finally:
        for h in hooks:
            h.remove()
    pairs = []
    for conv_name, users in consumers.items():
        if len(users) != 1 or calls.get(conv_name) != 1:
            continue
        bn = model.get_submodule(users[0])
        if isinstance(bn, nn.BatchNorm2d) and calls.get(users[0]) == 1 and bn.track_running_stats \
                and bn.running_mean is not None:
            pairs.append((conv_name, users[0]))
    return pairs


def max_relative_difference(a: nn.Module, b: nn.Module, x: torch.Tensor) -> float:
    """The largest ``max|a(x) - b(x)| / max|a(x)|`` over all output tensors (features and logits), in eval mode."""
    with torch.no_grad():
        outs_a, outs_b = _outputs(a, x), _outputs(b, x)
    worst = 0.0
    for ta, tb in zip(outs_a, outs_b, strict=True):
        scale = ta.float().abs().max().clamp_min(1e-12)
        worst = max(worst, float((ta.float() - tb.float()).abs().max() / scale))
    return worst


def _outputs(model: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """All tensors of ``model(x, is_feat=True)`` (zoo models) or ``model(x)``, flattened into one list."""
    takes_feat = "is_feat" in inspect.signature(model.forward).parameters
    out = model(x, is_feat=True) if takes_feat else model(x)
    flat, stack = [], [out]
    while stack:
        o = stack.pop(0)
        if isinstance(o, torch.Tensor):
            flat.append(o)
        elif isinstance(o, (list, tuple)):
            stack = list(o) + stack
    return flat


def _example(model: nn.Module) -> torch.Tensor:
    first = next((m for m in model.modules() if isinstance(m, nn.Conv2d)), None)
    param = next(model.parameters(), None)
    channels = first.in_channels if first is not None else 3
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, channels, 32, 32, generator=g)
    return x.to(param.device) if param is not None else x


def _is_container(m: nn.Module) -> bool:
    return isinstance(m, (nn.Sequential, nn.ModuleList, nn.ModuleDict))


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    parent = root.get_submodule(parent_name) if parent_name else root
    setattr(parent, child, module)
