"""A few-step, in-memory loop for the quickstart: cross-entropy, optionally plus FKD (docs/paper.md §1).

L = CE(student) + lam_kd * fkd_loss(h_S, [h_T1..h_TE]) + lam_fr * feature_norm_penalty(h_S).

Deliberately short, and tracking the kernel after every step. The full engine (datasets, epochs,
schedules, every method, resume) is ``fkdlib.engine.train``; both build their loss with ``methods.loss_terms``.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from ..data import to_float
from .evaluate import penultimate_features
from ..distill.kernels import ensemble_kernel, feature_kernel, kernel_alignment
from ..distill.losses import fkd_loss
from ..distill.methods import Method, loss_terms
from .progress import bar


def fit_in_memory(
    student: torch.nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    steps: int,
    batch_size: int = 64,
    lr: float = 0.05,
    teachers: Sequence[torch.nn.Module] = (),
    lam_kd: float = 0.0,
    lam_fr: float = 0.0,
    probe: torch.Tensor | None = None,
    seed: int = 0,
    progress: bool | None = None,
) -> dict[str, list[float]]:
    """Train ``student`` in place for ``steps`` SGD steps on uint8 images ``X`` and labels ``y``.

    With ``teachers`` and ``lam_kd > 0`` this is FKD; the teachers are frozen (eval mode, no gradient).
    Returns a history: per step ``loss`` and its weighted terms ``ce``, ``fkd``, ``fr``; and, if a ``probe`` batch of uint8
    images is given, ``alignment`` (CKA between the student's and the teachers' normalised kernels on
    the probe) and ``probe_fkd`` (the FKD distance there), measured before training and after every step.
    A non-finite loss stops training with an error naming the step.
    """
    if steps < 1 or batch_size < 2:
        raise ValueError(f"need steps >= 1 and batch_size >= 2, got steps={steps}, batch_size={batch_size}")
    if lam_kd > 0 and not teachers:
        raise ValueError("lam_kd > 0 needs at least one teacher")
    method = Method("fkd", lam_kd=lam_kd, lam_fr=lam_fr) if lam_kd > 0 else Method("none")
    device = next(student.parameters()).device
    X, y = X.to(device), y.to(device)
    for t in teachers:
        t.eval().requires_grad_(False)
    opt = torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    gen = torch.Generator().manual_seed(seed)
    batch_size = min(batch_size, len(X))
    per_epoch = len(X) // batch_size
    hist: dict[str, list[float]] = {k: [] for k in ("loss", "ce", "fkd", "fr")}
    track = probe is not None and len(teachers) > 0
    if track:
        h_t_probe = [penultimate_features(t, probe) for t in teachers]
        K_t = ensemble_kernel(h_t_probe)
        hist["alignment"], hist["probe_fkd"] = [], []
        _probe_metrics(student, probe, h_t_probe, K_t, hist)
    steps_bar = bar(range(steps), progress, desc="FKD" if lam_kd > 0 else "CE", leave=False)
    student.train()
    for step in steps_bar:
        if step % per_epoch == 0:
            order = torch.randperm(len(X), generator=gen).to(device)
        idx = order[(step % per_epoch) * batch_size : (step % per_epoch + 1) * batch_size]
        xb = to_float(X[idx])
        feats, logits = student(xb, is_feat=True)
        with torch.no_grad():
            teacher_outputs = [t(xb, is_feat=True) for t in teachers] if method.needs_teacher else []
        terms = loss_terms(method, feats, logits, y[idx], teacher_outputs)
        loss = sum(terms.values())
        if not math.isfinite(loss.item()):
            raise FloatingPointError(f"non-finite loss {loss.item()} at step {step} "
                                     f"({', '.join(f'{k}={v.item():.4g}' for k, v in terms.items())})")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        hist["loss"].append(float(loss.detach()))
        for k in ("ce", "fkd", "fr"):
            hist[k].append(float(terms[k].detach()) if k in terms else 0.0)
        if track:
            _probe_metrics(student, probe, h_t_probe, K_t, hist)
        steps_bar.set_postfix(loss=f"{hist['loss'][-1]:.3f}")
    return hist


def _probe_metrics(student, probe, h_t_probe, K_t, hist) -> None:
    h_s = penultimate_features(student, probe)
    hist["alignment"].append(float(kernel_alignment(feature_kernel(h_s), K_t)))
    hist["probe_fkd"].append(float(fkd_loss(h_s, h_t_probe)))

