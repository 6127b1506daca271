"""The training engine: teachers, students, every method, ensembles, cross-dataset, resumable runs.

One visible path: data -> teachers -> student -> loss (``methods.loss_terms``) -> metrics -> run record.
A method that owns modules (``Method.build``: CRD's heads and memory) has them trained in the student's SGD and
saved in the checkpoint, and its batches carry their example indices (``method.needs_indices``).
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
from collections.abc import Sequence
from pathlib import Path

import torch

from ..data.loader import DeviceLoader
from ..device import get_device
from ..distill.checks import finite_checks
from ..distill.methods import LABEL_FREE, Method
from ..models import checkpoints as _safe
from ..models import create_model
from ..models.teachers import Teacher, save_model
from ..records import CHECKPOINT, MODEL, RECORD, pin_git_state, provenance, write_record
from . import amp
from .evaluate import evaluate_accuracy
from .evaluate import probe as make_probe
from .progress import bar
from .recipes import Recipe
from .step import EpochStats, TrainStep
from .teacher_cache import TeacherCache


def train(arch: str, train_data, test_data, recipe: Recipe, out_dir: str | Path, method: Method | None = None,
          teachers: Sequence[Teacher] = (), seed: int = 0, resume: bool = False, overwrite: bool = False,
          kd_data=None, val_data=None, device: torch.device | str | None = None, progress: bool | None = None,
          nan_check_every: int | None = None, precision: str = "auto", fold_teachers: bool = True,
          compile: bool = False, teacher_cache: "TeacherCache | None" = None) -> dict:
    """Train a network ``arch`` on ``train_data`` (a teacher or plain student when ``method`` is none,
    else a distilled student of ``teachers``) and return its run record ``{"result", "provenance"}``.

    ``val_data`` (optional) is scored after every epoch as ``val_acc``: the split every choice of weights
    is made on, never the test set (``recipe.eval_last`` limits both to the last epochs, ``recipe.eval_every`` adds
    every N-th). Wherever they are scored, so is the clean training accuracy ``train_clean_acc``: the training images
    in evaluation mode, without augmentation (how well the student fits what it learns from).
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
    _check_setup(method, teachers, train_data, out_dir, resume, overwrite, kd_data, recipe)
    device = get_device(device) if not isinstance(device, torch.device) else device
    torch.manual_seed(seed)
    student = create_model(arch, num_classes=len(train_data.classes)).to(device, memory_format=torch.channels_last)
    for t in teachers:
        t.model.to(device, memory_format=torch.channels_last)
    X, y = _subset(train_data.X, train_data.y, recipe.train_subset)
    own = _method_modules(method, student, teachers, X, y, seed)
    trainable = [*student.parameters(), *(own.parameters() if own is not None else ())]
    opt = torch.optim.SGD(trainable, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=list(recipe.milestones), gamma=recipe.lr_decay)
    precision = amp.resolve_precision(precision, device)
    step_fn = TrainStep(student, teachers if method.needs_teacher else (), method, opt, device, precision,
                        fold_teachers=fold_teachers, compile=compile, cache=teacher_cache, modules=own)

    loader = DeviceLoader(X, y, recipe.batch_size, train=True, mean=train_data.mean, std=train_data.std,
                          device=device, seed=seed, return_index=method.needs_indices)
    if kd_data is None and recipe.kd_batch_size:
        kd_data = train_data
    kd_loader = _kd_loader(method, recipe, kd_data, device, seed)
    test_X, test_y = _subset(test_data.X, test_data.y, recipe.test_subset)
    test_loader = DeviceLoader(test_X, test_y, recipe.eval_batch_size, train=False,
                               mean=test_data.mean, std=test_data.std, device=device)
    clean_loader = DeviceLoader(X, y, recipe.eval_batch_size, train=False, mean=train_data.mean, std=train_data.std,
                                device=device)
    val_loader = None if val_data is None else DeviceLoader(val_data.X, val_data.y, recipe.eval_batch_size,
                                                            train=False, mean=val_data.mean, std=val_data.std,
                                                            device=device)
    probe = make_probe(test_data, recipe.probe_size, teachers, device, method)

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
        state = _load_checkpoint(ckpt_path, student, opt, sched, step_fn.scaler, own)
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
            for step, (xb, yb, *index) in enumerate(steps_bar):  # index: [idx] when the method reads it
                kd_x = next(kd_batches)[0] if kd_batches else None
                stats.add(step, yb, *step_fn(xb, yb, kd_x, *index))
                if (step + 1) % check_every == 0 or step + 1 == len(loader):
                    _stop_if_not_finite(stats, epoch, ckpt_path, state)
        lr = opt.param_groups[0]["lr"]
        sched.step()
        row = {"epoch": epoch + 1, "lr": lr, **stats.means()}
        if _scored(recipe, epoch):
            row["train_clean_acc"] = evaluate_accuracy(student, clean_loader, step_fn.autocast)
            if val_loader is not None:
                row["val_acc"] = evaluate_accuracy(student, val_loader, step_fn.autocast)
            row["test_acc"] = evaluate_accuracy(student, test_loader, step_fn.autocast)
        row.update(probe.metrics(student))
        state["wall_time_s"] += time.perf_counter() - t0
        row["wall_time_s"] = state["wall_time_s"]
        state["epoch"], state["history"] = epoch, state["history"] + [row]
        _save_checkpoint(ckpt_path, student, opt, sched, state, step_fn.scaler, own)
        _write_record(out_dir, config, state, seed, device, status="running")
        epochs_bar.set_postfix(loss=f"{row['train_loss']:.3f}",
                               **{k: f"{row[k]:.1%}" for k in ("val_acc", "test_acc") if k in row})

    save_model(out_dir / MODEL, student, arch, train_data.name, list(train_data.classes),
               extra={"provenance": provenance(seed, config, device)})
    return _write_record(out_dir, config, state, seed, device, status="done")


