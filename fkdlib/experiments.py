"""One function per paper experiment (docs/paper.md §3); ``python -m fkdlib experiment NAME --scale ...`` calls them.

Each runs a grid of (method, seed) runs through ``fkdlib.train.train``: a finished run (its
``result.json`` says done) is skipped, a killed one resumes from its checkpoint. Every run has its own
folder under ``results/<experiment>/<scale>/`` and the summary is computed from those files only.
"""
from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import torch

from . import comparison, config
from .data import load_train_test
from .methods import Method
from .paths import results_dir
from .progress import bar
from .recipes import get_recipe
from .results import load_result, mean_ci95, mean_present, paired_ci95, provenance, write_record
from .loader import DeviceLoader
from .teachers import load_teacher
from .train import MODEL, RECORD, ensemble_accuracy, train


def experiment_dir(name: str, scale: str) -> Path:
    """``results/<name>/<scale>/`` (smoke: under the git-ignored ``results/smoke/``)."""
    return results_dir(scale) / name / scale


def method_comparison(scale: str | None = None, data_root=None, device=None, progress: bool | None = None,
                      precision: str = "auto") -> dict:
    """docs/paper.md §3.1 at our scale (``fkdlib.comparison``): one teacher; per method (none, KD, RKD, SP, FKD without
    FR, FKD, FR only) weights chosen on a held-out validation split, then paired seeds of the chosen weights.

    Returns the summary (also written to ``summary.json``): the teacher, the protocol checks, every tuning table,
    per method the test accuracy of each seed with its mean and 95% CI, and the paired differences.
    When every run is already done (committed results), no data is loaded and nothing is trained.
    """
    return comparison.run(scale, data_root=data_root, device=device, progress=progress, precision=precision)


def fkd_in_practice(scale: str | None = None, data_root=None, device=None, progress: bool | None = None,
                    precision: str = "auto") -> dict:
    """Notebook 03: the method comparison's runs that show FKD's two knobs, ``{label: {seed: run record}}``.

    FKD without FR at each lambda_KD of the tuning grid on the first three seeds (the kernel term alone), the
    plain student, FKD with its chosen regulariser and the FR-only control: every record's per-epoch history
    holds the kernel alignment with the teacher, the kernel distance, the feature norm and every loss term.
    """
    scale = config.get_scale(scale)
    method_comparison(scale, data_root, device, progress, precision)
    grid = comparison.Grid(scale, experiment_dir("method_comparison", scale))
    chosen, _, _ = grid.choices()
    seeds = grid.seeds[:grid.cfg.get("study_seeds", 3)]
    runs = {label: chosen[m] for label, m in [("no distillation", "none"), ("FR only", "fr"),
                                              ("FKD (chosen weights)", "fkd")] if m in chosen}
    runs.update({f"FKD without FR, lambda_KD={m.lam_kd:g}": m
                 for m in comparison.candidates("fkd-nofr", grid.tuning, chosen)})
    records = {label: {s: grid.record(m, s) for s in seeds} for label, m in runs.items()}
    _summarize_fkd_in_practice(scale, grid, runs, records)
    return records


def _summarize_fkd_in_practice(scale: str, grid, runs: dict, records: dict) -> None:
    """``results/fkd_in_practice/<scale>/summary.json``: per run label its weights, run folders, test accuracy per
    seed (mean, 95% CI), final kernel distance and feature norm, and its paired difference from the plain student."""
    def acc(label):
        return {s: 100 * r["result"]["final"]["test_acc"] for s, r in records[label].items() if r is not None}

    rows = {}
    for label, method in runs.items():
        finals = [r["result"]["final"] for r in records[label].values() if r is not None]
        mean, ci = mean_ci95(list(acc(label).values())) if finals else (float("nan"), float("nan"))
        rows[label] = {"method": method.to_dict(), "runs": [str(grid.run_dir(method, s).relative_to(grid.out))
                                                            for s in records[label]],
                       "test_acc": acc(label), "mean": mean, "ci95": ci,
                       "kernel_distance": mean_present(f.get("kernel_distance") for f in finals),
                       "feature_norm": mean_present(f.get("feature_norm") for f in finals)}
        if label != "no distillation" and finals:
            rows[label]["minus_plain"] = paired_ci95(acc(label), acc("no distillation"))
    write_record(experiment_dir("fkd_in_practice", scale) / "summary.json",
                 {"experiment": "fkd_in_practice", "scale": scale, "runs_in": f"results/method_comparison/{scale}/",
                  "rows": rows},
                 provenance(config={"sizes": grid.cfg}))


