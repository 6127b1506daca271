"""Distillation losses: FKD (docs/paper.md §1) and the KD, RKD, SP baselines as RepDistiller defines them (§4).

Every loss treats its teacher arguments as constants: they are detached, so no gradient reaches a
teacher. Student arguments come first.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from . import checks
from .kernels import _kernel

Features = torch.Tensor | Sequence[torch.Tensor]


def fkd_loss(
    h_student: torch.Tensor,
    h_teacher: Features,
    normalize: bool = True,
    include_diagonal: bool = False,
) -> torch.Tensor:
    """Feature Kernel Distillation distance D(k_S, k_T) (He & Ozay 2022, Sec. 3; docs/paper.md §1).

    The mean over the B(B-1) pairs i != j of (rho_S(x_i, x_j) - rho_T(x_i, x_j))^2, where rho is the
    normalised feature kernel and rho_T = mean_e rho_{T_e} when ``h_teacher`` is a list of E teachers'
    (B, D_e) features (widths may differ). ``normalize=False`` matches the raw kernel k instead, and
    ``include_diagonal=True`` averages over all B^2 entries: the ablations of the paper's appendix.
    """
    h_s = checks.features(h_student, "h_student")
    teachers = _teacher_list(h_teacher, h_s, "h_teacher")
    K_s = _kernel(h_s, normalize)
    with torch.no_grad():
        K_t = torch.stack([_kernel(h_t, normalize) for h_t in teachers]).mean(0)
    sq = (K_s - K_t.to(K_s.dtype)).pow(2)
    B = sq.shape[0]
    if include_diagonal:
        return sq.mean()
    # off-diagonal only: a normalised kernel's diagonal is 1 for both nets
    return (sq.sum() - sq.diagonal().sum()) / (B * (B - 1))


def feature_norm_penalty(h: torch.Tensor, squared: bool = True) -> torch.Tensor:
    """The feature regulariser FR (docs/paper.md §1): the batch mean of ||h||^2, or of ||h|| if ``squared=False``."""
    h = checks.features(h, "h", min_batch=1)
    sq_norms = h.pow(2).sum(dim=1)
    return sq_norms.mean() if squared else sq_norms.sqrt().mean()


def kd_loss(logits_student: torch.Tensor, logits_teacher: Features, T: float = 4.0) -> torch.Tensor:
    """Hinton et al.'s KD as RepDistiller's ``DistillKL``: KL(p_T || p_S) at temperature T, times T^2, batch mean.

    A list of teachers' logits is an ensemble: its softened probabilities are averaged. Teacher and
    student must share a label space (same number of classes).
    """
    s = checks.features(logits_student, "logits_student", min_batch=1)
    teachers = _teacher_list(logits_teacher, s, "logits_teacher")
    for e, t in enumerate(teachers):
        if t.shape[1] != s.shape[1]:
            raise ValueError(
                f"KD needs teacher and student to share a label space: student logits have {s.shape[1]} classes, "
                f"teacher {e} has {t.shape[1]}. Use a label-free method (FKD, RKD, SP) across datasets."
            )
    with torch.no_grad():
        p_t = torch.stack([F.softmax(t.to(s.dtype) / T, dim=1) for t in teachers]).mean(0)
    log_p_s = F.log_softmax(s / T, dim=1)
    return F.kl_div(log_p_s, p_t, reduction="sum") * (T * T) / s.shape[0]


def rkd_loss(f_student: torch.Tensor, f_teacher: torch.Tensor, w_dist: float = 25.0, w_angle: float = 50.0) -> torch.Tensor:
    """Relational KD (Park et al. 2019) exactly as RepDistiller's ``RKDLoss`` (docs/paper.md §4).

    Distance term: pairwise Euclidean distances, each net's divided by the mean of its non-zero
    distances, compared with smooth-L1. Angle term: cosines between difference vectors over all
    triplets, smooth-L1. Returns ``w_dist * distance + w_angle * angle``.
    """
    s = checks.features(f_student, "f_student")
    t = checks.features(f_teacher, "f_teacher").detach()
    checks.same_batch(s, t, "f_student", "f_teacher")
    with torch.no_grad():
        t_d = _normalized_pdist(t)
        t_angle = _triplet_cosines(t)
    loss_d = F.smooth_l1_loss(_normalized_pdist(s), t_d)
    loss_a = F.smooth_l1_loss(_triplet_cosines(s), t_angle)
    return w_dist * loss_d + w_angle * loss_a


def sp_loss(g_student: Features, g_teacher: Features) -> torch.Tensor:
    """Similarity-Preserving KD (Tung & Mori 2019) exactly as RepDistiller's ``Similarity`` (docs/paper.md §4).

    Each feature map is flattened to (B, C*H*W); G = F F^T with each row L2-normalised; the loss is
    ||G_T - G_S||_F^2 / B^2. Lists of feature maps are paired in order and their losses summed.
    """
    g_s = list(g_student) if isinstance(g_student, (list, tuple)) else [g_student]
    g_t = list(g_teacher) if isinstance(g_teacher, (list, tuple)) else [g_teacher]
    if len(g_s) != len(g_t):
        raise ValueError(f"sp_loss pairs feature maps in order: got {len(g_s)} student and {len(g_t)} teacher maps")
    total = 0.0
    for i, (fs, ft) in enumerate(zip(g_s, g_t)):
        fs = checks.features(fs, f"g_student[{i}]")
        ft = checks.features(ft, f"g_teacher[{i}]").detach()
        checks.same_batch(fs, ft, f"g_student[{i}]", f"g_teacher[{i}]")
        G_s = F.normalize(fs @ fs.t(), dim=1)
        with torch.no_grad():
            G_t = F.normalize(ft @ ft.t(), dim=1)
        total = total + (G_t - G_s).pow(2).sum() / (fs.shape[0] ** 2)
    return total


def _teacher_list(h_teacher: Features, h_s: torch.Tensor, name: str) -> list[torch.Tensor]:
    hs = list(h_teacher) if isinstance(h_teacher, (list, tuple)) else [h_teacher]
    if not hs:
        raise ValueError(f"{name} is an empty list: give one teacher's tensor or a list of E >= 1")
    out = []
    for e, h in enumerate(hs):
        label = f"{name}[{e}]" if len(hs) > 1 or isinstance(h_teacher, (list, tuple)) else name
        h = checks.features(h, label, min_batch=1).detach()
        checks.same_batch(h_s, h, "student", label)
        out.append(h)
    return out


def _normalized_pdist(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """RepDistiller's ``RKDLoss.pdist`` (zero diagonal) divided by the mean of its positive entries."""
    sq = e.pow(2).sum(dim=1)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * e @ e.t()).clamp(min=eps).sqrt()
    d = d * (1 - torch.eye(len(e), dtype=d.dtype, device=d.device))
    # mean over positive entries without boolean indexing (which would sync with the device)
    return d / (d.sum() / (d > 0).sum())


def _triplet_cosines(e: torch.Tensor) -> torch.Tensor:
    """cos of the angle at x_i between x_j - x_i and x_k - x_i, for all (i, j, k), flattened (B^3,)."""
    diff = F.normalize(e.unsqueeze(0) - e.unsqueeze(1), p=2, dim=2)
    return torch.bmm(diff, diff.transpose(1, 2)).reshape(-1)
