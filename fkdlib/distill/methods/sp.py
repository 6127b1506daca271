"""Similarity-Preserving KD as RepDistiller runs it (docs/paper.md §4): CE + 3000 * SP on the last conv feature map,
averaged over teachers."""
from __future__ import annotations

from ..losses import sp_loss
from .spec import Spec, mean


class SP(Spec):
    label = "SP"
    lam_kd = 3000.0
    teacher_features_used = 2   # the last conv map, feats[-2]

    def terms(self, m, b):
        return {"sp": m.lam_kd * mean(sp_loss(b.kd_feats_s[-2], ft[-2]) for ft, _ in b.kd_teachers)}
