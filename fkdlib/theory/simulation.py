"""The network, training and measurements of the multi-view simulation (docs/paper.md §2; He & Ozay 2022,
Theorems 1-2, which extend Allen-Zhu & Li 2020). The data model is in ``fkdlib.theory.data``.

The network is Allen-Zhu & Li's two-layer convolutional net: class c owns m neurons w[c, r] in R^d, shared
over the P patches, and

    h[c, r](X) = sum_p  srelu(<w[c, r], x_p>)        (the penultimate features, k*m of them)
    F_c(X)     = scale * sum_r h[c, r](X)            (the logits: a fixed, not learned, sum per class)

with the smoothed ReLU ``smoothed_relu``. Many such nets are trained at once as one batch of weights
W (B, k*m, d) with full-batch gradient descent, plain or with the FKD term of docs/paper.md §1 computed on a fresh
unlabelled batch of ``pool`` points per step against each student's own teacher ensemble.
"""
from __future__ import annotations

import functools
import math

import torch
import torch.nn.functional as F

from ..distill.losses import fkd_loss
from ..engine.progress import bar
from ..stats import mean_ci95
from .data import MultiViewData


class _SmoothedReLU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, z, q, thr):
        u = z.clamp(0, thr) / thr                    # in [0, 1]
        slope = u.pow(q - 1)                         # the derivative: (z/thr)^(q-1) below thr, 1 above
        ctx.save_for_backward(slope)
        return torch.where(z > thr, z - (1 - 1 / q) * thr, u * slope * (thr / q))

    @staticmethod
    def backward(ctx, grad):
        (slope,) = ctx.saved_tensors
        return grad * slope, None, None


def smoothed_relu(z: torch.Tensor, q: int = 4, thr: float = 1.0) -> torch.Tensor:
    """Allen-Zhu & Li's smoothed ReLU: 0 for z <= 0, z^q / (q thr^(q-1)) on [0, thr], z - (1 - 1/q) thr above.

    Continuous with a continuous derivative at thr (both pieces have value thr/q and slope 1 there). Below
    thr it is a power q >= 3, so a small correlation grows like a tensor power: the bigger start wins the race.
    """
    return _SmoothedReLU.apply(z, q, thr)


def _one_thread(fn):
    """Run ``fn`` on one CPU thread: the simulation's tensors are small, and with two threads on a busy 2-core
    machine each step spent ~100x longer synchronising threads than computing (measured while writing this)."""
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        before = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn(*args, **kwargs)
        finally:
            torch.set_num_threads(before)
    return wrapper


class Nets:
    """A batch of B two-layer nets: weights ``W`` (B, k*m, d), neurons of class c in rows c*m .. c*m + m - 1."""

    def __init__(self, W: torch.Tensor, k: int, q: int = 4, thr: float = 1.0, scale: float = 5.0):
        self.W, self.k, self.q, self.thr, self.scale = W, k, q, thr, scale
        self.m = W.shape[1] // k

    @classmethod
    def init(cls, seeds, k: int, m: int, d: int, sigma0: float = 0.05, **kw) -> "Nets":
        """One net per seed, w ~ N(0, sigma0^2 I): the seed alone decides which view of a class wins."""
        W = torch.stack([sigma0 * torch.randn(k * m, d, generator=torch.Generator().manual_seed(int(s)))
                         for s in seeds])
        return cls(W, k, **kw)

    def __len__(self) -> int:
        return self.W.shape[0]

    def select(self, idx) -> "Nets":
        """A copy of nets ``idx`` (a list of indices)."""
        return Nets(self.W[list(idx)].clone(), self.k, self.q, self.thr, self.scale)

    def features(self, X: torch.Tensor, W: torch.Tensor | None = None) -> torch.Tensor:
        """(B, n, k*m) penultimate features of inputs ``X`` (n, P, d)."""
        W = self.W if W is None else W
        return smoothed_relu(torch.einsum("npd,bjd->bnpj", X, W), self.q, self.thr).sum(2)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        """(B, n, k) logits from features ``h`` (B, n, k*m): the scaled sum of each class's neurons."""
        return self.scale * h.unflatten(-1, (self.k, self.m)).sum(-1)

    @_one_thread
    @torch.no_grad()
    def correct(self, data: MultiViewData) -> torch.Tensor:
        """(B, n) bool: which points each net classifies correctly."""
        return self.logits(self.features(data.X)).argmax(-1) == data.y

    @torch.no_grad()
    def block_correlations(self, views: torch.Tensor) -> torch.Tensor:
        """(B, k, k, 2): max over the m neurons of class block j of <w, v[c, l]>, indexed [net, j, c, l]."""
        Wr = self.W.unflatten(1, (self.k, self.m))
        return torch.einsum("bjrd,cld->bjclr", Wr, views).amax(-1)

    def view_correlations(self, views: torch.Tensor) -> torch.Tensor:
        """(B, k, 2): Allen-Zhu & Li's Phi[c, l] = max_r <w[c, r], v[c, l]>, each class's own neurons only."""
        A = self.block_correlations(views)
        c = torch.arange(self.k)
        return A[:, c, c]

    def learned(self, views: torch.Tensor) -> torch.Tensor:
        """(B, k, 2) bool: view (c, l) is *learned* when Phi[c, l] has reached the activation's linear part (> thr)."""
        return self.view_correlations(views) > self.thr

    def wrong_block_views(self, views: torch.Tensor) -> torch.Tensor:
        """(B,): views per class learned (> thr) by neurons of *another* class: the kernel cannot see the difference."""
        A = self.block_correlations(views).clone()
        c = torch.arange(self.k)
        A[:, c, c] = -math.inf
        return (A.amax(1) > self.thr).float().sum((1, 2)) / self.k


