"""Notebook 02's experiment (docs/paper.md §2): the lottery, FKD from E teachers, the lambda sweep and the schedule.

``Simulation`` holds the design (the task, the nets, which teachers each student gets, how they combine) and one
method per phase, in the notebook's order; each phase keeps what it measured. ``run`` chains them and writes the
summary, with provenance, to ``results/theory/<scale>.json``: ``python -m fkdlib experiment theory --scale lite``.

    phase 1, the lottery  n_nets nets from seeds 0..n_nets-1, plain cross-entropy: which view of each class wins
    phase 2, FKD          student j continues net j (j < n_students) for fkd_steps more steps: plain (no kernel
                          term), self (its own phase-1 net as teacher), and E teachers, nets j+1..j+E (mod n_nets)
    lambda sweep          the E = 4 students at every ablation lambda: normalised, raw and self kernels
    schedule              the E = 4 students with the kernel term from step 0 instead of after the lottery
"""
from __future__ import annotations

import time

import torch

from .data import make_task
from .simulation import Nets, summarise, teacher_pool_features, train
from ..paths import get_scale
from ..records import provenance, save_result
from ..stats import mean_ci95

NET = dict(m=4, q=4, thr=1.0, scale=5.0, sigma0=0.05)   # neurons per class, activation power and threshold, logit
LR = 2.0                                                 # scale, init size; full-batch gradient descent
LAM_KD = 300.0   # the simulation's own lambda: its kernel term is on another scale than the CIFAR nets' (sweep: §2)
COMBINE = "concat"
TEACHERS = "student j's teachers are nets j+1..j+E (mod n_nets)"

# The sizes at each scale (``fkdlib.experiments.config.sizes("theory", scale)`` lists them too). The data model and
# the net (fkdlib.theory.data's MultiViewSpec, the notebook's parameters) are the same at every scale; the scales
# change how many nets and test points (smoke also cuts the steps: it proves the code path and claims nothing)
SIZES = {
    "smoke": dict(n_train=300, n_pool=400, n_test=200, n_nets=3, n_students=2, E=[1, 2], steps=40, fkd_steps=8,
                  kd_batch=64, record_every=4, ablation_lams=[30.0]),
    "lite": dict(n_train=300, n_pool=3000, n_test=1000, n_nets=9, n_students=6, E=[1, 2, 4, 8], steps=300,
                 fkd_steps=100, kd_batch=200, record_every=5, ablation_lams=[3.0, 30.0, 300.0, 1000.0]),
    "full": dict(n_train=300, n_pool=3000, n_test=4000, n_nets=17, n_students=16, E=[1, 2, 4, 8], steps=300,
                 fkd_steps=100, kd_batch=200, record_every=5,
                 ablation_lams=[1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0]),
}


def teachers_of(j: int, E: int, n_nets: int) -> list[int]:
    """Student j's E teachers: the next E nets, never the student itself (E < n_nets)."""
    return [(j + 1 + e) % n_nets for e in range(E)]


def theorem(E: int) -> float:
    """Theorems 1-2's single-view accuracy with E teachers: wrong only where none of E + 1 fair coins won the view."""
    return 1 - 2 ** -(E + 1)


def view_shares(learned: torch.Tensor) -> dict:
    """Of the (net, class) cells of ``learned`` (nets, k, 2): the share that learned exactly one view, both, none,
    and among the one-view cells the share won by view 1 (a fair coin: about half)."""
    n = learned.sum(-1)
    one = n == 1
    return {"one": float(one.float().mean()), "both": float((n == 2).float().mean()),
            "none": float((n == 0).float().mean()),
            "view_1_of_one": float(learned[..., 0][one].float().mean()) if one.any() else float("nan")}


