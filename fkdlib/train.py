"""The training engine: teachers, students, every method, ensembles, cross-dataset, resumable runs.

One visible path: data -> teachers -> student -> loss (``methods.loss_terms``) -> metrics -> run record.
After every epoch it writes an atomic checkpoint and a JSON run record with provenance to ``out_dir``;
``resume=True`` continues a killed run from its last checkpoint and, on a CPU, ends with exactly the
weights of an uninterrupted run. A non-finite loss stops the run with the epoch and step and leaves
the last good checkpoint in place.
"""
from __future__ import annotations

import math
import time
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.nn.functional as F

from .checks import finite_checks
from .data import per_class_indices
from .device import get_device
from .evaluate import embedding, eval_mode
from .kernels import ensemble_kernel, feature_kernel, kernel_alignment
from .loader import DeviceLoader
from .losses import fkd_loss
from .methods import LABEL_FREE, Method, loss_terms
from .models import create_model
from .progress import bar
from .recipes import Recipe
from .results import provenance, write_record
from .teachers import Teacher, save_model

CHECKPOINT = "checkpoints/last.pt"
RECORD = "result.json"
MODEL = "model.pt"


def train(arch: str, train_data, test_data, recipe: Recipe, out_dir: str | Path, method: Method | None = None,
          teachers: Sequence[Teacher] = (), seed: int = 0, resume: bool = False, overwrite: bool = False,
          kd_data=None, device: torch.device | str | None = None, progress: bool | None = None,
          nan_check_every: int | None = None) -> dict:
    """Train a network ``arch`` on ``train_data`` (a teacher or plain student when ``method`` is none,
    else a distilled student of ``teachers``) and return its run record ``{"result", "provenance"}``.

    ``train_data``/``test_data``/``kd_data`` are ``fkdlib.data`` datasets (uint8 ``X``, ``y``,
    ``classes``, ``name``, ``mean``, ``std``). ``kd_data`` (or ``recipe.kd_batch_size``) gives the
    distillation term its own batches, e.g. STL-10's unlabelled images. KD across label spaces is refused
    before training starts.
    """
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

    X, y = _subset(train_data.X, train_data.y, recipe.train_subset)
    loader = DeviceLoader(X, y, recipe.batch_size, train=True, mean=train_data.mean, std=train_data.std,
                          device=device, seed=seed)
    if kd_data is None and recipe.kd_batch_size:
        kd_data = train_data
    kd_loader = _kd_loader(method, recipe, kd_data, device, seed)
    test_X, test_y = _subset(test_data.X, test_data.y, recipe.test_subset)
    test_loader = DeviceLoader(test_X, test_y, recipe.eval_batch_size, train=False,
                               mean=test_data.mean, std=test_data.std, device=device)
    probe = _probe(test_data, recipe.probe_size, teachers, device)

    config = {"arch": arch, "train_data": train_data.name, "test_data": test_data.name,
              "data_label": getattr(train_data, "label", train_data.name),
              "kd_data": getattr(kd_data, "name", None), "num_train": len(X), "num_test": len(test_X),
              "classes": list(train_data.classes),
              "recipe": recipe.to_dict(), "method": method.to_dict(), "seed": seed,
              "teachers": [{"arch": t.arch, "dataset": t.dataset, "source": t.source} for t in teachers]}
    state = {"epoch": -1, "history": [], "wall_time_s": 0.0}
    ckpt_path = out_dir / CHECKPOINT
    if resume and ckpt_path.exists():
        state = _load_checkpoint(ckpt_path, student, opt, sched)
    check_every = nan_check_every or (1 if device.type == "cpu" else 50)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

    epochs_bar = bar(range(state["epoch"] + 1, recipe.epochs), progress, desc=f"{arch} {method.name}",
                     initial=state["epoch"] + 1, total=recipe.epochs)
    for epoch in epochs_bar:
        t0 = time.perf_counter()
        loader.set_epoch(epoch)
        # the kernel term's own stream: batch t depends only on t, so a resumed epoch replays exactly
        kd_batches = kd_loader.forever(start_step=epoch * len(loader)) if kd_loader else None
        student.train()
        sums: dict[str, torch.Tensor] = {}
        correct = torch.zeros((), device=device)
        seen = 0
        steps_bar = bar(loader, progress, desc=f"epoch {epoch + 1}", leave=False)
        with finite_checks(False):
            for step, (xb, yb) in enumerate(steps_bar):
                kd_x = next(kd_batches)[0] if kd_batches else None
                with autocast:
                    terms, logits = _step_terms(student, teachers, method, xb, yb, kd_x)
                loss = sum(terms.values())
                if (step + 1) % check_every == 0 or step + 1 == len(loader):
                    _stop_if_not_finite(loss, terms, epoch, step, ckpt_path, state)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                for k, v in {"loss": loss, **terms}.items():
                    sums[k] = sums.get(k, 0) + v.detach().float() * len(yb)
                correct += (logits.argmax(1) == yb).sum()
                seen += len(yb)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        row = {"epoch": epoch + 1, "lr": lr, "train_acc": float(correct) / seen,
               **{f"train_{k}": float(v) / seen for k, v in sums.items()},
               "test_acc": evaluate_accuracy(student, test_loader), **probe.metrics(student)}
        state["wall_time_s"] += time.perf_counter() - t0
        row["wall_time_s"] = state["wall_time_s"]
        state["epoch"], state["history"] = epoch, state["history"] + [row]
        _save_checkpoint(ckpt_path, student, opt, sched, state)
        _write_record(out_dir, config, state, seed, device, status="running")
        epochs_bar.set_postfix(loss=f"{row['train_loss']:.3f}", test_acc=f"{row['test_acc']:.1%}")

    save_model(out_dir / MODEL, student, arch, train_data.name, list(train_data.classes),
               extra={"provenance": provenance(seed, config, device)})
    return _write_record(out_dir, config, state, seed, device, status="done")


