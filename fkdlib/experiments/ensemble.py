"""The ensemble-size experiment (docs/paper.md §3.2): how a student gains from E = 1, 2, 4, 8 teachers.

As the paper: one architecture everywhere; every teacher is trained with the students' own recipe on the
students' own data (the method comparison's protocol, ``comparison_data``), each with its own seed (100, 101, ...).
Per E and seed: a KD student (the mean of the teachers' softened probabilities), an FKD student on the mean of the
teachers' kernels (the paper's rule) and, for E > 1, an FKD student on the kernel of the teachers' concatenated
features (ours, ``Method(ensemble="concat")``; notebook 02), beside plain students of the same seeds. The weights
are those the method comparison chose on validation for the same student on the same data (``config``).

Students of one seed see the same batches, so the grid runs them seed by seed and shares each teacher's outputs
through a ``TeacherCache``: every teacher runs once per batch, not once per student.
"""
from __future__ import annotations

from pathlib import Path

from ..data.loader import DeviceLoader
from ..distill.methods import Method
from ..engine.diversity import diversity
from ..engine.evaluate import ensemble_accuracy
from ..engine.teacher_cache import TeacherCache
from ..models.teachers import load_teacher
from ..records import (MODEL, data_label, done_record, experiment_dir, final, final_metrics, finished, load_result,
                       provenance, run_names, write_record)
from ..stats import mean_ci95, mean_present, paired_ci95
from . import config
from . import runner
from .splits import comparison_data
from .tuning import TunedGrid, ladder, run_name, run_to_summary

EXPERIMENT = "ensemble_size"
ENSEMBLES = "teacher_ensembles.json"  # each teacher ensemble's own test accuracy, per E


def students(cfg: dict, weights: dict | None = None) -> list[tuple[str, Method, int, int]]:
    """``(label, Method, E, seed)`` of every student, seed by seed, most teachers first (E = 0: no teacher), with
    KD's and FKD's ``weights`` (default ``cfg["weights"]``)."""
    w = weights or cfg["weights"]
    jobs = []
    for seed in cfg["seeds"]:
        for E in sorted(cfg["E"], reverse=True):
            jobs += [("kd", Method("kd", **w["kd"]), E, seed), ("fkd", Method("fkd", **w["fkd"]), E, seed)]
            if E > 1:
                jobs.append(("fkd-concat", Method("fkd", ensemble="concat", **w["fkd"]), E, seed))
        jobs.append(("none", Method("none"), 0, seed))
    return jobs


def run_dir(out: Path, method: Method, E: int, seed: int) -> Path:
    """``runs/kd_w0.9_E4_s0``; the plain student ``runs/none_s0``."""
    return out / "runs" / (f"{run_name(method)}_s{seed}" if E == 0 else f"{run_name(method)}_E{E}_s{seed}")


def teacher_dirs(out: Path, cfg: dict) -> list[Path]:
    return [out / "teachers" / f"none_s{s}" for s in cfg["teacher_seeds"][:max(cfg["E"])]]


