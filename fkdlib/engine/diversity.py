"""How different the teachers of an ensemble are: the measurements that say whether "more teachers" can help.

An ensemble of E networks can only hand a student more than one network does if its members differ: in what
they get wrong and in their feature kernels (docs/paper.md §2: each seed learns its own views). ``diversity``
measures, on test images, each member's accuracy, the accuracy of the first E members' averaged probabilities,
how often two members are wrong together against what independent errors would give, and the distance between
their normalised feature kernels (FKD's own distance, mean over i != j of (rho_a - rho_b)^2, and CKA).
"""
from __future__ import annotations

from collections.abc import Sequence
from itertools import combinations

import torch
import torch.nn.functional as F

from ..data.loader import DeviceLoader
from ..distill.kernels import ensemble_kernel, feature_kernel, kernel_alignment, off_diagonal
from .evaluate import eval_mode


def kernel_distance(K_a: torch.Tensor, K_b: torch.Tensor) -> float:
    """FKD's distance between two normalised kernels: the mean over pairs i != j of (K_a - K_b)^2."""
    return float(off_diagonal(K_a - K_b).square().mean())


def _outputs(models: Sequence[torch.nn.Module], loader: DeviceLoader) -> tuple[list, list, torch.Tensor]:
    """Every model's softmax probabilities and features on every batch of ``loader``, and the labels."""
    probs, feats, ys = [[] for _ in models], [[] for _ in models], []
    for xb, yb in loader:
        ys.append(yb)
        for i, m in enumerate(models):
            with eval_mode(m):
                f, logits = m(xb, is_feat=True)
            probs[i].append(F.softmax(logits.float(), dim=1))
            feats[i].append(f[-1].float())
    return [torch.cat(p) for p in probs], [torch.cat(f) for f in feats], torch.cat(ys)


def diversity(models: Sequence[torch.nn.Module], data, E: Sequence[int], kernel_size: int = 1000,
              device=None, batch_size: int = 500) -> dict:
    """Diversity of ``models`` on ``data`` (an ``ImageData``; every image scores accuracy and errors, the first
    ``kernel_size`` the kernels), in percent where a rate:

    - ``single_acc``: each member's test accuracy; ``ensemble_acc``: ``{E: accuracy of the first E members'
      averaged probabilities}``; ``gain``: the largest E's ensemble minus the members' mean accuracy;
    - ``both_wrong``: the rate at which two members are wrong on the same image (mean over pairs) and
      ``both_wrong_if_independent``: the same if their errors were independent (the product of their error rates);
    - ``kernel_distance``: FKD's distance between two members' normalised kernels (mean over pairs, and per pair),
      ``cka``: their centred alignment; ``mean_kernel_distance``: ``{E: distance of the first E members' mean
      kernel from the first member's}`` (what an E-teacher FKD target adds to one teacher's).
    """
    loader = DeviceLoader(data.X, data.y, batch_size, train=False, mean=data.mean, std=data.std, device=device)
    probs, feats, y = _outputs(models, loader)
    wrong = [p.argmax(1) != y for p in probs]
    n = len(models)
    pairs = list(combinations(range(n), 2))
    kernels = [feature_kernel(f[:kernel_size]) for f in feats]
    out = {"n": n, "num_images": len(y), "kernel_images": min(kernel_size, len(y)),
           "single_acc": [100 * (1 - float(w.float().mean())) for w in wrong],
           "ensemble_acc": {e: 100 * float((torch.stack(probs[:e]).mean(0).argmax(1) == y).float().mean())
                            for e in E if e <= n}}
    out["gain"] = out["ensemble_acc"][max(out["ensemble_acc"])] - sum(out["single_acc"]) / n
    if pairs:
        err = [float(w.float().mean()) for w in wrong]
        out["both_wrong"] = 100 * sum(float((wrong[a] & wrong[b]).float().mean()) for a, b in pairs) / len(pairs)
        out["both_wrong_if_independent"] = 100 * sum(err[a] * err[b] for a, b in pairs) / len(pairs)
        dist = {f"{a}-{b}": kernel_distance(kernels[a], kernels[b]) for a, b in pairs}
        out["kernel_distance_pairs"] = dist
        out["kernel_distance"] = sum(dist.values()) / len(dist)
        out["cka"] = sum(float(kernel_alignment(kernels[a], kernels[b])) for a, b in pairs) / len(pairs)
    out["mean_kernel_distance"] = {e: kernel_distance(ensemble_kernel([f[:kernel_size] for f in feats[:e]]),
                                                      kernels[0]) for e in E if e <= n}
    return out
