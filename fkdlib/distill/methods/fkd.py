"""Feature Kernel Distillation (docs/paper.md §1), its ablation without the feature regulariser, and FR alone.

FKD: CE + lambda_KD * D(rho_S, rho_T) on the penultimate embedding + lambda_FR * FR. Its default weights, lambda_KD =
100 and lambda_FR = 0.01 on ||h||^2, are where a third-party reimplementation started (§1: a place to start a search,
nothing more). With several teachers rho_T is the mean of their normalised kernels (``ensemble="mean"``, the
paper's rule) or the normalised kernel of their concatenated features (``ensemble="concat"``, ours: notebook 02).
"""
from __future__ import annotations

from dataclasses import replace

from ..losses import feature_norm_penalty, fkd_loss
from .spec import Spec, lr_label


class FKD(Spec):
    label = "FKD"
    lam_kd = 100.0
    zeroed = ()
    concat_ensemble = True

    def terms(self, m, b):
        h_teachers = m.kernel_target([ft[-1] for ft, _ in b.kd_teachers])
        terms = {"fkd": m.lam_kd * fkd_loss(b.kd_feats_s[-1], h_teachers, normalize=m.normalize)}
        if m.lam_fr > 0:
            terms["fr"] = m.lam_fr * feature_norm_penalty(b.kd_feats_s[-1], squared=m.fr_squared)
        return terms

    # its search: lambda_KD itself along tuning["fkd_lams"] (a ladder), with the regulariser held
    axis_name = "$\\lambda_{KD}$"

    def candidates(self, default, tuning, **fixed):
        return [replace(default, lam_kd=lam, **fixed) for lam in tuning["fkd_lams"]]

    def axis(self, m):
        return m.lam_kd

    def at(self, m, value):
        return replace(m, lam_kd=value)

    def weights_label(self, d):
        return f"λ {d['lam_kd']:g}" + (f", {fr_label(d)}" if d.get("lam_fr") else ", no FR") + lr_label(d)


class FKDWithoutFR(FKD):
    """The paper's ablation (§3.1's table): the kernel term alone."""

    label = "FKD without FR"
    zeroed = ("lam_fr",)


class FROnly(Spec):
    """The control for FR: lambda_FR * FR with no teacher and no kernel term (ours: it tells FR's own effect apart)."""

    label = "FR only"
    lam_kd = 0.0
    zeroed = ("lam_kd",)
    needs_teacher = False

    def terms(self, m, b):
        return {"fr": m.lam_fr * feature_norm_penalty(b.feats_s[-1], squared=m.fr_squared)}

    def candidates(self, default, tuning, **fixed):
        return [default]  # the method comparison gives it FKD's chosen regulariser

    def axis(self, m):
        return None

    def weights_label(self, d):
        return fr_label(d) if d.get("lam_fr") else ""


def fr_label(d: dict) -> str:
    """``"FR 0.01 ‖h‖²"``: the regulariser's weight and form."""
    return f"FR {d['lam_fr']:g} {'‖h‖²' if d['fr_squared'] else '‖h‖'}"