def ensemble_size(scale: str | None = None, data_root=None, device=None, progress: bool | None = None) -> dict:
    """docs/paper.md §3.2 at our scale: one architecture for every teacher and student; E teachers, E in ``cfg["E"]``.

    Trains max(E) teachers (seeds 100, 101, ...), then per E and seed a KD and an FKD student of the first
    E teachers, and students without distillation; records each teacher ensemble's own accuracy (mean of
    the teachers' softmax). Returns the summary (also ``summary.json``), computed from the run files.
    """
    scale = config.get_scale(scale)
    cfg = config.sizes("ensemble_size", scale)
    out = experiment_dir("ensemble_size", scale)
    teacher_dirs = [out / f"teacher_s{100 + t}" for t in range(max(cfg["E"]))]
    students = [("none", s, out / f"none_s{s}", Method("none"), 0) for s in cfg["seeds"]]
    students += [(m, s, out / f"{m}_E{E}_s{s}", Method(m), E) for m in ("kd", "fkd") for E in cfg["E"]
                 for s in cfg["seeds"]]
    ens_path = out / "teacher_ensembles.json"
    if not (ens_path.exists() and all(_done(d) for d in teacher_dirs + [spec[2] for spec in students])):
        train_d, test_d = load_train_test(cfg["dataset"], data_root, cfg.get("download", False),
                                          **cfg.get("data_kw", {}))
        recipe = get_recipe(cfg["preset"], **cfg["recipe"])
        teacher_recipe = get_recipe(cfg["preset"], **cfg.get("teacher_recipe", cfg["recipe"]))
        _run_grid([((cfg["arch"], train_d, test_d, teacher_recipe, d), dict(seed=100 + t, device=device,
                                                                            progress=progress))
                   for t, d in enumerate(teacher_dirs)], progress, "teachers")
        teachers = [load_teacher(d / MODEL, device=device or "cpu") for d in teacher_dirs]
        loader = DeviceLoader(test_d.X, test_d.y, recipe.eval_batch_size, train=False, mean=test_d.mean,
                              std=test_d.std, device=device)
        accs = {E: 100 * ensemble_accuracy([t.model for t in teachers[:E]], loader) for E in cfg["E"]}
        write_record(ens_path, {"E": cfg["E"], "test_acc": [accs[E] for E in cfg["E"]]},
                     provenance(config={"sizes": cfg, "teachers": [str(d.name) for d in teacher_dirs]}))
        _run_grid([((cfg["arch"], train_d, test_d, recipe, run_dir),
                    dict(method=method, teachers=teachers[:E] if E else teachers[:1], seed=seed, device=device,
                         progress=progress))
                   for _, seed, run_dir, method, E in students], progress, "ensemble students")
    return summarize_ensemble_size(scale)


def summarize_ensemble_size(scale: str) -> dict:
    """Read every run of the ensemble-size grid at ``scale`` and write ``summary.json``."""
    cfg = config.sizes("ensemble_size", scale)
    out = experiment_dir("ensemble_size", scale)

    def cell(pattern):
        return _seed_cell([out / pattern.format(s=s) for s in cfg["seeds"]])

    ens = load_result(out / "teacher_ensembles.json")["result"]
    summary = {"experiment": "ensemble_size", "scale": scale, "arch": cfg["arch"], "E": cfg["E"],
               "data": load_result(out / "teacher_s100" / RECORD)["provenance"]["config"]["data_label"],
               "none": cell("none_s{s}"), "teacher_ensemble": ens["test_acc"],
               "kd": [cell(f"kd_E{E}_s{{s}}") for E in cfg["E"]], "fkd": [cell(f"fkd_E{E}_s{{s}}") for E in cfg["E"]]}
    write_record(out / "summary.json", summary, provenance(config={"sizes": cfg}))
    return summary