class Simulation:
    """The design and the phases of notebook 02. Sizes from ``SIZES[scale]``; the knobs are the
    notebook's parameters; ``spec`` overrides fields of ``MultiViewSpec`` (e.g. ``mu=0.2``).

    ``normalize=False`` matches raw kernels in the FKD phase; ``kd_points="train"`` computes the kernel term on the
    labelled training points instead of a fresh unlabelled pool.
    """

    def __init__(self, scale: str | None = None, *, seed: int = 0, net: dict | None = None, lr: float = LR,
                 lam_kd: float = LAM_KD, combine: str = COMBINE, normalize: bool = True, kd_points: str = "pool",
                 progress: bool | None = None, **spec):
        if combine not in ("concat", "mean") or kd_points not in ("pool", "train"):
            raise ValueError(f"combine is 'concat' or 'mean' ({combine!r}); kd_points is 'pool' or 'train' "
                             f"({kd_points!r})")
        self.scale = get_scale(scale)
        self.cfg = cfg = dict(SIZES[self.scale])
        self.seed, self.net, self.lr, self.lam_kd = seed, dict(NET, **(net or {})), lr, lam_kd
        self.combine, self.normalize, self.kd_points, self.progress = combine, normalize, kd_points, progress
        self.task = make_task(seed, cfg["n_train"], cfg["n_pool"], cfg["n_test"], **spec)
        self.S, self.n_nets = cfg["n_students"], cfg["n_nets"]
        self.E_ablation = 4 if 4 in cfg["E"] else max(cfg["E"])
        self.seconds = {}

    @property
    def kd_X(self) -> torch.Tensor:
        """The points the kernel term sees: the unlabelled pool, or (``kd_points="train"``) the training set."""
        return (self.task.pool if self.kd_points == "pool" else self.task.train).X

    def _students(self, teacher_lists, lam, steps, desc, normalize=None, nets=None, combine=None):
        """Train copies of phase-1 nets 0..S-1 (one per teacher list, cycling) with the kernel term; -> (nets, hist)."""
        students = nets if nets is not None else self.nets.select([j % self.S for j in range(len(teacher_lists))])
        feats = teacher_pool_features(self.nets, self.kd_X, [t or [0] for t in teacher_lists],
                                      combine=combine or self.combine)
        hist = train(students, self.task.train, steps, self.lr, teacher_feats=feats, pool=self.kd_X, lam_kd=lam,
                     kd_batch=self.cfg["kd_batch"], normalize=self.normalize if normalize is None else normalize,
                     desc=desc, progress=self.progress)
        return students, hist

    def run_lottery(self) -> dict:
        """Phase 1: ``n_nets`` nets with plain cross-entropy; which views they learned and what that costs.
        -> test accuracy per net on multi-view points, single-view points, and those split by the shown view."""
        t0, task, cfg = time.time(), self.task, self.cfg
        self.nets = Nets.init(range(self.n_nets), k=task.spec.k, d=task.spec.d, **self.net)
        self.hist = train(self.nets, task.train, cfg["steps"], self.lr, views=task.views,
                          record_every=cfg["record_every"], desc="lottery", progress=self.progress)
        self.learned = self.nets.learned(task.views)                   # (nets, k, 2): views past the threshold
        self.train_acc = self.nets.correct(task.train).float().mean(1)
        sv = task.test_single
        correct = self.nets.correct(sv).float()                        # (nets, n_test)
        knows = self.learned[:, sv.y, sv.view]                         # did net b learn the view shown?
        self.lottery = {"multi-view": self.nets.correct(task.test_multi).float().mean(1),
                        "single-view": correct.mean(1),
                        "single-view, view learned": torch.stack([a[k].mean() for a, k in zip(correct, knows)]),
                        "single-view, view not learned": torch.stack([a[~k].mean() for a, k in zip(correct, knows)])}
        self.seconds["lottery"] = time.time() - t0
        return self.lottery

    def run_fkd(self) -> dict:
        """Phase 2: plain, self and E = each of ``cfg["E"]`` teachers, S students each, in one batch.
        -> ``{run: summarise(...)}`` on the single-view test points, with E and the theorem's value."""
        t0, S = time.time(), self.S
        self.runs = {"plain": [[] for _ in range(S)], "self": [[j] for j in range(S)]}
        self.runs.update({f"E={E}": [teachers_of(j, E, self.n_nets) for j in range(S)] for E in self.cfg["E"]})
        self.teacher_lists = [t for tl in self.runs.values() for t in tl]     # one per student, runs in order
        self.students, self.fkd_hist = self._students(
            self.teacher_lists, [self.lam_kd if t else 0.0 for t in self.teacher_lists], self.cfg["fkd_steps"], "FKD")
        self.correct = self.students.correct(self.task.test_single).reshape(len(self.runs), S, -1)
        self.fkd = {}
        for r, (name, teachers) in enumerate(self.runs.items()):
            E = len(teachers[0]) if name.startswith("E=") else 0
            self.fkd[name] = dict(summarise(self.correct[r], self.task.test_single, self.learned, range(S), teachers),
                                  E=E, theorem=theorem(E))
        self.seconds["fkd"] = time.time() - t0
        return self.fkd

    def run_lambda_sweep(self) -> dict:
        """The E = 4 students (``E_ablation``) at every ablation lambda and ``lam_kd`` with the normalised kernel, the
        raw one and a self teacher. The phase-2 runs at ``lam_kd`` are points of it and are not trained again.
        -> ``{"<kind> lam=<lam>": summary with kind, lam and how many students diverged}``."""
        t0, S, E = time.time(), self.S, self.E_ablation
        def mine(j):
            return teachers_of(j, E, self.n_nets)

        kinds = {"normalised": (True, mine), "raw": (False, mine), "self": (True, lambda j: [j])}
        reused = {("normalised" if self.normalize else "raw", self.lam_kd): f"E={E}"}
        if self.normalize:
            reused[("self", self.lam_kd)] = "self"
        lams = sorted(set(self.cfg["ablation_lams"]) | {self.lam_kd})      # lam_kd is always a point of every curve
        grid = [(kind, lam) for kind in kinds for lam in lams if (kind, lam) not in reused]
        teachers = [kinds[kind][1](j) for kind, _ in grid for j in range(S)]
        students, hist = self._students(teachers, [lam for _, lam in grid for _ in range(S)], self.cfg["fkd_steps"],
                                        "lambda sweep", normalize=[kinds[k][0] for k, _ in grid for _ in range(S)])
        correct = students.correct(self.task.test_single).reshape(len(grid), S, -1)
        self.sweep = {f"{kind} lam={lam:g}": dict(summarise(correct[i], self.task.test_single, self.learned, range(S),
                                                            teachers[i * S:(i + 1) * S]),
                                                  kind=kind, lam=lam, diverged=_diverged(hist, i, S))
                      for i, (kind, lam) in enumerate(grid)}
        for (kind, lam), run in reused.items():
            r = list(self.runs).index(run)
            summary = {k: v for k, v in self.fkd[run].items() if k not in ("E", "theorem")}
            self.sweep[f"{kind} lam={lam:g}"] = dict(summary, kind=kind, lam=lam,
                                                     diverged=_diverged(self.fkd_hist, r, S))
        self.seconds["lambda_sweep"] = time.time() - t0
        return self.sweep

    def run_schedule(self) -> dict:
        """The E = 4 students with the kernel term from step 0 (same total steps) beside those of phase 2.
        -> ``{order: {"single_view": (mean, ci95), "wrong_block_views": (mean, ci95)}}`` over the students."""
        t0, S, E, spec = time.time(), self.S, self.E_ablation, self.task.spec
        scratch = Nets.init(range(S), k=spec.k, d=spec.d, **self.net)       # the same seeds as students 0..S-1
        self._students(self.runs[f"E={E}"], self.lam_kd, self.cfg["steps"] + self.cfg["fkd_steps"],
                       "FKD from step 0", nets=scratch)
        two_phase = self.students.select([list(self.runs).index(f"E={E}") * S + j for j in range(S)])
        self.schedule = {name: {"single_view": mean_ci95(s.correct(self.task.test_single).float().mean(1).tolist()),
                                "wrong_block_views": mean_ci95(s.wrong_block_views(self.task.views).tolist())}
                         for name, s in {"after the lottery": two_phase, "from step 0": scratch}.items()}
        self.seconds["schedule"] = time.time() - t0
        return self.schedule

    def probe(self, E: int, lam_kd: float, combine: str | None = None) -> dict:
        """The widget's rerun: S students from the phase-1 nets, E teachers each, one lambda and combination rule
        (seconds). -> their ``summarise`` with E, lam_kd, combine, the theorem's value, plain's and the seconds."""
        t0, combine = time.time(), combine or self.combine
        teachers = [teachers_of(j, E, self.n_nets) for j in range(self.S)]
        students, _ = self._students(teachers, lam_kd, self.cfg["fkd_steps"], f"FKD E={E}", combine=combine)
        out = summarise(students.correct(self.task.test_single), self.task.test_single, self.learned, range(self.S),
                        teachers)
        return dict(out, E=E, lam_kd=lam_kd, combine=combine, theorem=theorem(E), plain=self.fkd["plain"],
                    seconds=time.time() - t0)

    def result(self) -> dict:
        """Every number of the phases run so far, JSON-ready (the keys of ``results/theory/<scale>.json``)."""
        out = {}
        if hasattr(self, "lottery"):
            out["lottery"] = {"train_accuracy": self.train_acc.tolist(), "learned_views": self.learned.int().tolist(),
                              "shares": view_shares(self.learned),
                              **{k.replace(", ", "_").replace(" ", "_").replace("-", "_"): v.tolist()
                                 for k, v in self.lottery.items()}}
        if hasattr(self, "fkd"):
            out["fkd_vs_E"] = self.fkd
        if hasattr(self, "sweep"):
            out["lambda_sweep"] = {"E": self.E_ablation, **self.sweep}
        if hasattr(self, "schedule"):
            out["schedule"] = {"E": self.E_ablation, **self.schedule}
        return out

    def config(self) -> dict:
        """The sizes, the knobs and the data model: the record's ``provenance["config"]``."""
        return dict(self.cfg, net=self.net, lr=self.lr, lam_kd=self.lam_kd, combine=self.combine,
                    normalize=self.normalize, kd_points=self.kd_points, spec=vars(self.task.spec), scale=self.scale,
                    teachers=TEACHERS)

    def save(self):
        """Write ``result()`` with provenance to ``results/theory/<scale>.json``; returns the path."""
        return save_result("theory", self.scale, self.result(),
                           provenance(seed=self.seed, config=self.config(), device="cpu"), scale=self.scale)

    def run(self, save: bool = True) -> dict:
        """Every phase in order, then ``save``; returns ``result()``."""
        self.run_lottery()
        self.run_fkd()
        self.run_lambda_sweep()
        self.run_schedule()
        if save:
            self.path = self.save()
        return self.result()


def _diverged(hist: dict, group: int, S: int) -> int:
    return sum(t is not None for t in hist["diverged_at"][group * S:(group + 1) * S])


def run(scale: str | None = None, *, save: bool = True, progress: bool | None = None, data_root=None, device=None,
        precision: str = "auto", **knobs) -> dict:
    """``python -m fkdlib experiment theory``: the whole of notebook 02's experiment at ``scale``; returns the summary
    (written to ``results/theory/<scale>.json``). ``knobs``: ``Simulation``'s (e.g. ``combine="mean"``, ``net={"q":
    2}``). ``data_root``, ``device``, ``precision`` and a grid's ``workers``/``ray``/``resources`` are accepted and
    unused: the data are built in, and the simulation is sized for one CPU process."""
    for unused in ("workers", "ray", "resources"):
        knobs.pop(unused, None)
    return Simulation(scale, progress=progress, **knobs).run(save=save)
