"""Distillation methods as loss recipes: which features each uses and with what weights.

Every method's loss is ``gamma * CE + (its distillation terms)``, with RepDistiller's weights for the
baselines (docs/paper.md §4) and the paper's for FKD (§1):

========== ======== =====================================================================
method     gamma    distillation terms (student features vs the teachers')
========== ======== =====================================================================
none       1        (none: plain cross-entropy)
kd         0.1      0.9 * KL at T=4, times T^2 (ensembles: mean of softened probabilities)
rkd        1        1 * RKD on the penultimate embedding (distance 25, angle 50)
sp         1        3000 * SP on the last conv feature map
fkd        1        lam_kd * FKD on the penultimate embedding + lam_fr * feature-norm penalty
fkd-nofr   1        lam_kd * FKD (the paper's ablation without FR)
fr         1        lam_fr * feature-norm penalty only: the control for FR (no teacher, no kernel term)
crd        1        0.8 * CRD on the penultimate embedding (``fkdlib.distill.crd``; 16,384 negatives)
========== ======== =====================================================================

The default weights, and why the notebooks differ from them: ``Method("fkd")`` is lambda_KD = 100 and
lambda_FR = 0.01 on ||h||^2, where a third-party reimplementation started (docs/paper.md §1: a place to start a
search, nothing more). Notebooks 03-06 use what validation chose at lite in notebook 04 (lambda_KD = 30,
lambda_FR = 0.001 on ||h||: the smallest kernel weight tried), never the test set. Notebook 00 starts from those
too; notebook 02's simulation has its own lambda, because its kernel term is on another scale (a two-layer net
on synthetic views, not a CIFAR network).

RKD, SP and CRD are defined for one teacher; with an ensemble their losses are averaged over teachers. FKD's
ensemble target is the mean of the teachers' normalised kernels (``ensemble="mean"``, the paper's rule), or
the normalised kernel of their concatenated features (``ensemble="concat"``, ours: the ensemble as one wide
net, which keeps what each teacher sees; notebook 02).

A method may own modules of its own and want each batch's example indices (CRD: embedding heads trained with the
student, a memory bank with one slot per training example): ``Method.build`` makes them (``None`` for the others),
the engine trains and checkpoints them with the student, and ``loss_terms`` takes them with the batch's indices.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from .crd import CRD, NEGATIVES
from .losses import feature_norm_penalty, fkd_loss, kd_loss, rkd_loss, sp_loss

METHODS = ("none", "kd", "rkd", "sp", "fkd", "fkd-nofr", "fr", "crd")
LABEL_FREE = ("rkd", "sp", "fkd", "fkd-nofr", "crd")

# how every figure and table names and colours a method or variant (seaborn's colorblind palette; FKD the strongest)
LOOK = {"none": ("no distillation", "#949494"), "kd": ("KD", "#de8f05"), "rkd": ("RKD", "#029e73"),
        "sp": ("SP", "#56b4e9"), "fkd-nofr": ("FKD without FR", "#cc78bc"), "fkd": ("FKD", "#0173b2"),
        "fr": ("FR only", "#ca9161"), "crd": ("CRD", "#fbafe4"),
        "fkd-unlabelled": ("FKD, unlabelled kernel batch", "#7f3c8d"),   # its kernel term on its own unlabelled batch
        "fkd-concat": ("FKD (concat, ours)", "#d55e00")}                  # Method("fkd", ensemble="concat")


def label(key: str) -> str:
    """``"fkd-concat E=4"`` -> ``"FKD (concat, ours) E=4"``: a method's label, then the rest of the key."""
    name, _, rest = key.partition(" ")
    return LOOK.get(name, (name,))[0] + (f" {rest}" if rest else "")


def weights_label(method: dict) -> str:
    """A short label for one set of a method's weights (a ``Method.to_dict()``, with ``lr`` where the learning rate
    was chosen too): ``weight 0.9``, ``λ 100, FR 0.01 ‖h‖²``, ``weight 3, lr 0.05``."""
    name = method["name"]
    if name == "none":
        return "CE only" + (f", lr {method['lr']:g}" if "lr" in method else "")
    fr = f"FR {method['lam_fr']:g} {'‖h‖²' if method['fr_squared'] else '‖h‖'}" if method.get("lam_fr") else ""
    if name == "fr":
        return fr
    lr = f", lr {method['lr']:g}" if "lr" in method else ""
    if name.startswith("fkd"):
        return f"λ {method['lam_kd']:g}" + (f", {fr}" if fr else ", no FR") + lr
    return f"weight {float(format(method['lam_kd'], '.3g')):g}" + lr


