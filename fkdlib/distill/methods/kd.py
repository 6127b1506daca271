"""Hinton et al.'s KD as RepDistiller runs it (docs/paper.md §4): 0.1 * CE + 0.9 * KL at T = 4, times T^2.

With several teachers the target is the mean of their softened probabilities (``fkdlib.distill.losses.kd_loss``).
"""
from __future__ import annotations

from ..losses import kd_loss
from .spec import Spec


class KD(Spec):
    label = "KD"
    gamma, lam_kd = 0.1, 0.9
    needs_label_space = True        # it compares class probabilities
    term_on_labelled_batch = True   # the logits of the labelled batch, even where a kernel batch is given

    def terms(self, m, b):
        return {"kd": m.lam_kd * kd_loss(b.logits_s, [logits for _, logits in b.teachers], T=m.T)}