@_one_thread
def train(nets: Nets, data: MultiViewData, steps: int, lr: float, *, views: torch.Tensor | None = None,
          record_every: int = 0, teacher_feats=None, pool: torch.Tensor | None = None, lam_kd=0.0,
          normalize=True, kd_batch: int = 200, seed: int = 0, desc: str = "train",
          progress: bool | None = None) -> dict:
    """Full-batch gradient descent on mean cross-entropy (+ lam_kd * FKD), updating ``nets.W`` in place.

    FKD (docs/paper.md §1): per step, draw ``kd_batch`` points of the unlabelled ``pool`` (n_pool, P, d) (the paper's
    separate KD batch) and add, for each student b with ``lam_kd[b] > 0``, ``lam_kd[b] * fkd_loss(h_b, T_b)``
    where ``teacher_feats[b]`` holds the teacher ensemble's pool features: one (n_pool, D) tensor (an ensemble
    as one net, its features concatenated) or a list of them (``fkd_loss`` then averages their kernels).
    ``normalize[b]=False`` matches raw kernels, both divided by the teacher's mean diagonal so that lam keeps its
    meaning. Teachers are plain tensors here: no gradient can reach them.

    A net whose loss or gradient stops being finite (too large a step: the raw kernel at large lam) is frozen
    at its last weights and its step is recorded in ``diverged_at`` (None for the others).

    Returns a history: ``ce`` and ``fkd`` (steps, B), ``diverged_at``, and with ``record_every`` and ``views``
    the view correlations ``views_t`` (T', B, k, 2) at steps ``steps_t``.
    """
    B = len(nets)
    lam = torch.as_tensor(lam_kd, dtype=torch.float32).expand(B).tolist()
    norm = [normalize] * B if isinstance(normalize, bool) else list(normalize)
    use_kd = teacher_feats is not None and any(v > 0 for v in lam)
    g = torch.Generator().manual_seed(seed)
    W = nets.W.detach().clone().requires_grad_(True)
    alive = torch.ones(B, dtype=torch.bool)          # a net whose loss or gradient stops being finite is frozen
    hist = {"ce": [], "fkd": [], "views_t": [], "steps_t": [], "diverged_at": [None] * B}
    for t in bar(range(steps), progress=progress, desc=desc, leave=False):
        if record_every and views is not None and t % record_every == 0:
            _record(hist, nets, W, views, t)
        logits = nets.logits(nets.features(data.X, W))                                  # (B, n, k)
        ce = F.cross_entropy(logits.transpose(1, 2), data.y.expand(B, -1), reduction="none").mean(1)
        terms, kd = [ce[alive].sum()], torch.zeros(B)
        if use_kd:
            idx = torch.randperm(len(pool), generator=g)[:kd_batch]
            h_s = nets.features(pool[idx], W)                                            # (B, kd_batch, k*m)
            for b in range(B):
                if lam[b] > 0 and alive[b] and torch.isfinite(h_s[b]).all():
                    term = _fkd_term(h_s[b], teacher_feats[b], idx, norm[b])
                    terms.append(lam[b] * term)
                    kd[b] = term.detach()
        W.grad = None
        sum(terms).backward()
        with torch.no_grad():
            ok = torch.isfinite(W.grad).flatten(1).all(1) & torch.isfinite(ce) & torch.isfinite(kd)
            for b in torch.nonzero(alive & ~ok).flatten().tolist():
                hist["diverged_at"][b] = t
            alive &= ok
            W -= lr * torch.where(alive[:, None, None], W.grad, torch.zeros(()))
        hist["ce"].append(ce.detach())
        hist["fkd"].append(kd)
    nets.W = W.detach()
    if record_every and views is not None:
        _record(hist, nets, nets.W, views, steps)
        hist["views_t"] = torch.stack(hist["views_t"])
    hist["ce"], hist["fkd"] = torch.stack(hist["ce"]), torch.stack(hist["fkd"])
    return hist


