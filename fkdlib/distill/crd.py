"""Contrastive Representation Distillation (CRD; Tian, Krishnan & Isola, ICLR 2020) as RepDistiller defines it.

CRD trains the student so that a critic can tell the pair (teacher embedding, student embedding) of the same
image from pairs of different images. In the paper's notation (§3.1), with M training examples and N negatives
per positive pair, the critic is

    h(T, S) = exp(g^T(t)' g^S(s) / tau) / (exp(g^T(t)' g^S(s) / tau) + N / M),

where g^T, g^S are linear maps to 128 dimensions followed by L2 normalisation and tau = 0.07, and the loss is
the negative of the NCE objective

    L_critic(h) = E_{q(T,S|C=1)}[log h(T, S)] + N E_{q(T,S|C=0)}[log(1 - h(T, S))].

RepDistiller (``distiller_zoo/CRD.py``, ``crd/memory.py``, ``crd/criterion.py``), which this module follows
line for line in its maths:

- the negatives' embeddings come from a memory bank holding one embedding per training example for each network,
  initialised uniformly in [-stdv, stdv] with stdv = 1 / sqrt(128 / 3) and, after each step, moved towards the
  batch's fresh embeddings with momentum 0.5 and re-normalised (:class:`ContrastMemory`);
- exp(v' m / tau) is divided by a constant Z (the softmax's normaliser over the M examples), estimated once from
  the first batch as M times the mean of exp(v' m / tau) and then kept; with P = exp(v' m / tau) / Z and noise
  probability P_n = 1 / M, h = P / (P + N P_n) (:func:`nce_loss`);
- the loss is the sum of both directions: the student's embedding against the teacher's memory, and the
  teacher's embedding against the student's memory (:class:`CRDLoss`);
- the N = 16,384 negatives of an example are a uniformly random set of training examples of other classes, by the
  student's labels ("exact" mode: the positive is the example itself), drawn with replacement where fewer than N
  such examples exist (a small training set) (:class:`ClassNegatives`);
- the loss is CE + 0.8 * CRD (gamma 1, alpha 0, beta 0.8 in its scripts); the heads train in the student's SGD.

Ours where RepDistiller has no rule: with several teachers, each has its own heads and memory and their losses
are averaged (as RKD and SP are, ``fkdlib.distill.methods``), with the same negatives.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn as nn

FEAT_DIM = 128       # the embedding's width (RepDistiller's --feat_dim)
NEGATIVES = 16384    # N, negatives per positive pair (--nce_k)
NCE_T = 0.07         # tau (--nce_t)
MOMENTUM = 0.5       # the memory's momentum (--nce_m)
EPS = 1e-7           # RepDistiller's guard in h's denominator


class Embed(nn.Module):
    """g(h) = (W h + b) / ||W h + b||: a linear map to ``dim_out`` dimensions, L2-normalised (the critic's g^S, g^T)."""

    def __init__(self, dim_in: int, dim_out: int = FEAT_DIM):
        super().__init__()
        self.linear = nn.Linear(dim_in, dim_out)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        z = self.linear(h.flatten(1))
        return z / z.pow(2).sum(1, keepdim=True).sqrt()


class ContrastMemory(nn.Module):
    """One embedding per training example for the student and for the teacher, and the two constants Z.

    Buffers: ``student`` and ``teacher`` (n_data, dim), uniform in [-stdv, stdv] with stdv = 1 / sqrt(dim / 3);
    ``Z`` (2,): the normalisers of the student's and the teacher's scores, -1 until the first batch sets them.
    """

    def __init__(self, dim: int, n_data: int, T: float = NCE_T, momentum: float = MOMENTUM):
        super().__init__()
        self.T, self.momentum = T, momentum
        stdv = 1.0 / math.sqrt(dim / 3)
        for name in ("student", "teacher"):
            self.register_buffer(name, torch.rand(n_data, dim) * (2 * stdv) - stdv)
        self.register_buffer("Z", torch.full((2,), -1.0))

    def scores(self, v_s: torch.Tensor, v_t: torch.Tensor, contrast_idx: torch.Tensor):
        """``(P_s, P_t)``, each (B, N + 1): P = exp(v' m / tau) / Z over the memory slots ``contrast_idx``.

        P_s scores the student's embeddings ``v_s`` against the teacher's memory, P_t the teacher's ``v_t``
        against the student's; column 0 is the positive. The memory is read as a constant. The first call sets
        Z = n_data * mean(exp(v' m / tau)) for each direction; later calls keep it.
        """
        e_s = self._exp_scores(self.teacher, v_s, contrast_idx)
        e_t = self._exp_scores(self.student, v_t, contrast_idx)
        estimate = torch.stack([e_s.mean(), e_t.mean()]).detach() * len(self.student)
        self.Z.copy_(torch.where(self.Z < 0, estimate, self.Z))
        Z = self.Z.clone()  # what backward reads stays put if the buffer changes before it runs
        return e_s / Z[0], e_t / Z[1]

    def _exp_scores(self, bank: torch.Tensor, v: torch.Tensor, contrast_idx: torch.Tensor) -> torch.Tensor:
        weights = bank.index_select(0, contrast_idx.flatten()).view(*contrast_idx.shape, -1)
        return torch.exp(torch.bmm(weights, v.unsqueeze(2)).squeeze(2) / self.T)

    @torch.no_grad()
    def update(self, idx: torch.Tensor, v_s: torch.Tensor, v_t: torch.Tensor) -> None:
        """m_i <- (momentum m_i + (1 - momentum) v_i) / ||momentum m_i + (1 - momentum) v_i|| for the batch's slots
        ``idx``, in both memories; every other slot is untouched."""
        for bank, v in ((self.student, v_s), (self.teacher, v_t)):
            moved = bank.index_select(0, idx) * self.momentum + v.detach() * (1 - self.momentum)
            bank.index_copy_(0, idx, moved / moved.pow(2).sum(1, keepdim=True).sqrt())


def nce_loss(P: torch.Tensor, n_data: int) -> torch.Tensor:
    """-L_critic per example: -(log h(pos) + sum over the N negatives of log(1 - h(neg))), averaged over the batch.

    ``P`` (B, N + 1), column 0 the positive; with the noise distribution P_n = 1 / ``n_data``,
    h = P / (P + N P_n + eps) and 1 - h = N P_n / (P + N P_n + eps), as RepDistiller's ``ContrastLoss``.
    """
    noise = (P.shape[1] - 1) / n_data
    log_h_pos = torch.log(P[:, 0] / (P[:, 0] + noise + EPS))
    log_1m_h_neg = torch.log(noise / (P[:, 1:] + noise + EPS))
    return -(log_h_pos.sum() + log_1m_h_neg.sum()) / len(P)


class ClassNegatives(nn.Module):
    """The contrast indices of a batch: each example itself, then ``k`` training examples of other classes.

    As RepDistiller's sampler (``replace = True if self.k > len(self.cls_negative[target]) else False``, then
    ``np.random.choice(cls_negative[target], k, replace=replace)``): a uniformly random set of ``k`` distinct examples
    of the other classes when there are at least ``k`` of them, else ``k`` draws among them with replacement.
    ``labels`` are the student's training labels (the teacher's label space plays no part). The draws come from a
    generator of its own, seeded with ``seed``, whose state is this module's extra state (it travels in
    ``state_dict()`` for an exact resume).
    """

    def __init__(self, labels: torch.Tensor, k: int = NEGATIVES, seed: int = 0):
        super().__init__()
        labels = labels.long().cpu()
        counts = torch.bincount(labels)
        others = len(labels) - counts[labels]
        if (others == 0).any():
            raise ValueError("CRD draws its negatives from other classes, but every training example has one class")
        self.k = int(k)
        self.register_buffer("labels", labels, persistent=False)
        self.register_buffer("order", torch.argsort(labels, stable=True), persistent=False)
        self.register_buffer("counts", counts, persistent=False)
        self.register_buffer("starts", counts.cumsum(0) - counts, persistent=False)
        self.register_buffer("replace_class", self.k > len(labels) - counts, persistent=False)
        # which draws the batches need, known from the labels alone (no host sync per step)
        self._any_with, self._any_without = bool((self.k > others).any()), bool((self.k <= others).any())
        self.generator = torch.Generator().manual_seed(int(seed))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, k + 1) int64: ``idx`` in column 0, the negatives after it."""
        y = self.labels[idx]
        if not self._any_without:
            negatives = self._with_replacement(y)
        elif not self._any_with:
            negatives = self._without_replacement(y)
        else:
            negatives = torch.where(self.replace_class[y, None], self._with_replacement(y),
                                    self._without_replacement(y))
        return torch.cat([idx[:, None], negatives], 1)

    def _with_replacement(self, y: torch.Tensor) -> torch.Tensor:
        draws = self._to(torch.randint(0, 2 ** 62, (len(y), self.k), generator=self.generator), y.device)
        start, count = self.starts[y, None], self.counts[y, None]
        r = draws % (len(self.labels) - count)   # a rank among the other classes' examples ...
        return self.order[r + (r >= start) * count]  # ... skipping this class's run of the sorted order

    def _without_replacement(self, y: torch.Tensor) -> torch.Tensor:
        """The ``k`` other-class examples of smallest uniform keys: a uniformly random ``k``-subset, in random order
        (rows whose class has fewer than ``k`` others get some same-class examples; ``forward`` drops those rows)."""
        keys = self._to(torch.rand(len(y), len(self.labels), generator=self.generator), y.device)
        keys.masked_fill_(self.labels[None, :] == y[:, None], 2.0)
        return keys.topk(self.k, dim=1, largest=False).indices

    @staticmethod
    def _to(draws: torch.Tensor, device: torch.device) -> torch.Tensor:
        return draws.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else draws.to(device)

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])


class CRDLoss(nn.Module):
    """CRD against one teacher: the heads g^S, g^T, the memory, and the loss of both directions summed.

    ``forward(h_s, h_t, idx, contrast_idx)``: the student's and the teacher's penultimate features (B, D_s), (B, D_t)
    of the training examples ``idx``, contrasted over ``contrast_idx`` (:class:`ClassNegatives`). Returns
    nce_loss(P_s) + nce_loss(P_t) and then updates the memory with the batch's embeddings.
    """

    def __init__(self, s_dim: int, t_dim: int, n_data: int, dim: int = FEAT_DIM, T: float = NCE_T,
                 momentum: float = MOMENTUM):
        super().__init__()
        self.embed_s, self.embed_t = Embed(s_dim, dim), Embed(t_dim, dim)
        self.memory = ContrastMemory(dim, n_data, T, momentum)

    def forward(self, h_s: torch.Tensor, h_t: torch.Tensor, idx: torch.Tensor,
                contrast_idx: torch.Tensor) -> torch.Tensor:
        v_s = self.embed_s(h_s)
        # the teacher's features may be inference tensors (torch.inference_mode), which autograd cannot save
        v_t = self.embed_t(h_t.detach().clone())
        P_s, P_t = self.memory.scores(v_s, v_t, contrast_idx)
        self.memory.update(idx, v_s, v_t)
        n_data = len(self.memory.student)
        return nce_loss(P_s, n_data) + nce_loss(P_t, n_data)


class CRD(nn.Module):
    """What the ``crd`` method owns and trains beside the student: one :class:`CRDLoss` per teacher and the negatives.

    ``CRD(s_dim, t_dims, labels, negatives, seed)``: the student's penultimate width, each teacher's, the student's
    training labels (one memory slot per example). The heads' weights and the memory's initial values are drawn
    from ``seed`` without touching torch's global random state; so are the negatives, from a generator of their
    own. ``forward(h_s, h_teachers, idx)`` is the mean over teachers of CRDLoss on the batch's examples ``idx``.
    """

    def __init__(self, s_dim: int, t_dims: Sequence[int], labels: torch.Tensor, negatives: int = NEGATIVES,
                 seed: int = 0):
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.losses = nn.ModuleList([CRDLoss(s_dim, t_dim, len(labels)) for t_dim in t_dims])
        self.negatives = ClassNegatives(labels, negatives, seed)

    def forward(self, h_s: torch.Tensor, h_teachers: Sequence[torch.Tensor], idx: torch.Tensor) -> torch.Tensor:
        contrast_idx = self.negatives(idx)
        return sum(loss(h_s, h_t, idx, contrast_idx) for loss, h_t in zip(self.losses, h_teachers)) / len(self.losses)