class EnsembleGrid:
    """The grid's state, read from its folder (``fkdlib.experiments.runner``'s interface): the teachers first, then the teacher
    ensembles' accuracies and the students, seed by seed."""

    experiment = EXPERIMENT

    def __init__(self, scale: str, out: Path, overrides: dict | None = None):
        self.scale, self.out, self.overrides = scale, Path(out), dict(overrides or {})
        self.cfg = config.sizes(self.experiment, scale, **self.overrides)
        self.proto = config.sizes(self.cfg["protocol"], scale)
        self.teacher_dirs = teacher_dirs(self.out, self.cfg)
        self._data = self._teachers = None
        # per process: the students of one seed share their teachers' outputs; at 400 epochs the eight teachers'
        # outputs on one seed's batches are about 2.4 GB, which the cache must hold whole (``grid_cache``)
        self._cache = TeacherCache(3 * 1024 ** 3, 256 * 1024)

    def todo(self) -> list[runner.Run]:
        waiting = [runner.Run(str(d.relative_to(self.out)), "teacher", None, s)
                   for s, d in zip(self.cfg["teacher_seeds"], self.teacher_dirs) if not finished(d)]
        if waiting:
            return waiting
        todo = [] if (self.out / ENSEMBLES).exists() else [runner.Run(ENSEMBLES, "ensembles")]
        return todo + [runner.Run(str(run_dir(self.out, m, E, s).relative_to(self.out)), label, (m, E), s)
                       for label, m, E, s in students(self.cfg) if not finished(run_dir(self.out, m, E, s))]

    def execute(self, run: runner.Run, data_root=None, device=None, progress=None, precision: str = "auto") -> None:
        if self._data is None:
            self._data = comparison_data(self.proto, data_root)
        data, recipe = self._data, config.recipe(self.proto["preset"], **self.proto["student_recipe"])
        common = dict(device=device, progress=progress, val_data=data["val"], precision=precision)
        if run.role == "teacher":
            runner.train_or_reuse(self.proto["student"], data["train"], data["test"], recipe, self.out / run.name,
                                  seed=run.seed, **common)
            return
        teachers = self.teachers(device)
        if run.role == "ensembles":
            loader = DeviceLoader(data["test"].X, data["test"].y, recipe.eval_batch_size, train=False,
                                  mean=data["test"].mean, std=data["test"].std, device=device)
            accs = [100 * ensemble_accuracy([t.model for t in teachers[:E]], loader) for E in self.cfg["E"]]
            write_record(self.out / ENSEMBLES, {"E": self.cfg["E"], "test_acc": accs},
                         provenance(config={"sizes": self.cfg, "teachers": [d.name for d in self.teacher_dirs]}))
            return
        method, E = run.spec
        runner.train_or_reuse(self.proto["student"], data["train"], data["test"], recipe, self.out / run.name,
                              method=method, teachers=teachers[:E] if E else teachers[:1], seed=run.seed,
                              teacher_cache=self._cache, **common)

    def teachers(self, device=None) -> list:
        """The trained teachers, loaded once per process."""
        if self._teachers is None:
            self._teachers = [load_teacher(d / MODEL, device=device or "cpu") for d in self.teacher_dirs]
        return self._teachers

    def summarize(self) -> dict:
        return summarize(self.scale, self.out, self.overrides)


def run(scale: str | None = None, out: Path | None = None, data_root=None, device=None, progress=None,
        precision: str = "auto", overrides: dict | None = None, grid_class: type | None = None, **executor) -> dict:
    """Train what the grid still needs (teachers, the teacher ensembles' accuracies, students), then summarise;
    ``grid_class``: ``EnsembleGrid`` (the default) or ``ConvergedEnsembleGrid``; ``executor`` as ``comparison.run``
    (``workers=N``, ``ray=...``)."""
    grid_class = grid_class or EnsembleGrid
    scale = config.get_scale(scale)
    grid = grid_class(scale, Path(out or experiment_dir(grid_class.experiment, scale, overrides)), overrides)
    return run_to_summary(grid, data_root=data_root, device=device, progress=progress, precision=precision,
                          **executor)