def weight_candidates(name: str, multipliers, fkd_lams, **fkd_weights) -> list[Method]:
    """The weights a validation search tries for method ``name``: FKD (with or without FR) each lambda_KD of
    ``fkd_lams`` (with ``fkd_weights``, e.g. its regulariser), a baseline ``multipliers`` of its default weight."""
    if name in ("fkd", "fkd-nofr"):
        return [Method(name, lam_kd=lam, **fkd_weights) for lam in fkd_lams]
    return [Method(name, lam_kd=m * Method(name).lam_kd) for m in multipliers]


def color(key: str) -> str:
    """The method's colour in every figure (grey for a key no method owns)."""
    return LOOK.get(key.partition(" ")[0], (None, "0.3"))[1]


@dataclass
class Method:
    """A distillation method and its weights. ``Method("fkd", lam_kd=100)``; defaults per the table above."""

    name: str = "none"
    lam_kd: float | None = None      # weight of the distillation term (FKD: lambda_KD; KD: alpha; RKD/SP/CRD: beta)
    lam_fr: float = 0.01             # the feature regulariser's weight (FKD and the FR-only control; 0 for the others)
    gamma: float | None = None       # weight of cross-entropy
    T: float = 4.0                   # KD temperature
    fr_squared: bool = True          # FR as ||h||^2 (True) or ||h||
    normalize: bool = True           # FKD on the normalised kernel (the paper's choice)
    ensemble: str = "mean"           # FKD with several teachers: "mean" of their kernels, or "concat" features
    negatives: int = NEGATIVES       # CRD's negatives per example (drawn with replacement when fewer exist)

    def __post_init__(self):
        if self.name not in METHODS:
            raise ValueError(f"unknown method {self.name!r}; choose one of {', '.join(METHODS)}")
        defaults = {"none": (1.0, 0.0), "kd": (0.1, 0.9), "rkd": (1.0, 1.0), "sp": (1.0, 3000.0),
                    "fkd": (1.0, 100.0), "fkd-nofr": (1.0, 100.0), "fr": (1.0, 0.0), "crd": (1.0, 0.8)}[self.name]
        if self.gamma is None:
            self.gamma = defaults[0]
        if self.lam_kd is None:
            self.lam_kd = defaults[1]
        if self.name not in ("fkd", "fr"):
            self.lam_fr = 0.0
        if self.name == "fr":
            self.lam_kd = 0.0
        if self.ensemble not in ("mean", "concat"):
            raise ValueError(f"ensemble must be 'mean' or 'concat', got {self.ensemble!r}")
        if self.ensemble == "concat" and self.name not in ("fkd", "fkd-nofr"):
            raise ValueError(f"ensemble='concat' is a rule of FKD's kernel target, not of {self.name!r}")
        if self.negatives < 1:
            raise ValueError(f"negatives must be >= 1, got {self.negatives}")

    @property
    def needs_teacher(self) -> bool:
        return self.name not in ("none", "fr")

    @property
    def needs_label_space(self) -> bool:
        """KD compares class probabilities, so its teachers must share the student's classes; the others do not."""
        return self.name == "kd"

    @property
    def term_on_labelled_batch(self) -> bool:
        """KD's term reads the teachers' logits on the labelled batch even when a kernel batch is given."""
        return self.name == "kd"

    @property
    def teacher_features_used(self) -> int:
        """How many of the teachers' last features the loss reads (SP: the last conv map, ``feats[-2]``)."""
        return 2 if self.name == "sp" else 1

    @property
    def owns_modules(self) -> bool:
        """Whether the method trains modules of its own beside the student (``build``; CRD's heads and memory)."""
        return self.name == "crd"

    @property
    def needs_indices(self) -> bool:
        """Whether the loss reads each batch's example indices into the training set (CRD's memory slots)."""
        return self.name == "crd"

    def build(self, student_dims: list[int], teacher_dims: list[list[int]], train_labels: torch.Tensor,
              seed: int = 0) -> torch.nn.Module | None:
        """The modules this method owns, for the engine to optimise with the student and checkpoint, or ``None``.

        ``student_dims``: the per-example width of each of the student's features (``model(x, is_feat=True)``'s
        first output), ``teacher_dims`` the same for each teacher, ``train_labels`` the student's training labels
        (their length is the training set's size), ``seed`` the run's. CRD: ``fkdlib.distill.crd.CRD`` on the
        penultimate features.
        """
        if not self.owns_modules:
            return None
        return CRD(student_dims[-1], [dims[-1] for dims in teacher_dims], train_labels, self.negatives, seed)

    def kernel_target(self, h_teachers: list[torch.Tensor]) -> list[torch.Tensor]:
        """The teachers' features as ``fkd_loss`` takes them: E kernels to average, or one of the concatenation."""
        return [torch.cat(h_teachers, dim=1)] if self.ensemble == "concat" else list(h_teachers)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["ensemble"] == "mean":  # the default, left out so records made before it existed read the same
            del d["ensemble"]
        if self.name != "crd":  # likewise: only CRD's records name its negatives
            del d["negatives"]
        return d


