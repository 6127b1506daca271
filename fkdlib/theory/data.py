"""The multi-view data model of docs/paper.md §2, after Allen-Zhu & Li (2020), "Towards Understanding Ensemble,
Knowledge Distillation and Self-Distillation in Deep Learning" (their Sec. 2 / Def. 2.1-2.3), simplified.

Each of the k classes owns two orthonormal *views* v[c, 0], v[c, 1] in R^d (2k orthonormal vectors in all).
An input is P patches x_1..x_P in R^d, each with Gaussian noise N(0, sigma_p^2 I / d):

- a **multi-view** point of class y (a fraction 1 - mu of the data) shows v[y, 0] on C patches and v[y, 1]
  on C others, each with a coefficient drawn from U(z);
- a **single-view** point (a fraction mu) shows one view v[y, l] on C patches with a coefficient from U(z),
  and the other view only weakly, with coefficient ``rho``, on C others;
- every point also carries **feature noise**: ``n_feature_noise`` further patches each show a random view of a
  random *other* class with a small coefficient from U(alpha).

A network that learned only view 0 of class y still classifies every multi-view point of y, but a
single-view point showing only view 1 is then decided by its feature noise: this is how the "lottery"
costs test accuracy (docs/paper.md §2).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import torch


@dataclass(frozen=True)
class MultiViewSpec:
    """The physics of the data model (fixed across scales; sizes live in ``fkdlib.experiments.config``)."""
    k: int = 10                      # classes
    d: int = 100                     # input dimension (>= 2k)
    P: int = 8                       # patches per input
    C: int = 2                       # patches per view
    mu: float = 0.1                  # fraction of single-view points
    z: tuple = (0.6, 1.0)            # coefficient of a view on its patches, uniform
    rho: float = 0.15                # the weak second view of a single-view point
    n_feature_noise: int = 3         # patches carrying a view of another class
    alpha: tuple = (0.2, 0.4)        # coefficient of the feature noise, uniform
    sigma_p: float = 1.0             # norm of the Gaussian noise of a patch


@dataclass
class MultiViewData:
    """``X`` (n, P, d) inputs, ``y`` (n,) labels, ``single`` (n,) bool, ``view`` (n,) the shown view of a
    single-view point (-1 for multi-view points)."""
    X: torch.Tensor
    y: torch.Tensor
    single: torch.Tensor
    view: torch.Tensor

    def __len__(self) -> int:
        return len(self.y)


@dataclass
class MultiViewTask:
    """Everything one experiment needs, made from one seed: the views and four independent samples."""
    spec: MultiViewSpec
    views: torch.Tensor              # (k, 2, d), orthonormal
    train: MultiViewData             # labelled training set
    pool: MultiViewData              # fresh unlabelled points (same distribution) for the kernel term
    test_single: MultiViewData       # single-view test points only
    test_multi: MultiViewData        # multi-view test points only
    meta: dict = field(default_factory=dict)


def make_views(k: int, d: int, generator: torch.Generator) -> torch.Tensor:
    """2k orthonormal views in R^d (QR of a Gaussian matrix, in float64 then cast), shaped (k, 2, d)."""
    if d < 2 * k:
        raise ValueError(f"need d >= 2k orthonormal views: d={d}, k={k}")
    Q, _ = torch.linalg.qr(torch.randn(d, 2 * k, generator=generator, dtype=torch.float64))
    return Q.T.float().reshape(k, 2, d)


def sample(n: int, views: torch.Tensor, spec: MultiViewSpec, generator: torch.Generator,
           kind: str = "mixed") -> MultiViewData:
    """``n`` points of the data model; ``kind`` is "mixed" (a fraction mu single-view), "single" or "multi"."""
    if kind not in ("mixed", "single", "multi"):
        raise ValueError(f"kind must be 'mixed', 'single' or 'multi', got {kind!r}")
    k, _, d = views.shape
    s, g = spec, generator
    if 2 * s.C + s.n_feature_noise > s.P:
        raise ValueError(f"P={s.P} patches cannot hold 2C + n_feature_noise = {2 * s.C + s.n_feature_noise}")
    y = torch.randint(k, (n,), generator=g)
    single = {"single": torch.ones(n, dtype=torch.bool), "multi": torch.zeros(n, dtype=torch.bool),
              "mixed": torch.rand(n, generator=g) < s.mu}[kind]
    shown = torch.randint(2, (n,), generator=g)                  # the view a single-view point shows
    order = torch.rand(n, s.P, generator=g).argsort(dim=1)       # a random patch layout per point
    pa, pb = order[:, :s.C], order[:, s.C:2 * s.C]                # patches of the first / second view
    pf = order[:, 2 * s.C:2 * s.C + s.n_feature_noise]            # patches of feature noise
    coef = torch.zeros(n, s.P, 2 * k)                            # coefficient of each view on each patch
    rows = torch.arange(n)[:, None]

    def uniform(lo_hi, shape):
        return lo_hi[0] + (lo_hi[1] - lo_hi[0]) * torch.rand(shape, generator=g)

    first = torch.where(single, 2 * y + shown, 2 * y)            # multi-view: view 0 here, view 1 below
    second = torch.where(single, 2 * y + 1 - shown, 2 * y + 1)
    coef[rows, pa, first[:, None]] = uniform(s.z, (n, s.C))
    coef[rows, pb, second[:, None]] = torch.where(single[:, None], torch.full((n, s.C), s.rho),
                                                  uniform(s.z, (n, s.C)))
    other = (y[:, None] + 1 + torch.randint(k - 1, (n, s.n_feature_noise), generator=g)) % k   # never y
    which = torch.randint(2, (n, s.n_feature_noise), generator=g)
    coef[rows, pf, 2 * other + which] = uniform(s.alpha, (n, s.n_feature_noise))
    noise = torch.randn(n, s.P, d, generator=g) * (s.sigma_p / math.sqrt(d))
    X = noise + coef @ views.reshape(2 * k, d)
    return MultiViewData(X, y, single, torch.where(single, shown, torch.full_like(shown, -1)))


def make_task(seed: int, n_train: int, n_pool: int, n_test: int, spec: MultiViewSpec | None = None,
              **overrides) -> MultiViewTask:
    """Views, a training set, an unlabelled pool and single-/multi-view test sets, all from ``seed``.

    ``overrides`` replace fields of ``spec`` (e.g. ``mu=0.2``). The same seed gives the same task.
    """
    spec = replace(spec or MultiViewSpec(), **overrides)
    g = torch.Generator().manual_seed(seed)
    views = make_views(spec.k, spec.d, g)
    return MultiViewTask(spec, views,
                         train=sample(n_train, views, spec, g),
                         pool=sample(n_pool, views, spec, g),
                         test_single=sample(n_test, views, spec, g, kind="single"),
                         test_multi=sample(max(1, n_test // 2), views, spec, g, kind="multi"),
                         meta={"seed": seed, "n_train": n_train, "n_pool": n_pool, "n_test": n_test})
