"""Cross-dataset distillation (docs/paper.md §3.3): a teacher trained on one label space, students on another.

The method comparison's protocol (``tuning.TunedGrid``) with the learning rate among the choices: for each
label-free method the weight is chosen on the students' validation split at the recipe's learning rate, then
the learning rate at that weight (the plain student: the learning rate alone), each by ``tuning.choose``
(contenders get a second seed). The chosen pairs then train at every seed, paired. ``fkd-unlabelled`` is FKD
with its chosen weight and rate whose kernel term sees its own batch of unlabelled images (STL-10 style).
KD is not run: it needs a shared label space, and ``train`` refuses it (notebook 06 shows the error).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..distill.methods import Method, weight_candidates
from . import config
from .splits import cross_data
from .tuning import TunedGrid, run_name

EXPERIMENT = "cross_dataset"
# the paired differences the summary reports: (a, b) means a - b
CONTRASTS = [("rkd", "none"), ("sp", "none"), ("fkd", "none"), ("fkd-unlabelled", "none"), ("fkd", "rkd"),
             ("fkd", "sp"), ("fkd-unlabelled", "fkd")]


@dataclass(frozen=True)
class Candidate:
    """A student's method, learning rate and whether its kernel term sees its own unlabelled batch."""

    method: Method
    lr: float
    unlabelled: bool = False

    def to_dict(self) -> dict:
        return {**self.method.to_dict(), "lr": self.lr, "unlabelled": self.unlabelled}


class CrossGrid(TunedGrid):
    experiment = EXPERIMENT
    contrasts = CONTRASTS

    def __init__(self, scale: str, out: Path, overrides: dict | None = None):
        super().__init__(scale, out, overrides)
        self.base_lr = config.recipe(self.cfg["preset"], **self.cfg["student_recipe"]).lr

    def name(self, cand: Candidate) -> str:
        """``fkd_w30_fr0.001norm_lr0.1``; ``..._unlabelled`` for the kernel term on unlabelled images."""
        return f"{run_name(cand.method)}_lr{cand.lr:g}" + ("_unlabelled" if cand.unlabelled else "")

    def describe(self, cand: Candidate) -> dict:
        return cand.to_dict()

    def weights(self, name: str) -> list[Method]:
        t = self.tuning
        return weight_candidates(name, t["multipliers"], t["fkd_lams"], **t["fkd_fr"])

    def stages(self):
        """Per method: its weight at the recipe's lr (``"<m> weight"``), then the lr at that weight (``"<m>"``)."""
        rates = [self.base_lr, *self.tuning["lrs"]]
        for name in [m for m in self.cfg["methods"] if m != "fkd-unlabelled"]:
            if name == "none":
                yield name, [Candidate(Method("none"), lr) for lr in rates]
                continue
            yield f"{name} weight", [Candidate(m, self.base_lr) for m in self.weights(name)]
            w = self._chosen.get(f"{name} weight")
            yield name, None if w is None else [replace(w, lr=lr) for lr in rates]

    def chosen_extra(self, key, table, cands, chosen) -> None:
        if key == "fkd" and "fkd-unlabelled" in self.cfg["methods"]:
            chosen["fkd-unlabelled"] = replace(chosen["fkd"], unlabelled=True)

    def data(self, data_root=None) -> dict:
        return cross_data(self.cfg, data_root)

    def teacher_job(self, data: dict):
        return ((self.cfg["teacher"], data["teacher_train"], data["teacher_test"],
                 config.recipe(self.cfg["preset"], **self.cfg["teacher_recipe"]), self.teacher_dir), dict(seed=0))

    def recipe(self, cand: Candidate):
        return config.recipe(self.cfg["preset"], **dict(self.cfg["student_recipe"], lr=cand.lr),
                          kd_batch_size=self.cfg["kd_batch_size"] if cand.unlabelled else None)

    def method(self, cand: Candidate) -> Method:
        return cand.method

    def student_job(self, cand: Candidate, seed: int, data: dict, teacher):
        return ((self.cfg["student"], data["train"], data["test"], self.recipe(cand), self.run_dir(cand, seed)),
                dict(method=cand.method, teachers=[teacher], seed=seed, val_data=data["val"],
                     kd_data=data["unlabelled"] if cand.unlabelled else None))

    def summary_extra(self, teacher: dict, methods: dict, chosen: dict) -> dict:
        """The two label spaces: the teacher's classes and the students'."""
        first = next((r for name in methods for s in self.seeds if (r := self.record(chosen[name], s))), None)
        return {"teacher_classes": teacher["provenance"]["config"]["classes"],
                "student_classes": first["provenance"]["config"]["classes"] if first else None}
