"""One optimisation step of the engine and an epoch's metrics, with no host sync (docs/paper.md §3, eq. 3's loss)."""
from __future__ import annotations

import warnings
from collections.abc import Sequence

import torch

from ..distill.methods import Method, loss_terms
from ..models.teachers import Teacher
from . import amp
from .fold import fold_batchnorm
from .teacher_cache import TeacherCache


class TrainStep:
    """One optimisation step of the engine, as ``train`` runs it: ``loss, terms, logits = step(x, y, kd_x, idx)``.

    ``x``, ``y``: the labelled batch (float32, normalised, on the device); ``kd_x``: the distillation
    term's own batch, or ``None`` to use ``x``. Runs the frozen teachers (BatchNorm folded unless
    ``fold_teachers=False``, under ``torch.inference_mode``) and the student under the autocast of the
    resolved ``precision``, computes ``methods.loss_terms`` in float32, and steps the optimiser (through
    a grad scaler for fp16). Returns detached float32 tensors, without any host sync.

    A method that owns modules (``method.build``: CRD's heads and memory) gets them as ``modules``, with the
    optimiser ``opt`` holding their parameters too, and the batch's example indices into the training set as ``idx``.
    """

    def __init__(self, student: torch.nn.Module, teachers: Sequence[Teacher], method: Method,
                 opt: torch.optim.Optimizer, device: torch.device, precision: str = "fp32",
                 fold_teachers: bool = True, compile: bool = False, cache: "TeacherCache | None" = None,
                 modules: torch.nn.Module | None = None):
        if method.owns_modules and modules is None:
            raise ValueError(f"method {method.name!r} trains modules of its own: pass modules=method.build(...) "
                             f"(fkdlib.engine.train does)")
        self.student, self.method, self.opt, self.modules = student, method, opt, modules
        self.cache = cache
        # a teacher's cache identity: its file and the arithmetic it runs in (folding changes the last bits)
        self._keys = [(t.source or id(t.model), fold_teachers, precision) for t in teachers]
        self.autocast = amp.autocast(device, precision)
        self.scaler = amp.grad_scaler(device, precision)
        nets = [fold_batchnorm(t.model) if fold_teachers else t.model.eval() for t in teachers]
        self.teachers = [n.to(device, memory_format=torch.channels_last) for n in nets]
        self._student_fwd, self._teacher_fwds = student, list(self.teachers)
        if compile:
            self._student_fwd = _compiled(student)
            self._teacher_fwds = [_compiled(t) for t in self.teachers]

    def teacher_outputs(self, x: torch.Tensor) -> list:
        """Each teacher's ``(feats, logits)`` on ``x``, as float32 where the losses read them (with a cache: only
        the last ``method.teacher_features_used`` features, looked up by the batch's contents)."""
        if self.cache is None:
            with torch.inference_mode(), self.autocast:
                return [_as_float(*t(x, is_feat=True)) for t in self._teacher_fwds]
        keep, batch = self.method.teacher_features_used, TeacherCache.fingerprint(x)
        out = []
        for key, t in zip(self._keys, self._teacher_fwds):
            hit = self.cache.get((key, keep, batch))
            if hit is None:
                with torch.inference_mode(), self.autocast:
                    feats, logits = _as_float(*t(x, is_feat=True))
                hit = self.cache.put((key, keep, batch), (feats[-keep:], logits))
            out.append(hit)
        return out

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor | None, kd_x: torch.Tensor | None = None,
                 idx: torch.Tensor | None = None):
        method = self.method
        teacher_out, kd_feats, kd_teacher_out = [], None, None
        if method.needs_teacher:
            if method.term_on_labelled_batch or kd_x is None:
                teacher_out = self.teacher_outputs(xb)
            if kd_x is not None:
                kd_teacher_out = self.teacher_outputs(kd_x)
        with self.autocast:
            feats_s, logits = _as_float(*self._student_fwd(xb, is_feat=True))
            if kd_x is not None and method.needs_teacher:
                kd_feats = _as_float(*self._student_fwd(kd_x, is_feat=True))[0]
        terms = loss_terms(method, feats_s, logits, yb, teacher_out, kd_feats, kd_teacher_out, self.modules, idx)
        loss = sum(terms.values())
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss.detach(), {k: v.detach() for k, v in terms.items()}, logits.detach()


class EpochStats:
    """An epoch's training metrics, summed on the device without host syncs; read once by ``means()``.

    Per step: each loss term and the loss times the batch size, the correct predictions, and the
    first step whose loss was not finite (``first_bad``, -1 while there is none).
    """

    def __init__(self, device: torch.device):
        self.sums: dict[str, torch.Tensor] = {}
        self.correct = torch.zeros((), device=device, dtype=torch.long)
        self.first_bad = torch.full((), -1, device=device, dtype=torch.long)
        self.seen = 0

    def add(self, step: int, yb: torch.Tensor, loss: torch.Tensor, terms: dict, logits: torch.Tensor) -> None:
        self.first_bad = torch.where((self.first_bad < 0) & ~torch.isfinite(loss), step, self.first_bad)
        for k, v in {"loss": loss, **terms}.items():
            self.sums[k] = self.sums.get(k, 0) + v * len(yb)
        self.correct += (logits.argmax(1) == yb).sum()
        self.seen += len(yb)

    def means(self) -> dict:
        """``{"train_acc", "train_loss", "train_<term>"}``: the epoch's means (one host sync per value)."""
        return {"train_acc": float(self.correct) / self.seen,
                **{f"train_{k}": float(v) / self.seen for k, v in self.sums.items()}}


def _as_float(feats, logits):
    """The tensors the losses read (the last two features, the logits) in float32; the rest untouched."""
    return [*feats[:-2], *(f.float() for f in feats[-2:])], logits.float()


class _Compiled(torch.nn.Module):
    """``torch.compile(model)`` that falls back to the eager model, with a warning, if compiling fails."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.eager = model
        self.compiled = torch.compile(model)
        self.failed = False

    def forward(self, *args, **kwargs):
        if not self.failed:
            try:
                return self.compiled(*args, **kwargs)
            except Exception as err:  # the compiler's errors have no common base class
                self.failed = True
                warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                              f"running eagerly", RuntimeWarning, stacklevel=2)
        return self.eager(*args, **kwargs)


def _compiled(model):
    return _Compiled(model)
