"""What every distillation method answers: ``Spec``, whose defaults are a RepDistiller baseline (docs/paper.md §4).

A method's file subclasses ``Spec``, overrides what differs (its weights, the features it reads, its loss terms, its
weight search, the modules it builds) and adds one line to ``fkdlib.distill.methods.METHODS``. Every rule takes the
run's ``Method`` (its weights) as ``m``; the spec holds no state, so one instance serves every run.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

import torch


@dataclass
class Batch:
    """What a method's loss may read on one step (``fkdlib.distill.methods.loss_terms`` fills it).

    ``teachers``: each teacher's ``(feats, logits)`` on the labelled batch. ``kd_feats_s``, ``kd_teachers``: the
    student's features and the teachers' outputs on the distillation term's batch (docs/paper.md §1: its own, larger
    and unlabelled batch), the labelled batch's when it has none. ``modules``, ``idx``: what ``Spec.build`` made and
    the batch's example indices into the training set, for a method that owns modules.
    """

    feats_s: list[torch.Tensor]      # the student's features on the labelled batch; [-1] (B, D) penultimate
    logits_s: torch.Tensor           # (B, C)
    teachers: list[tuple[list[torch.Tensor], torch.Tensor]]
    kd_feats_s: list[torch.Tensor]
    kd_teachers: list[tuple[list[torch.Tensor], torch.Tensor]]
    modules: torch.nn.Module | None = None
    idx: torch.Tensor | None = None


class Spec:
    """A method's rules. The loss is ``gamma * CE + terms(...)``; these defaults are RKD's, SP's and CRD's."""

    label = ""                       # how tables and figures name it
    gamma = 1.0                      # default weight of cross-entropy
    lam_kd = 1.0                     # default weight of its distillation term
    zeroed = ("lam_fr",)             # weights it does not read, recorded as 0 whatever is passed
    recorded = ()                    # Method fields recorded only for the methods naming them here ("negatives")
    needs_teacher = True
    needs_label_space = False        # its term compares class probabilities: teachers must share the student's classes
    term_on_labelled_batch = False   # its term reads the teachers on the labelled batch even beside a kernel batch
    teacher_features_used = 1        # how many of the teachers' last features its loss reads
    concat_ensemble = False          # whether Method(ensemble="concat") means something for it (FKD's kernel target)
    owns_modules = False             # whether ``build`` makes modules trained beside the student
    needs_indices = False            # whether its loss reads each batch's example indices into the training set

    def terms(self, m, b: Batch) -> dict[str, torch.Tensor]:
        """Its weighted distillation terms on the batch ``b``, by name (a run records each as ``train_<name>``)."""
        raise NotImplementedError(f"{type(self).__name__} defines no loss terms")

    def build(self, m, student_dims: list[int], teacher_dims: list[list[int]], train_labels: torch.Tensor,
              seed: int) -> torch.nn.Module | None:
        """The modules it trains beside the student (``Method.build``), or ``None``."""
        return None

    # its weight search on validation: RepDistiller's weight times each of tuning["multipliers"]
    axis_name = "weight ÷ its default"

    def candidates(self, default, tuning: dict, **fixed) -> list:
        """The weights a validation search tries, from ``default`` (``Method(name)``). ``fixed``: weights held
        during the search (FKD's regulariser); a baseline has none."""
        return [replace(default, lam_kd=k * default.lam_kd) for k in tuning["multipliers"]]

    def axis(self, m) -> float | None:
        """Where ``m`` sits on the search's axis (None: off it)."""
        return float(f"{m.lam_kd / self.lam_kd:.6g}")

    def at(self, m, value: float):
        """``m`` moved to ``value`` on the search's axis."""
        return replace(m, lam_kd=float(f"{value * self.lam_kd:.6g}"))

    def weights_label(self, d: dict) -> str:
        """A short label for one set of its weights (a ``Method.to_dict()``, with ``lr`` where it was chosen too)."""
        return f"weight {float(format(d['lam_kd'], '.3g')):g}" + lr_label(d)


def lr_label(d: dict) -> str:
    """``", lr 0.05"`` where the learning rate was chosen with the weights, else ``""``."""
    return f", lr {d['lr']:g}" if "lr" in d else ""


def mean(values: Iterable[torch.Tensor]) -> torch.Tensor:
    """The mean over teachers of a loss defined for one (RKD, SP: ours, where the papers have no rule)."""
    values = list(values)
    return sum(values) / len(values)