def _step_terms(student, teachers, method, xb, yb, kd_x):
    feats_s, logits = student(xb, is_feat=True)
    teacher_out, kd_feats, kd_teacher_out = [], None, None
    if method.needs_teacher:
        with torch.no_grad():
            teacher_out = [t.model(xb, is_feat=True) for t in teachers] if method.name in ("kd",) or kd_x is None else []
            if kd_x is not None:
                kd_teacher_out = [t.model(kd_x, is_feat=True) for t in teachers]
        if kd_x is not None:
            kd_feats = student(kd_x, is_feat=True)[0]
    return loss_terms(method, feats_s, logits, yb, teacher_out, kd_feats, kd_teacher_out), logits


def evaluate_accuracy(model: torch.nn.Module, loader: DeviceLoader) -> float:
    """Top-1 accuracy of ``model`` over an evaluation loader, with one host sync at the end."""
    correct, n = torch.zeros((), device=loader.device), 0
    with eval_mode(model):
        for xb, yb in loader:
            correct += (model(xb).argmax(1) == yb).sum()
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

    def __init__(self, x: torch.Tensor | None, teachers: Sequence[Teacher]):
        self.x = x
        self.h_t = [embedding(t.model, x) for t in teachers] if x is not None else []
        self.K_t = ensemble_kernel(self.h_t) if self.h_t else None

    def metrics(self, student) -> dict:
        if self.K_t is None:
            return {}
        h_s = embedding(student, self.x)
        return {"kernel_alignment": float(kernel_alignment(feature_kernel(h_s), self.K_t)),
                "kernel_distance": float(fkd_loss(h_s, self.h_t)),
                "feature_norm": float(h_s.norm(dim=1).mean())}


def _probe(test_data, size: int, teachers, device) -> _Probe:
    if not teachers or size < 2:
        return _Probe(None, ())
    idx = per_class_indices(test_data.y, max(1, size // len(test_data.classes)))[:size]
    x = DeviceLoader(test_data.X[idx], test_data.y[idx], len(idx), train=False, mean=test_data.mean,
                     std=test_data.std, device=device)
    return _Probe(next(iter(x))[0], teachers)


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
    if method.name == "kd":
        for t in teachers:
            if list(t.classes) != list(train_data.classes):
                raise ValueError(
                    f"KD needs teacher and student to share a label space, but teacher {t.arch} was trained on "
                    f"{t.dataset} ({len(t.classes)} classes) and the student on {train_data.name} "
                    f"({len(train_data.classes)} classes). Across datasets use one of {', '.join(LABEL_FREE)}.")
    if not resume and not overwrite and (out_dir / CHECKPOINT).exists():
        raise FileExistsError(f"{out_dir} already holds a run; continue it with resume=True (--resume) "
                              f"or start again with overwrite=True (--overwrite)")


def _stop_if_not_finite(loss, terms, epoch, step, ckpt_path, state):
    if math.isfinite(float(loss.detach())):
        return
    detail = ", ".join(f"{k}={float(v.detach()):.4g}" for k, v in terms.items())
    last = f"epoch {state['epoch'] + 1} in {ckpt_path}" if ckpt_path.exists() else "none yet"
    raise FloatingPointError(f"non-finite loss detected in epoch {epoch + 1} at step {step + 1} ({detail}); "
                             f"training stopped. Last good checkpoint: {last}. Lower the learning rate or "
                             f"the loss weights, then resume.")


def _save_checkpoint(path: Path, model, opt, sched, state) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".pt.tmp")
    torch.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "torch_rng": torch.get_rng_state(), **state}, tmp)
    tmp.replace(path)


def _load_checkpoint(path: Path, model, opt, sched) -> dict:
    ckpt = torch.load(path, map_location="cpu", weights_only=False)
    model.load_state_dict(ckpt["model"])
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    torch.set_rng_state(ckpt["torch_rng"])
    return {k: ckpt[k] for k in ("epoch", "history", "wall_time_s")}


def _write_record(out_dir, config, state, seed, device, status) -> dict:
    result = {"status": status, "epochs_done": state["epoch"] + 1, "history": state["history"],
              "final": state["history"][-1] if state["history"] else {}, "wall_time_s": state["wall_time_s"]}
    prov = provenance(seed, config, device)
    write_record(out_dir / RECORD, result, prov)
    return {"result": result, "provenance": prov}
