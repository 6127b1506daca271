"""The training engine: teachers, students, every method, ensembles, cross-dataset, resumable runs.

One visible path: data -> teachers -> student -> loss (``methods.loss_terms``) -> metrics -> run record.
After every epoch it writes an atomic checkpoint and a JSON run record with provenance to ``out_dir``;
``resume=True`` continues a killed run from its last checkpoint and, on a CPU, ends with exactly the
weights of an uninterrupted run. A non-finite loss stops the run with the epoch and step and leaves
the last good checkpoint in place.

The fast path, on by default (BENCHMARKS.md measures it against a RepDistiller-style loop):

- the data stay uint8 on the device and are augmented there (``fkdlib.data.loader.DeviceLoader``); every
  network runs in channels_last;
- each frozen teacher is a copy with its BatchNorm folded into its convolutions (``fkdlib.engine.fold``), run
  under ``torch.inference_mode``;
- the networks run under autocast in the device's fast precision (``fkdlib.engine.amp``: bf16 on GPUs and on
  CPUs with native bf16, fp16 with a grad scaler on older GPUs); the losses are computed in float32;
- the step makes no host sync: the loss terms, the accuracy and the first non-finite step are summed
  on the device and read once per epoch (and every ``nan_check_every`` steps for the NaN stop);
- ``compile=True`` (opt-in) runs the networks through ``torch.compile``, falling back to eager if it fails.
"""
from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from . import amp
from ..models import checkpoints as _safe
from ..distill.checks import finite_checks
from ..data import per_class_indices
from ..device import get_device
from .evaluate import embedding, eval_mode
from .fold import fold_batchnorm
from ..distill.kernels import ensemble_kernel, feature_kernel, kernel_alignment
from ..data.loader import DeviceLoader
from ..distill.losses import fkd_loss
from ..distill.methods import LABEL_FREE, Method, loss_terms
from ..models import create_model
from .progress import bar
from .recipes import Recipe
from ..records import pin_git_state, provenance, write_record
from ..models.teachers import Teacher, save_model

CHECKPOINT = "checkpoints/last.pt"
RECORD = "result.json"
MODEL = "model.pt"