def loss_terms(method: Method, feats_s: list[torch.Tensor], logits_s: torch.Tensor, y: torch.Tensor | None,
               teacher_outputs: list[tuple[list[torch.Tensor], torch.Tensor]],
               kd_feats_s: list[torch.Tensor] | None = None,
               kd_teacher_outputs: list[tuple[list[torch.Tensor], torch.Tensor]] | None = None,
               modules: torch.nn.Module | None = None, idx: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The weighted terms of ``method``'s loss; their sum is the loss to minimise.

    ``feats_s, logits_s`` are the student's ``model(x, is_feat=True)`` on the labelled batch, ``y`` its
    labels, ``teacher_outputs`` each teacher's ``(feats, logits)`` on the same batch. When the
    distillation term uses its own batch (other or more data: STL-10's 512 unlabelled images), pass the
    student's features and the teachers' outputs on that batch as ``kd_feats_s`` / ``kd_teacher_outputs``.
    A method that owns modules (``Method.build``) takes them as ``modules`` and the batch's example indices into the
    training set as ``idx``.
    """
    terms = {"ce": method.gamma * F.cross_entropy(logits_s, y)} if y is not None else {}
    if method.name == "fr":
        terms["fr"] = method.lam_fr * feature_norm_penalty(feats_s[-1], squared=method.fr_squared)
    if not method.needs_teacher:
        return terms
    if method.owns_modules and (modules is None or idx is None):
        raise ValueError(f"method {method.name!r} needs the modules Method.build made and the batch's example indices")
    if kd_feats_s is None:
        kd_feats_s, kd_teacher_outputs = feats_s, teacher_outputs
    if method.name == "kd":
        terms["kd"] = method.lam_kd * kd_loss(logits_s, [lt for _, lt in teacher_outputs], T=method.T)
    elif method.name == "rkd":
        terms["rkd"] = method.lam_kd * _mean(rkd_loss(kd_feats_s[-1], ft[-1]) for ft, _ in kd_teacher_outputs)
    elif method.name == "sp":
        terms["sp"] = method.lam_kd * _mean(sp_loss(kd_feats_s[-2], ft[-2]) for ft, _ in kd_teacher_outputs)
    elif method.name == "crd":
        terms["crd"] = method.lam_kd * modules(feats_s[-1], [ft[-1] for ft, _ in teacher_outputs], idx)
    else:
        terms["fkd"] = method.lam_kd * fkd_loss(kd_feats_s[-1], method.kernel_target([ft[-1] for ft, _ in
                                                                                       kd_teacher_outputs]),
                                               normalize=method.normalize)
        if method.lam_fr > 0:
            terms["fr"] = method.lam_fr * feature_norm_penalty(kd_feats_s[-1], squared=method.fr_squared)
    return terms


def _mean(values) -> torch.Tensor:
    values = list(values)
    return sum(values) / len(values)