def student_rows(out: Path, jobs: list) -> tuple[dict, dict]:
    """``(rows, by_cell)`` of the finished students among ``jobs`` (``students()``): per cell (``"kd E=4"``,
    ``"none"``) its test accuracy per seed with mean and 95% CI, and its finals' means (validation, training
    accuracy, kernel distance); and ``{cell: {seed: test accuracy}}``."""
    acc, cells = {}, {}
    for label, m, E, s in jobs:
        rec = done_record(run_dir(out, m, E, s))
        if rec is None:
            continue
        key = label if E == 0 else f"{label} E={E}"
        acc.setdefault(key, {})[s] = final(rec)
        cells.setdefault(key, {"method": label, "E": E, "run": run_name(m), "finals": []})["finals"].append(
            final_metrics(rec))
    rows = {}
    rank = {"none": 0, "kd": 1, "fkd": 2, "fkd-concat": 3}
    for key, c in sorted(cells.items(), key=lambda kc: (rank[kc[1]["method"]], kc[1]["E"])):
        mean, ci = mean_ci95(list(acc[key].values()))
        finals = c.pop("finals")
        rows[key] = {**c, "test_acc": acc[key], "mean": mean, "ci95": ci, "n": len(acc[key]),
                     "val_acc": mean_present(100 * f["val_acc"] for f in finals if "val_acc" in f),
                     "train_acc": mean_present(100 * f["train_acc"] for f in finals),
                     **({"train_clean_acc": mean_present(100 * f["train_clean_acc"] for f in finals)}
                        if any("train_clean_acc" in f for f in finals) else {}),
                     "kernel_distance": mean_present(f.get("kernel_distance") for f in finals)}
    return rows, acc


def summarize(scale: str, out: Path | None = None, overrides: dict | None = None) -> dict:
    """Read the grid's runs and write ``summary.json``: the teachers and their ensembles' accuracies, per method and
    E the students' test accuracy per seed (mean, 95% CI), and the paired differences the notebook reports."""
    cfg = config.sizes(EXPERIMENT, scale, **(overrides or {}))
    out = out or experiment_dir(EXPERIMENT, scale, overrides)
    rows, acc = student_rows(out, students(cfg))
    pairs = []
    for E in cfg["E"]:
        pairs += [(f"fkd E={E}", f"kd E={E}"), (f"kd E={E}", "none"), (f"fkd E={E}", "none")]
        if E > 1:
            pairs += [(f"fkd-concat E={E}", f"fkd E={E}"), (f"fkd-concat E={E}", "none")]
    lo, hi = min(cfg["E"]), max(cfg["E"])
    pairs += [(f"fkd E={hi}", f"fkd E={lo}"), (f"kd E={hi}", f"kd E={lo}")]
    paired = {f"{a} - {b}": paired_ci95(acc[a], acc[b]) for a, b in pairs if a in acc and b in acc}
    teachers = {}
    for d in teacher_dirs(out, cfg):
        if (rec := done_record(d)) is not None:
            teachers[d.name] = {"test_acc": final(rec), "val_acc": final(rec, "val_acc")}
    ens = out / ENSEMBLES
    proto = config.sizes(cfg["protocol"], scale)
    summary = {"experiment": EXPERIMENT, "scale": scale, "arch": proto["student"], "E": cfg["E"],
               "protocol": f"{cfg['protocol']} ({scale}): the students' data and recipe", "weights": cfg["weights"],
               "num_train": proto.get("train_size"), "teachers": teachers,
               "teacher_ensemble": load_result(ens)["result"]["test_acc"] if ens.exists() else None,
               "rows": rows, "paired": paired, "order": {"rows": list(rows), "paired": list(paired)},
               "runs": run_names(out, "*/*")}
    first = next(iter(teacher_dirs(out, cfg)), None)
    if first is not None and (rec := done_record(first)) is not None:
        summary["data"] = data_label(rec)
    if overrides:
        summary["overrides"] = overrides
    write_record(out / "summary.json", summary, provenance(config={"sizes": cfg, "protocol": proto}))
    return summary


CONVERGED = "ensemble_size_converged"
DIVERSITY = "teacher_diversity.json"  # the teachers' diversity record, written before any student