def _record(hist: dict, nets: Nets, W: torch.Tensor, views: torch.Tensor, t: int) -> None:
    nets.W = W.detach()
    hist["views_t"].append(nets.view_correlations(views))
    hist["steps_t"].append(t)


def _fkd_term(h_s: torch.Tensor, teacher, idx: torch.Tensor, normalize: bool) -> torch.Tensor:
    h_t = [t[idx] for t in teacher] if isinstance(teacher, (list, tuple)) else teacher[idx]
    if normalize:
        return fkd_loss(h_s, h_t)
    # raw kernels on the teacher's scale: divide every feature by sqrt(mean teacher diagonal)
    hs_t = h_t if isinstance(h_t, list) else [h_t]
    c = torch.stack([(h ** 2).sum(1).mean() for h in hs_t]).mean().clamp_min(1e-12).sqrt()
    return fkd_loss(h_s / c, [h / c for h in hs_t], normalize=False)


@_one_thread
@torch.no_grad()
def teacher_pool_features(nets: Nets, pool: torch.Tensor, teachers: list[list[int]],
                          combine: str = "concat") -> list:
    """For each student, its teachers' features on the whole pool, computed once (teachers are frozen).

    ``combine="concat"``: one (n_pool, E*k*m) tensor, the ensemble as one wide net (its normalised kernel is
    dominated, on each point, by the teachers that recognise it). ``"mean"``: a list of E (n_pool, k*m)
    tensors, whose normalised kernels ``fkd_loss`` averages (``kernels.ensemble_kernel``).
    """
    H = nets.features(pool)                                                               # (B, n_pool, k*m)
    if combine == "concat":
        return [torch.cat([H[e] for e in ts], dim=1) for ts in teachers]
    if combine == "mean":
        return [[H[e] for e in ts] for ts in teachers]
    raise ValueError(f"combine must be 'concat' or 'mean', got {combine!r}")


def summarise(correct: torch.Tensor, data: MultiViewData, learned: torch.Tensor, students, teachers) -> dict:
    """Single-view accuracy of a group of students (mean and 95% CI over students), and the theorem's bookkeeping.

    ``correct`` (S, n) for the points of ``data``; ``learned`` (B0, k, 2) the views each phase-1 net learned;
    student s continued net ``students[s]`` with teachers ``teachers[s]``. ``union_pred`` is the fraction of
    points whose shown view the student *or* one of its teachers had learned: Theorems 1-2's rule applied to
    the lottery our nets actually drew. Accuracy is also split by who had learned the shown view.
    """
    own = learned[list(students)][:, data.y, data.view]                                     # (S, n)
    union = torch.stack([learned[[s] + list(t)].any(0) for s, t in zip(students, teachers)])[:, data.y, data.view]
    acc = correct.float()

    def part(mask):
        return float(acc[mask].mean()) if mask.any() else float("nan")

    mean, ci = mean_ci95(acc.mean(1).tolist())
    return {"acc": acc.mean(1).tolist(), "mean": mean, "ci95": ci, "union_pred": float(union.float().mean()),
            "acc_own": part(own), "acc_teacher_only": part(union & ~own), "acc_neither": part(~union)}

