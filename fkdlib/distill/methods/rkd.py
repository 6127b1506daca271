"""Relational KD as RepDistiller runs it (docs/paper.md §4): CE + 1 * RKD on the penultimate embedding
(distance 25, angle 50), averaged over teachers."""
from __future__ import annotations

from ..losses import rkd_loss
from .spec import Spec, mean


class RKD(Spec):
    label = "RKD"

    def terms(self, m, b):
        return {"rkd": m.lam_kd * mean(rkd_loss(b.kd_feats_s[-1], ft[-1]) for ft, _ in b.kd_teachers)}