class LambdaSearch(TunedGrid):
    """FKD's lambda_KD re-checked at the most teachers, on the tuning seeds: the comparison's lambda and its
    neighbours on the 1-3-10 ladder, extended past an edge until the choice is interior (``TunedGrid.choices``,
    ``max_extend``). Its runs are students of the ensemble grid (``runs/fkd_w30_E8_s90``); its ``registered_family``
    judges the ensemble grid's family."""

    def __init__(self, grid: "ConvergedEnsembleGrid", base: Method):
        self.experiment, self.scale, self.out, self.overrides = grid.experiment, grid.scale, grid.out, grid.overrides
        self.cfg = {**grid.cfg, "val_size": grid.proto["val_size"], "methods": ["fkd"]}
        self.tuning, self.seeds, self.tuning_seeds = grid.cfg["tuning"], grid.cfg["seeds"], grid.cfg["tuning_seeds"]
        self.E, self.base = max(grid.cfg["E"]), base

    def stages(self):
        lam = self.base.lam_kd
        yield "fkd", [self.at("fkd", self.base, v) for v in (ladder(lam, False), lam, ladder(lam, True))]

    def run_dir(self, cand: Method, seed: int) -> Path:
        return run_dir(self.out, cand, self.E, seed)

    def axis(self, key: str, cand: Method) -> float:
        return cand.spec.axis(cand)

    def axis_name(self, key: str) -> str:
        return self.base.spec.axis_name

    def at(self, key: str, cand: Method, value: float) -> Method:
        return cand.spec.at(cand, value)