def train(arch: str, train_data, test_data, recipe: Recipe, out_dir: str | Path, method: Method | None = None,
          teachers: Sequence[Teacher] = (), seed: int = 0, resume: bool = False, overwrite: bool = False,
          kd_data=None, val_data=None, device: torch.device | str | None = None, progress: bool | None = None,
          nan_check_every: int | None = None, precision: str = "auto", fold_teachers: bool = True,
          compile: bool = False, teacher_cache: "TeacherCache | None" = None) -> dict:
    """Train a network ``arch`` on ``train_data`` (a teacher or plain student when ``method`` is none,
    else a distilled student of ``teachers``) and return its run record ``{"result", "provenance"}``.

    ``val_data`` (optional) is scored after every epoch as ``val_acc``: the split every choice of weights
    is made on, never the test set (``recipe.eval_last`` limits both to the last epochs).
    ``train_data``/``test_data``/``kd_data``/``val_data`` are ``fkdlib.data`` datasets (uint8 ``X``, ``y``,
    ``classes``, ``name``, ``mean``, ``std``). ``kd_data`` (or ``recipe.kd_batch_size``) gives the
    distillation term its own batches, e.g. STL-10's unlabelled images. KD across label spaces is refused
    before training starts.

    ``precision`` (``"auto"``, ``"fp32"``, ``"bf16"``, ``"fp16"``; see ``fkdlib.engine.amp``), ``fold_teachers``
    and ``compile`` choose the arithmetic; the defaults are the fastest verified path. ``teacher_cache`` (a
    ``TeacherCache``) lets the students of one grid that see the same batches share their teachers' outputs. A non-finite
    loss is looked for every ``nan_check_every`` steps (default 50) and at the end of every epoch, and
    reported with the first step where it appeared.
    """
    pin_git_state()
    method = method or Method("none")
    out_dir = Path(out_dir)
    _check_setup(method, teachers, train_data, out_dir, resume, overwrite)
    device = get_device(device) if not isinstance(device, torch.device) else device
    torch.manual_seed(seed)
    student = create_model(arch, num_classes=len(train_data.classes)).to(device, memory_format=torch.channels_last)
    for t in teachers:
        t.model.to(device, memory_format=torch.channels_last)
    opt = torch.optim.SGD(student.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                          weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(recipe.milestones), gamma=recipe.lr_decay)
    precision = amp.resolve_precision(precision, device)
    step_fn = TrainStep(student, teachers if method.needs_teacher else (), method, opt, device, precision,
                        fold_teachers=fold_teachers, compile=compile, cache=teacher_cache)

    X, y = _subset(train_data.X, train_data.y, recipe.train_subset)
    loader = DeviceLoader(X, y, recipe.batch_size, train=True, mean=train_data.mean, std=train_data.std,
                          device=device, seed=seed)
    if kd_data is None and recipe.kd_batch_size:
        kd_data = train_data
    kd_loader = _kd_loader(method, recipe, kd_data, device, seed)
    test_X, test_y = _subset(test_data.X, test_data.y, recipe.test_subset)
    test_loader = DeviceLoader(test_X, test_y, recipe.eval_batch_size, train=False,
                               mean=test_data.mean, std=test_data.std, device=device)
    val_loader = None if val_data is None else DeviceLoader(val_data.X, val_data.y, recipe.eval_batch_size,
                                                            train=False, mean=val_data.mean, std=val_data.std,
                                                            device=device)
    probe = _probe(test_data, recipe.probe_size, teachers, device, method)

    config = {"arch": arch, "train_data": train_data.name, "test_data": test_data.name,
              "data_label": getattr(train_data, "label", train_data.name),
              "kd_data": getattr(kd_data, "name", None), "num_train": len(X), "num_test": len(test_X),
              "num_val": len(val_data.X) if val_data is not None else 0,
              "classes": list(train_data.classes),
              "recipe": recipe.to_dict(), "method": method.to_dict(), "seed": seed,
              "teachers": [{"arch": t.arch, "dataset": t.dataset, "source": t.source} for t in teachers],
              "engine": {"precision": precision, "fold_teachers": fold_teachers, "compile": compile}}
    state = {"epoch": -1, "history": [], "wall_time_s": 0.0}
    ckpt_path = out_dir / CHECKPOINT
    if resume and ckpt_path.exists():
        state = _load_checkpoint(ckpt_path, student, opt, sched, step_fn.scaler)
    check_every = nan_check_every or 50

    epochs_bar = bar(range(state["epoch"] + 1, recipe.epochs), progress, desc=f"{arch} {method.name}",
                     initial=state["epoch"] + 1, total=recipe.epochs)
    for epoch in epochs_bar:
        t0 = time.perf_counter()
        loader.set_epoch(epoch)
        # the kernel term's own stream: batch t depends only on t, so a resumed epoch replays exactly
        kd_batches = kd_loader.forever(start_step=epoch * len(loader)) if kd_loader else None
        student.train()
        stats = EpochStats(device)
        steps_bar = bar(loader, progress, desc=f"epoch {epoch + 1}", leave=False)
        with finite_checks(False):
            for step, (xb, yb) in enumerate(steps_bar):
                kd_x = next(kd_batches)[0] if kd_batches else None
                stats.add(step, yb, *step_fn(xb, yb, kd_x))
                if (step + 1) % check_every == 0 or step + 1 == len(loader):
                    _stop_if_not_finite(stats, epoch, ckpt_path, state)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        row = {"epoch": epoch + 1, "lr": lr, **stats.means()}
        if not recipe.eval_last or epoch >= recipe.epochs - recipe.eval_last:
            if val_loader is not None:
                row["val_acc"] = evaluate_accuracy(student, val_loader, step_fn.autocast)
            row["test_acc"] = evaluate_accuracy(student, test_loader, step_fn.autocast)
        row.update(probe.metrics(student))
        state["wall_time_s"] += time.perf_counter() - t0
        row["wall_time_s"] = state["wall_time_s"]
        state["epoch"], state["history"] = epoch, state["history"] + [row]
        _save_checkpoint(ckpt_path, student, opt, sched, state, step_fn.scaler)
        _write_record(out_dir, config, state, seed, device, status="running")
        epochs_bar.set_postfix(loss=f"{row['train_loss']:.3f}",
                               **{k: f"{row[k]:.1%}" for k in ("val_acc", "test_acc") if k in row})

    save_model(out_dir / MODEL, student, arch, train_data.name, list(train_data.classes),
               extra={"provenance": provenance(seed, config, device)})
    return _write_record(out_dir, config, state, seed, device, status="done")