def cross_dataset(scale: str | None = None, data_root=None, device=None, progress: bool | None = None) -> dict:
    """docs/paper.md §3.3 at our scale: a teacher trained on one label space distils into students on another.

    As the paper did: for each label-free method, lambda_KD and the learning rate are chosen on a held-out
    validation split of the students' training set (``cfg["val_size"]`` images; the multipliers
    ``cfg["lam_grid"]`` of each method's default weight times the rates ``cfg["lr_grid"]``), then students are
    retrained on the full training set with the best pair, one per seed. A variant gives the kernel term its
    own larger batch drawn from an unlabelled pool (STL-10 style). KD is not run: it needs a shared label
    space, and ``train`` refuses it (notebook 06 shows the error).
    """
    scale = config.get_scale(scale)
    cfg = config.sizes("cross_dataset", scale)
    out = experiment_dir("cross_dataset", scale)
    teacher_dir = out / "teacher"
    tune = _tuning_runs(cfg, out)
    if not all(_done(d) for d in [teacher_dir] + [d for *_, d in tune]):
        data = _cross_data(cfg, data_root)
        _run_once(cfg["teacher"], data["teacher_train"], data["teacher_test"],
                  get_recipe(cfg["preset"], **cfg["teacher_recipe"]), teacher_dir, seed=0, device=device,
                  progress=progress)
        teacher = load_teacher(teacher_dir / MODEL, device=device or "cpu")
        _run_grid([((cfg["student"], data["fit"], data["val"], get_recipe(cfg["preset"], **dict(cfg["recipe"], lr=lr)),
                     run_dir),
                    dict(teachers=[teacher], seed=0, method=_scaled_method(m, mult), device=device, progress=progress))
                   for m, mult, lr, run_dir in tune], progress, "tuning lambda_KD and lr")
    best = _chosen(_tuning_table(tune))
    finals = [(m, s, out / f"{m}_s{s}") for m in ["none", *cfg["methods"], "fkd-unlabelled"] for s in cfg["seeds"]]
    if not all(_done(run_dir) for *_, run_dir in finals):
        data = _cross_data(cfg, data_root)
        teacher = load_teacher(teacher_dir / MODEL, device=device or "cpu")
        jobs = []
        for name, seed, run_dir in finals:
            kd = name == "fkd-unlabelled"
            m = name.removesuffix("-unlabelled")
            chosen = best[m]
            recipe = get_recipe(cfg["preset"], **dict(cfg["recipe"], lr=chosen["lr"]),
                                kd_batch_size=cfg["kd_batch_size"] if kd else None)
            jobs.append(((cfg["student"], data["train"], data["test"], recipe, run_dir),
                         dict(method=_scaled_method(m, chosen["multiplier"]), teachers=[teacher], seed=seed,
                              kd_data=data["unlabelled"] if kd else None, device=device, progress=progress)))
        _run_grid(jobs, progress, "cross-dataset students")
    return summarize_cross_dataset(scale)


def _tuning_runs(cfg: dict, out: Path) -> list[tuple]:
    """``(method, multiplier, lr, run_dir)`` of every validation run: each label-free method at each multiplier of
    its default weight and each lr, and the student without distillation (multiplier None) at each lr. Run folders
    are ``fkd_x0.1`` at the recipe's own lr and ``fkd_x0.1_lr0.1`` at another; ``none``, ``none_lr0.1``."""
    base_lr = get_recipe(cfg["preset"], **cfg["recipe"]).lr
    runs = []
    for m in ["none", *cfg["methods"]]:
        for mult in [None] if m == "none" else cfg["lam_grid"]:
            for lr in cfg.get("lr_grid") or [base_lr]:
                name = m + ("" if mult is None else f"_x{mult:g}") + ("" if lr == base_lr else f"_lr{lr:g}")
                runs.append((m, mult, lr, out / "tuning" / name))
    return runs


def _tuning_table(tune: list[tuple]) -> dict:
    """Per method, every tuning run of ``tune`` as ``{"multiplier", "lr", "val_acc"}``, in grid order."""
    table = {}
    for m, mult, lr, run_dir in tune:
        table.setdefault(m, []).append({"multiplier": mult, "lr": lr, "val_acc": _final_acc(run_dir)})
    return table


def _chosen(table: dict) -> dict:
    """Per method, the first entry of a ``_tuning_table`` with the best validation accuracy."""
    return {m: max(tries, key=lambda t: t["val_acc"]) for m, tries in table.items()}


def _scaled_method(name: str, multiplier: float | None) -> Method:
    return Method(name) if multiplier is None else Method(name, lam_kd=multiplier * Method(name).lam_kd)


def summarize_cross_dataset(scale: str) -> dict:
    """Read the cross-dataset runs at ``scale`` and write ``summary.json``: the validation accuracy of every
    (multiplier, lr) pair tried, the pair chosen per method, and the retrained students' test accuracies."""
    cfg = config.sizes("cross_dataset", scale)
    out = experiment_dir("cross_dataset", scale)
    rows = {m: _seed_cell([out / f"{m}_s{s}" for s in cfg["seeds"]])
            for m in ["none", *cfg["methods"], "fkd-unlabelled"]}
    tuning = _tuning_table(_tuning_runs(cfg, out))
    chosen = _chosen(tuning)
    chosen["fkd-unlabelled"] = chosen["fkd"]
    teacher = load_result(out / "teacher" / RECORD)
    student_cfg = load_result(out / f"none_s{cfg['seeds'][0]}" / RECORD)["provenance"]["config"]
    summary = {"experiment": "cross_dataset", "scale": scale, "teacher": cfg["teacher"], "student": cfg["student"],
               "teacher_classes": teacher["provenance"]["config"]["classes"], "student_classes": student_cfg["classes"],
               "data": student_cfg["data_label"], "teacher_test_acc": 100 * teacher["result"]["final"]["test_acc"],
               "tuning": tuning, "chosen": chosen, "methods": rows}
    write_record(out / "summary.json", summary, provenance(config={"sizes": cfg}))
    return summary