def _scored(recipe: Recipe, epoch: int) -> bool:
    """Whether epoch ``epoch`` (from 0) scores the validation, test and clean training accuracies."""
    if not recipe.eval_last or epoch >= recipe.epochs - recipe.eval_last:
        return True
    return bool(recipe.eval_every) and (epoch + 1) % recipe.eval_every == 0


def _method_modules(method, student, teachers, X, y, seed):
    """What ``method.build`` makes for this run (CRD's heads and memory), on the student's device, or ``None``."""
    if not method.owns_modules:
        return None
    device = next(student.parameters()).device
    own = method.build(_feature_widths(student, X), [_feature_widths(t.model, X) for t in teachers], y, seed)
    return own.to(device)


def _feature_widths(net, X) -> list[int]:
    """The per-example width of each of ``net``'s features, from one forward pass of two blank images in eval mode
    (nothing in ``net`` changes, and no random number is drawn)."""
    was_training = net.training
    net.eval()
    with torch.no_grad():
        feats, _ = net(torch.zeros(2, *X.shape[1:], device=next(net.parameters()).device), is_feat=True)
    net.train(was_training)
    return [f[0].numel() for f in feats]


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


def _check_setup(method, teachers, train_data, out_dir, resume, overwrite, kd_data, recipe):
    if method.needs_teacher and not teachers:
        raise ValueError(f"method {method.name!r} distils from teachers, but none were given")
    if method.needs_indices and (kd_data is not None or recipe.kd_batch_size):
        raise ValueError(f"method {method.name!r} contrasts the training examples themselves (by their indices), "
                         f"so its term cannot take a batch of its own (kd_data, kd_batch_size)")
    if method.needs_label_space:
        for t in teachers:
            if list(t.classes) != list(train_data.classes):
                raise ValueError(
                    f"{method.spec.label} needs teacher and student to share a label space, but teacher {t.arch} was "
                    f"trained on {t.dataset} ({len(t.classes)} classes) and the student on {train_data.name} "
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


def _save_checkpoint(path: Path, model, opt, sched, state, scaler, own=None) -> None:
    """Write the resume checkpoint atomically, as plain data (tensors, numbers, lists, dicts: ``fkdlib.models.checkpoints``).

    A method's own modules (``own``) go in too: their parameters, buffers and extra state (CRD's generator)."""
    extra = {"method_modules": own.state_dict()} if own is not None else {}
    _safe.save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                "scaler": scaler.state_dict(), "torch_rng": torch.get_rng_state(), **extra, **state}, path)


def _load_checkpoint(path: Path, model, opt, sched, scaler, own=None) -> dict:
    """Restore a resume checkpoint, read with ``weights_only=True`` (one that could run code is refused)."""
    ckpt = _safe.safe_load(path)
    model.load_state_dict(ckpt["model"])
    if own is not None:
        own.load_state_dict(ckpt["method_modules"])
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