class TrainStep:
    """One optimisation step of the engine, as ``train`` runs it: ``loss, terms, logits = step(x, y, kd_x)``.

    ``x``, ``y``: the labelled batch (float32, normalised, on the device); ``kd_x``: the distillation
    term's own batch, or ``None`` to use ``x``. Runs the frozen teachers (BatchNorm folded unless
    ``fold_teachers=False``, under ``torch.inference_mode``) and the student under the autocast of the
    resolved ``precision``, computes ``methods.loss_terms`` in float32, and steps the optimiser (through
    a grad scaler for fp16). Returns detached float32 tensors, without any host sync.
    """

    def __init__(self, student: torch.nn.Module, teachers: Sequence[Teacher], method: Method,
                 opt: torch.optim.Optimizer, device: torch.device, precision: str = "fp32",
                 fold_teachers: bool = True, compile: bool = False, cache: "TeacherCache | None" = None):
        self.student, self.method, self.opt = student, method, opt
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

    def __call__(self, xb: torch.Tensor, yb: torch.Tensor | None, kd_x: torch.Tensor | None = None):
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
        terms = loss_terms(method, feats_s, logits, yb, teacher_out, kd_feats, kd_teacher_out)
        loss = sum(terms.values())
        self.opt.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.opt)
        self.scaler.update()
        return loss.detach(), {k: v.detach() for k, v in terms.items()}, logits.detach()


class TeacherCache:
    """Frozen teachers' outputs on batches already seen, shared by the students trained in one process.

    Students of one seed see the same batches (the same augmentations), so the students of a grid at
    E = 1, 2, 4, 8 teachers need each teacher's outputs only once per batch. Entries are keyed by the teacher,
    the features kept and a hash of the batch's bytes (one host copy per step: for CPU grids), so a cached output
    is used only for the very batch it was computed on; the least recently used go past ``max_bytes``.
    """

    def __init__(self, max_bytes: int = 2 * 1024 ** 3):
        from collections import OrderedDict

        self.entries, self.max_bytes, self.bytes, self.hits, self.misses = OrderedDict(), max_bytes, 0, 0, 0

    @staticmethod
    def fingerprint(x: torch.Tensor) -> bytes:
        import hashlib

        return hashlib.blake2b(x.detach().cpu().numpy().tobytes(), digest_size=16).digest() + str(tuple(x.shape)).encode()

    def get(self, key):
        hit = self.entries.get(key)
        if hit is None:
            self.misses += 1
            return None
        self.hits += 1
        self.entries.move_to_end(key)
        return hit[0]

    def put(self, key, value):
        size = sum(t.numel() * t.element_size() for t in [*value[0], value[1]])
        self.entries[key] = (value, size)
        self.bytes += size
        while self.bytes > self.max_bytes and len(self.entries) > 1:
            _, (_, old) = self.entries.popitem(last=False)
            self.bytes -= old
        return value


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


def evaluate_accuracy(model: torch.nn.Module, loader: DeviceLoader, autocast=None) -> float:
    """Top-1 accuracy of ``model`` over an evaluation loader, with one host sync at the end.

    ``autocast``: a context to run the model under (the engine passes its training precision's).
    """
    correct, n = torch.zeros((), device=loader.device, dtype=torch.long), 0
    with eval_mode(model):
        for xb, yb in loader:
            with autocast or nullcontext():
                logits = model(xb)
            correct += (logits.argmax(1) == yb).sum()
            n += len(yb)
    return float(correct) / max(n, 1)


@torch.no_grad()
def ensemble_accuracy(models: Sequence[torch.nn.Module], loader: DeviceLoader) -> float:
    """Top-1 accuracy of an ensemble that averages its members' softmax probabilities."""
    for m in models:
        m.eval()
    correct, n = torch.zeros((), device=loader.device), 0
    for xb, yb in loader:
        probs = torch.stack([F.softmax(m(xb).float(), dim=1) for m in models]).mean(0)
        correct += (probs.argmax(1) == yb).sum()
        n += len(yb)
    return float(correct) / max(n, 1)


