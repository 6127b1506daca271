"""No distillation: the plain student, cross-entropy alone (docs/paper.md §3.1's baseline row)."""
from __future__ import annotations

from .spec import Spec, lr_label


class Plain(Spec):
    label = "no distillation"
    lam_kd = 0.0
    needs_teacher = False

    def terms(self, m, b):
        return {}

    def candidates(self, default, tuning, **fixed):
        return [default]  # no weight to search

    def axis(self, m):
        return None

    def weights_label(self, d):
        return "CE only" + lr_label(d)