class ConvergedEnsembleGrid(EnsembleGrid):
    """Ensemble size in the regime the paper tests (``config``'s ``ensemble_size_converged``): the teachers are the
    students' architecture trained with the converged method comparison's recipe on its data, each with its own
    seed. Before any student, ``teacher_diversity.json`` records how much they differ (``engine.diversity``), and
    the grid is valid only if the ensemble of the most teachers beats the teachers' mean accuracy by ``min_gain``
    points: below that the E > 1 targets are nearly the E = 1 target and "more teachers help" is not tested, so no
    student is trained and the summary says so. Then, with the weights the method comparison chose on validation in
    the same regime (``weights_from``): FKD's lambda re-checked at the most teachers on the tuning seed
    (``LambdaSearch``; the lambda it chooses serves every E), then every student at the final seeds."""

    experiment = CONVERGED

    def valid(self) -> bool | None:
        """Whether the teachers differ enough (None before their diversity is recorded)."""
        if not (self.out / DIVERSITY).exists():
            return None
        return load_result(self.out / DIVERSITY)["result"]["gain"] >= self.cfg["min_gain"]

    def weights(self) -> dict | None:
        """KD's and FKD's weights as the method comparison in this regime chose them; None until it has."""
        path = experiment_dir(self.cfg["weights_from"], self.scale) / "summary.json"
        if not path.exists():
            return None
        methods = load_result(path)["result"].get("methods", {})
        if not all("method" in methods.get(k, {}) for k in ("kd", "fkd")):
            return None
        return {k: {a: v for a, v in methods[k]["method"].items() if a != "name"} for k in ("kd", "fkd")}

    def search(self) -> LambdaSearch | None:
        """FKD's lambda search at the most teachers; None while the grid is not valid or has no weights yet."""
        w = self.weights() if self.valid() else None
        return None if w is None else LambdaSearch(self, Method("fkd", **w["fkd"]))

    def lambda_choice(self) -> tuple:
        """FKD's lambda search at the most teachers, read once: ``(search, chosen, tables, wanted)``, with
        ``search`` None (and nothing chosen) while the grid is not valid or has no weights yet."""
        search = self.search()
        if search is None:
            return None, {}, {}, []
        return (search, *search.choices())

    def student_weights(self, choice: tuple | None = None) -> dict | None:
        """KD's weight from the comparison, FKD's with the lambda chosen at the most teachers; None until chosen.
        ``choice`` is ``lambda_choice()`` when the caller has it already."""
        search, chosen, _, wanted = choice or self.lambda_choice()
        if search is None or wanted:
            return None
        w = self.weights()
        return {"kd": w["kd"], "fkd": {**w["fkd"], "lam_kd": chosen["fkd"].lam_kd}}

    def todo(self) -> list[runner.Run]:
        waiting = [runner.Run(str(d.relative_to(self.out)), "teacher", None, s)
                   for s, d in zip(self.cfg["teacher_seeds"], self.teacher_dirs) if not finished(d)]
        if waiting:
            return waiting
        if self.valid() is None:
            return [runner.Run(DIVERSITY, "diversity")]
        choice = self.lambda_choice()
        search, _, _, wanted = choice
        if search is None:
            return []
        if wanted:
            return [runner.Run(str(search.run_dir(m, s).relative_to(self.out)), "tune", (m, search.E), s)
                    for m, s in wanted]
        return [runner.Run(str(run_dir(self.out, m, E, s).relative_to(self.out)), label, (m, E), s)
                for label, m, E, s in students(self.cfg, self.student_weights(choice))
                if not finished(run_dir(self.out, m, E, s))]

    def execute(self, run: runner.Run, data_root=None, device=None, progress=None, precision: str = "auto") -> None:
        if run.role != "diversity":
            return super().execute(run, data_root, device, progress, precision)
        if self._data is None:
            self._data = comparison_data(self.proto, data_root)
        record = diversity([t.model for t in self.teachers(device)], self._data["test"], self.cfg["E"],
                           self.cfg["kernel_images"], device=device)
        write_record(self.out / DIVERSITY, record,
                     provenance(config={"sizes": self.cfg, "teachers": [d.name for d in self.teacher_dirs]}))

    def summarize(self) -> dict:
        """Write ``summary.json``: the teachers (test, validation and clean training accuracy), their diversity,
        the validity verdict, FKD's lambda search at the most teachers, the students per cell and seed, the family
        of contrasts fixed in advance with Holm's verdicts (once every final is in), and what the grid waits for."""
        teachers = {d.name: {k: final(rec, k) for k in ("test_acc", "val_acc", "train_clean_acc")}
                    for d in self.teacher_dirs if (rec := done_record(d)) is not None}
        div = load_result(self.out / DIVERSITY)["result"] if (self.out / DIVERSITY).exists() else None
        valid, choice = self.valid(), self.lambda_choice()
        search, _, tables, _ = choice
        tuning, rows, registered, weights = tables.get("fkd"), {}, {}, self.student_weights(choice)
        if weights is not None:
            rows, by_cell = student_rows(self.out, students(self.cfg, weights))
            registered = search.registered_family(by_cell)
        state = ("training teachers" if len(teachers) < len(self.teacher_dirs) else "measuring diversity"
                 if valid is None else f"not valid: the ensemble gains {div['gain']:.2f} points, under "
                 f"{self.cfg['min_gain']}; change the regime before training students" if not valid
                 else "valid; students wait for the method comparison's weights" if search is None
                 else "valid; choosing FKD's lambda at the most teachers" if weights is None
                 else "complete" if registered["family"]["complete"] else "valid; training students")
        summary = {"experiment": CONVERGED, "scale": self.scale, "protocol": self.cfg["protocol"],
                   "arch": self.proto["student"], "E": self.cfg["E"], "min_gain": self.cfg["min_gain"],
                   "teachers": teachers, "diversity": div, "valid": valid, "state": state,
                   "weights": weights, "lambda_search": tuning, "rows": rows, "order": {"rows": list(rows)},
                   "family": registered.get("family", {"contrasts": [f"{a} - {b}" for a, b in self.cfg["family"]],
                                                       "alpha": self.cfg["alpha"], "correction": "holm",
                                                       "seeds": self.cfg["seeds"], "complete": False}),
                   "runs": run_names(self.out, "*/*"), **({"overrides": self.overrides} if self.overrides else {})}
        write_record(self.out / "summary.json", summary, provenance(config={"sizes": self.cfg, "protocol": self.proto}))
        return summary
