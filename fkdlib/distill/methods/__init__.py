"""Distillation methods: one file per method holds all of its rules, and ``METHODS`` names them.

Every method's loss is ``gamma * CE + (its distillation terms)``, with RepDistiller's weights for the baselines
(docs/paper.md §4) and the paper's for FKD (§1):

========== ======== ============ =====================================================================
method     gamma    file         distillation terms (student features vs the teachers')
========== ======== ============ =====================================================================
none       1        none.py      (none: plain cross-entropy)
kd         0.1      kd.py        0.9 * KL at T=4, times T^2 (ensembles: mean of softened probabilities)
rkd        1        rkd.py       1 * RKD on the penultimate embedding (distance 25, angle 50)
sp         1        sp.py        3000 * SP on the last conv feature map
fkd        1        fkd.py       lam_kd * FKD on the penultimate embedding + lam_fr * feature-norm penalty
fkd-nofr   1        fkd.py       lam_kd * FKD (the paper's ablation without FR)
fr         1        fkd.py       lam_fr * feature-norm penalty only: the control for FR (no teacher, no kernel term)
crd        1        crd.py       0.8 * CRD on the penultimate embedding (``fkdlib.distill.crd``; 16,384 negatives)
========== ======== ============ =====================================================================

A method's file subclasses ``spec.Spec``: its default weights, whether it needs a teacher and the teacher's label
space, which features it reads, its loss terms, the weights a validation search tries (a multiple of its default
weight, or FKD's lambda ladder), and, where it trains parameters or keeps state, ``build`` (CRD's heads, memory and
negatives). Adding a method is that file and one line in ``METHODS``. ``Method`` is the plain set of weights that
names a run and its record; it asks its spec for every rule.

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
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..crd import NEGATIVES
from . import crd, fkd, kd, none, rkd, sp
from .spec import Batch, Spec

# the registry: a method's name -> its rules
METHODS: dict[str, Spec] = {"none": none.Plain(), "kd": kd.KD(), "rkd": rkd.RKD(), "sp": sp.SP(), "fkd": fkd.FKD(),
                            "fkd-nofr": fkd.FKDWithoutFR(), "fr": fkd.FROnly(), "crd": crd.Contrastive()}
LABEL_FREE = tuple(name for name, s in METHODS.items() if s.needs_teacher and not s.needs_label_space)
# keys of the experiments' variants of a method, as tables and figures name them
VARIANTS = {"fkd-unlabelled": "FKD, unlabelled kernel batch",   # its kernel term on its own unlabelled batch
            "fkd-concat": "FKD (concat, ours)"}                  # Method("fkd", ensemble="concat")


def label(key: str) -> str:
    """``"fkd-concat E=4"`` -> ``"FKD (concat, ours) E=4"``: a method's label, then the rest of the key."""
    name, _, rest = key.partition(" ")
    text = METHODS[name].label if name in METHODS else VARIANTS.get(name, name)
    return text + (f" {rest}" if rest else "")


def weights_label(method: dict) -> str:
    """A short label for one set of a method's weights (a ``Method.to_dict()``, with ``lr`` where the learning rate
    was chosen too): ``weight 0.9``, ``λ 100, FR 0.01 ‖h‖²``, ``weight 3, lr 0.05``."""
    return _spec(method["name"]).weights_label(method)


def weight_candidates(name: str, tuning: dict, **fixed) -> list[Method]:
    """The weights a validation search tries for method ``name`` (``Spec.candidates``): a baseline its default weight
    times each of ``tuning["multipliers"]``, FKD (with or without FR) each lambda_KD of ``tuning["fkd_lams"]`` with the
    weights ``fixed`` (its regulariser)."""
    default = Method(name)
    return default.spec.candidates(default, tuning, **fixed)


def _spec(name: str) -> Spec:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def _rule(name: str, doc: str) -> property:
    """A property of ``Method`` that its spec answers (``Spec.<name>``)."""
    return property(lambda self: getattr(self.spec, name), doc=doc)


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
        spec = _spec(self.name)
        if self.gamma is None:
            self.gamma = spec.gamma
        if self.lam_kd is None:
            self.lam_kd = spec.lam_kd
        for weight in spec.zeroed:
            setattr(self, weight, 0.0)
        if self.ensemble not in ("mean", "concat"):
            raise ValueError(f"ensemble must be 'mean' or 'concat', got {self.ensemble!r}")
        if self.ensemble == "concat" and not spec.concat_ensemble:
            raise ValueError(f"ensemble='concat' is a rule of FKD's kernel target, not of {self.name!r}")
        if self.negatives < 1:
            raise ValueError(f"negatives must be >= 1, got {self.negatives}")

    @property
    def spec(self) -> Spec:
        """The method's rules (``METHODS[name]``)."""
        return METHODS[self.name]

    needs_teacher = _rule("needs_teacher", "Whether the loss reads teachers (not: none, the FR-only control).")
    needs_label_space = _rule("needs_label_space", "KD compares class probabilities, so its teachers must share the "
                                                   "student's classes; the others do not.")
    term_on_labelled_batch = _rule("term_on_labelled_batch", "KD's term reads the teachers' logits on the labelled "
                                                             "batch even when a kernel batch is given.")
    teacher_features_used = _rule("teacher_features_used", "How many of the teachers' last features the loss reads "
                                                           "(SP: the last conv map, ``feats[-2]``).")
    owns_modules = _rule("owns_modules", "Whether the method trains modules of its own beside the student (``build``; "
                                         "CRD's heads and memory).")
    needs_indices = _rule("needs_indices", "Whether the loss reads each batch's example indices into the training set "
                                           "(CRD's memory slots).")

    def build(self, student_dims: list[int], teacher_dims: list[list[int]], train_labels: torch.Tensor,
              seed: int = 0) -> torch.nn.Module | None:
        """The modules this method owns, for the engine to optimise with the student and checkpoint, or ``None``.

        ``student_dims``: the per-example width of each of the student's features (``model(x, is_feat=True)``'s
        first output), ``teacher_dims`` the same for each teacher, ``train_labels`` the student's training labels
        (their length is the training set's size), ``seed`` the run's. CRD: ``fkdlib.distill.crd.CRD`` on the
        penultimate features.
        """
        return self.spec.build(self, student_dims, teacher_dims, train_labels, seed)

    def kernel_target(self, h_teachers: list[torch.Tensor]) -> list[torch.Tensor]:
        """The teachers' features as ``fkd_loss`` takes them: E kernels to average, or one of the concatenation."""
        return [torch.cat(h_teachers, dim=1)] if self.ensemble == "concat" else list(h_teachers)

    def to_dict(self) -> dict:
        d = asdict(self)
        if d["ensemble"] == "mean":  # the default, left out so records made before it existed read the same
            del d["ensemble"]
        if "negatives" not in self.spec.recorded:  # likewise: only CRD's records name its negatives
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
    if method.owns_modules and (modules is None or idx is None):
        raise ValueError(f"method {method.name!r} needs the modules Method.build made and the batch's example indices")
    if kd_feats_s is None:
        kd_feats_s, kd_teacher_outputs = feats_s, teacher_outputs
    batch = Batch(feats_s, logits_s, teacher_outputs, kd_feats_s, kd_teacher_outputs, modules, idx)
    return {**terms, **method.spec.terms(method, batch)}
