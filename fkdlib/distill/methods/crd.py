"""CRD as RepDistiller runs it (docs/paper.md §4): CE + 0.8 * CRD on the penultimate embedding, with the heads,
memory and negatives it owns (``fkdlib.distill.crd``), trained and checkpointed with the student."""
from __future__ import annotations

from dataclasses import replace

from ..crd import CRD
from .spec import Spec


class Contrastive(Spec):
    label = "CRD"
    lam_kd = 0.8
    recorded = ("negatives",)
    owns_modules = True
    needs_indices = True   # one memory slot per training example

    def terms(self, m, b):
        return {"crd": m.lam_kd * b.modules(b.feats_s[-1], [ft[-1] for ft, _ in b.teachers], b.idx)}

    def build(self, m, student_dims, teacher_dims, train_labels, seed):
        return CRD(student_dims[-1], [dims[-1] for dims in teacher_dims], train_labels, m.negatives, seed)

    def candidates(self, default, tuning, **fixed):
        """RepDistiller's weight times each multiplier, with the grid's negatives where it sets them (its config
        says why)."""
        if tuning.get("crd_negatives"):
            default = replace(default, negatives=tuning["crd_negatives"])
        return super().candidates(default, tuning, **fixed)