def _cross_data(cfg, data_root) -> dict:
    """Teacher and student label spaces from one dataset, the students' validation split and unlabelled pool."""
    kw = dict(cfg.get("data_kw", {}))
    teacher_train, teacher_test = load_train_test(cfg.get("teacher_dataset", cfg["dataset"]), data_root,
                                                  cfg.get("download", False), classes=cfg["teacher_classes"], **kw)
    train, test = load_train_test(cfg["dataset"], data_root, cfg.get("download", False),
                                  classes=cfg["student_classes"], **kw)
    if cfg.get("student_subset"):
        train = train.subset(torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[: cfg["student_subset"]])
    fit, val = train.train_val(cfg["val_size"], seed=0)
    everything, _ = load_train_test(cfg["dataset"], data_root, cfg.get("download", False), **kw)
    pool = everything.subset(torch.randperm(len(everything), generator=torch.Generator().manual_seed(1))[: cfg["unlabelled_size"]])
    return {"teacher_train": teacher_train, "teacher_test": teacher_test, "train": train, "test": test, "fit": fit,
            "val": val, "unlabelled": pool}


def _seed_cell(run_dirs) -> dict:
    """Final test accuracies (%) of the finished runs among ``run_dirs``: values, mean, 95% CI, count."""
    accs = [_final_acc(d) for d in run_dirs if _done(d)]
    mean, ci = mean_ci95(accs) if accs else (float("nan"), float("nan"))
    return {"test_acc": accs, "mean": mean, "ci95": ci, "n": len(accs)}


def _final_acc(run_dir: Path) -> float:
    return 100 * load_result(run_dir / RECORD)["result"]["final"]["test_acc"]


def _done(run_dir: Path) -> bool:
    record = run_dir / RECORD
    return record.exists() and json.loads(record.read_text())["result"]["status"] == "done"


def _run_once(arch, train_d, test_d, recipe, run_dir: Path, wait: bool = True, **kw) -> dict | None:
    """Train unless ``run_dir`` already holds a finished run; resume a killed one.

    Several processes may work through the same grid (e.g. one per core): a run being trained by
    another live process is waited for (``wait=True``) or skipped, returning None (``wait=False``),
    never trained twice.
    """
    with _run_lock(run_dir, wait=wait) as mine:
        if not mine:
            return None
        if _done(run_dir):
            record = load_result(run_dir / RECORD)
            _check_same_settings(record, run_dir, recipe, kw.get("method") or Method("none"))
            return record
        return train(arch, train_d, test_d, recipe, run_dir, resume=True, **kw)


def _check_same_settings(record: dict, run_dir: Path, recipe, method: Method) -> None:
    """A finished run is reused only if it was made with the recipe and method asked for now: a grid whose
    settings changed (a new lr chosen on validation, edited sizes) must not silently keep stale runs."""
    made = record["provenance"]["config"]
    wanted = json.loads(json.dumps({"recipe": recipe.to_dict(), "method": method.to_dict()}))
    diffs = [f"{part}.{k}: {made[part][k]!r} there, {v!r} now" for part, want in wanted.items()
             for k, v in want.items() if k in made.get(part, {}) and made[part][k] != v]
    if diffs:
        raise RuntimeError(f"{run_dir} holds a finished run made with other settings ({'; '.join(diffs)}). "
                           "Delete that folder to train it again with the new settings, or restore the old ones.")


def _run_grid(jobs, progress, desc: str) -> None:
    """Run every job, a ``(args, kwargs)`` pair for ``_run_once``; those another process is training are
    skipped on the first pass and waited for on the second, so two workers on one grid share it out."""
    busy = [(args, kw) for args, kw in bar(jobs, progress, desc=desc) if _run_once(*args, wait=False, **kw) is None]
    for args, kw in busy:
        _run_once(*args, **kw)


@contextlib.contextmanager
def _run_lock(run_dir: Path, poll_s: float = 5.0, wait: bool = True):
    """Hold ``run_dir/.lock`` (yield True), or yield False at once if a live process holds it and not ``wait``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = run_dir / ".lock"
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            break
        except FileExistsError:
            try:
                pid = int(lock.read_text() or 0)
                os.kill(pid, 0)
            except (ValueError, ProcessLookupError, FileNotFoundError):
                lock.unlink(missing_ok=True)  # left behind by a process that died
                continue
            if not wait:
                yield False
                return
            time.sleep(poll_s)
    try:
        os.write(fd, str(os.getpid()).encode())
        os.close(fd)
        yield True
    finally:
        lock.unlink(missing_ok=True)


EXPERIMENTS = {"method_comparison": method_comparison, "fkd_in_practice": fkd_in_practice,
               "ensemble_size": ensemble_size, "cross_dataset": cross_dataset}