class _Probe:
    """A fixed, class-balanced batch of test images on which the student's kernel is compared with the teachers'."""

    def __init__(self, x: torch.Tensor | None, teachers: Sequence[Teacher], method: Method | None = None):
        self.x = x
        h_t = [embedding(t.model, x) for t in teachers] if x is not None else []
        self.h_t = method.kernel_target(h_t) if method is not None and h_t else h_t
        self.K_t = ensemble_kernel(self.h_t) if self.h_t else None

    def metrics(self, student) -> dict:
        if self.K_t is None:
            return {}
        h_s = embedding(student, self.x)
        return {"kernel_alignment": float(kernel_alignment(feature_kernel(h_s), self.K_t)),
                "kernel_distance": float(fkd_loss(h_s, self.h_t)),
                "feature_norm": float(h_s.norm(dim=1).mean())}


def _probe(test_data, size: int, teachers, device, method: Method | None = None) -> _Probe:
    """The probe batch, with the teachers' kernel as ``method`` targets it (the mean of their kernels, or concat)."""
    if not teachers or size < 2:
        return _Probe(None, ())
    idx = per_class_indices(test_data.y, max(1, size // len(test_data.classes)))[:size]
    x = DeviceLoader(test_data.X[idx], test_data.y[idx], len(idx), train=False, mean=test_data.mean,
                     std=test_data.std, device=device)
    return _Probe(next(iter(x))[0], teachers, method)


def _kd_loader(method, recipe, kd_data, device, seed):
    if kd_data is None or not method.needs_teacher:
        return None
    return DeviceLoader(kd_data.X, None, recipe.kd_batch_size or recipe.batch_size, train=True,
                        mean=kd_data.mean, std=kd_data.std, device=device, seed=seed + 7919)


def _subset(X, y, n):
    if not n or n >= len(X):
        return X, y
    idx = torch.randperm(len(X), generator=torch.Generator().manual_seed(0))[:n]
    return X[idx], (y[idx] if y is not None else None)


def _check_setup(method, teachers, train_data, out_dir, resume, overwrite):
    if method.needs_teacher and not teachers:
        raise ValueError(f"method {method.name!r} distils from teachers, but none were given")
    if method.needs_label_space:
        for t in teachers:
            if list(t.classes) != list(train_data.classes):
                raise ValueError(
                    f"KD needs teacher and student to share a label space, but teacher {t.arch} was trained on "
                    f"{t.dataset} ({len(t.classes)} classes) and the student on {train_data.name} "
                    f"({len(train_data.classes)} classes). Across datasets use one of {', '.join(LABEL_FREE)}.")
    if not resume and not overwrite and (out_dir / CHECKPOINT).exists():
        raise FileExistsError(f"{out_dir} already holds a run; continue it with resume=True (--resume) "
                              f"or start again with overwrite=True (--overwrite)")


def _stop_if_not_finite(stats: EpochStats, epoch, ckpt_path, state):
    """Raise if a step of this epoch had a non-finite loss (one host sync: reads ``stats.first_bad``)."""
    step = int(stats.first_bad)
    if step < 0:
        return
    detail = ", ".join(f"{k}={float(v) / stats.seen:.4g}" for k, v in stats.sums.items())
    last = f"epoch {state['epoch'] + 1} in {ckpt_path}" if ckpt_path.exists() else "none yet"
    raise FloatingPointError(f"non-finite loss detected in epoch {epoch + 1} at step {step + 1} (epoch means so "
                             f"far: {detail}); training stopped. Last good checkpoint: {last}. Lower the learning "
                             f"rate or the loss weights, then resume.")


def _save_checkpoint(path: Path, model, opt, sched, state, scaler) -> None:
    """Write the resume checkpoint atomically, as plain data (tensors, numbers, lists, dicts: ``fkdlib.models.checkpoints``)."""
    _safe.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(), "torch_rng": torch.get_rng_state(), **state}, path)


def _load_checkpoint(path: Path, model, opt, sched, scaler) -> dict:
    """Restore a resume checkpoint, read with ``weights_only=True`` (one that could run code is refused)."""
    ckpt = _safe.safe_load(path)
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    if ckpt.get("scaler"):
        scaler.load_state_dict(ckpt["scaler"])
    torch.set_rng_state(ckpt["torch_rng"])
    return {k: ckpt[k] for k in ("epoch", "history", "wall_time_s")}


def _write_record(out_dir, config, state, seed, device, status) -> dict:
    result = {"status": status, "epochs_done": state["epoch"] + 1, "history": state["history"],
              "final": state["history"][-1] if state["history"] else {}, "wall_time_s": state["wall_time_s"]}
    prov = provenance(seed, config, device)
    write_record(out_dir / RECORD, result, prov)
    return {"result": result, "provenance": prov}
