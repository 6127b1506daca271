"""Has the student finished learning? The doubling test that fixes a grid's training length before any comparison.

A reduced experiment tests the paper's claims only in the regime they are about: students that have finished
learning. Converged means here: doubling the epochs, with the schedule's shape kept (its learning-rate decays at
the same fractions of the run), moves the validation accuracy by less than ``tolerance`` points, as the mean over
the pilot seeds of each seed's change from its own run at the shorter budget. A plateau seen only after a
learning-rate decay proves nothing (every run flattens once its rate is small), so runs are compared across
budgets, never epoch by epoch within one.

The pilots train the plain student and FKD at one fixed weight (the distilled students keep learning longer than
the plain one) on the method comparison's data, with its teacher, at every budget of ``epochs`` and every pilot
seed; the seeds are the comparison's tuning seeds, never a final's. Each run scores validation, test and clean
training accuracy (evaluation mode, no augmentation) every ``eval_every`` epochs, so the summary shows the curves
as well as the verdict. ``python -m fkdlib experiment convergence --scale lite --workers 2``.
"""
from __future__ import annotations

from pathlib import Path

from ..distill.methods import Method
from ..models.teachers import load_teacher
from ..records import (data_label, done_record, experiment_dir, final, finished, history, provenance, run_names,
                       write_record)
from ..stats import mean_ci95
from . import config, runner
from .comparison import Grid
from .tuning import run_name, run_to_summary

EXPERIMENT = "convergence"


def budget_recipe(proto: dict, epochs: int, fractions, eval_every: int | None, which: str = "student_recipe"):
    """The protocol's student recipe (``which``: or its ``teacher_recipe``) at ``epochs`` with its decays at
    ``fractions`` of the run (the same shape at every budget: 100 epochs with fractions (0.6, 0.85) decay at 60
    and 85, 200 epochs at 120 and 170)."""
    milestones = tuple(round(f * epochs) for f in fractions)
    return config.recipe(proto["preset"], **{**proto[which], "epochs": epochs, "milestones": milestones,
                                             "eval_every": eval_every})


def doubled_budgets(epochs, max_epochs: int | None, records_at, n_seeds: int, tolerance: float) -> list[int]:
    """The budgets a pilot trains at: ``epochs``, then one more doubling while the last doubling is in for all
    ``n_seeds`` seeds and fails, up to ``max_epochs`` (a pilot that passes early is not trained longer).
    ``records_at(epochs)``: ``{seed: finished run record}`` at that budget."""
    budgets = sorted(epochs)
    while 2 * budgets[-1] <= (max_epochs or budgets[-1]):
        recs = [records_at(e) for e in budgets[-2:]]
        if any(len(r) < n_seeds for r in recs) or doubling_test(*recs, tolerance)["converged"]:
            break
        budgets.append(2 * budgets[-1])
    return budgets


def doubling_tests(recs: dict, tolerance: float) -> tuple[dict, int | None]:
    """``(tests, converged_from)`` from ``{budget: {seed: record}}``: the doubling test of each budget against its
    double (where both have a seed in common), and the shortest budget whose doubling passes (None: none yet)."""
    budgets = sorted(recs)
    tests = {f"{a} -> {b}": doubling_test(recs[a], recs[b], tolerance)
             for a, b in zip(budgets, budgets[1:]) if b == 2 * a and set(recs[a]) & set(recs[b])}
    return tests, next((int(k.split(" -> ")[0]) for k, t in tests.items() if t["converged"]), None)


def doubling_test(short: dict, long: dict, tolerance: float = 1.0) -> dict:
    """The doubling test of one method between two budgets, from ``{seed: run record}`` at each (the same seeds).

    Per seed the change of the final validation accuracy (and, reported beside it, of the test and clean training
    accuracy) from the short budget to the long, in points; ``converged``: the mean change over the seeds is under
    ``tolerance`` in size. Seeds missing at either budget are left out (``seeds`` says which were compared).
    """
    seeds = sorted(set(short) & set(long))
    if not seeds:
        raise ValueError("the doubling test needs the same seed at both budgets")
    out = {"seeds": seeds, "tolerance": tolerance}
    for key in ("val_acc", "test_acc", "train_clean_acc"):
        deltas = {s: _pct(long[s], key) - _pct(short[s], key) for s in seeds
                  if _pct(long[s], key) is not None and _pct(short[s], key) is not None}
        out[f"delta_{key}"] = deltas
        out[f"mean_delta_{key}"] = sum(deltas.values()) / len(deltas) if deltas else None
    out["converged"] = out["mean_delta_val_acc"] is not None and abs(out["mean_delta_val_acc"]) < tolerance
    return out


def _pct(record: dict, key: str) -> float | None:
    """A run's final ``key`` in percent, None where it was not scored."""
    return final(record, key, missing=None)


def pilot_methods(cfg: dict) -> dict[str, Method]:
    return {label: Method(**kw) for label, kw in cfg["methods"].items()}


class ConvergenceGrid:
    """The pilots' state, read from their folders (``runner``'s interface): the method comparison's teacher
    (trained here only if that grid has not trained it), then every method at every budget and pilot seed,
    the longest runs first so that both workers stay busy to the end."""

    experiment = EXPERIMENT

    def __init__(self, scale: str, out: Path, overrides: dict | None = None):
        self.scale, self.out, self.overrides = scale, Path(out), dict(overrides or {})
        self.cfg = config.sizes(EXPERIMENT, scale, **self.overrides)
        self.proto = config.sizes(self.cfg["protocol"], scale)
        self.comparison = Grid(scale, experiment_dir(self.cfg["protocol"], scale))
        self.teacher_dir = self.comparison.teacher_dir
        self._data = self._teacher = None

    def run_dir(self, method: Method, epochs: int, seed: int) -> Path:
        return self.out / "runs" / f"{run_name(method)}_e{epochs}_s{seed}"

    def recipe(self, epochs: int):
        return budget_recipe(self.proto, epochs, self.cfg["fractions"], self.cfg["eval_every"])

    def budgets(self, label: str) -> list[int]:
        """The budgets ``label`` trains at: ``epochs``, then one more doubling while the last doubling of every seed
        is in and fails, up to ``max_epochs`` (a method that passes early is not trained longer)."""
        m = pilot_methods(self.cfg)[label]
        return doubled_budgets(self.cfg["epochs"], self.cfg.get("max_epochs"), lambda e: self.records(m, e),
                               len(self.cfg["seeds"]), self.cfg["tolerance"])

    def records(self, method: Method, epochs: int) -> dict:
        """``{seed: record}`` of ``method``'s finished pilots at ``epochs``."""
        return {s: r for s in self.cfg["seeds"] if (r := done_record(self.run_dir(method, epochs, s)))}

    def runs(self) -> list[tuple[str, Method, int, int]]:
        """``(label, method, epochs, seed)`` of every pilot, the longest first."""
        return sorted(((label, m, e, s) for label, m in pilot_methods(self.cfg).items() for e in self.budgets(label)
                       for s in self.cfg["seeds"]), key=lambda r: -r[2])

    def todo(self) -> list[runner.Run]:
        if not finished(self.teacher_dir):
            return [runner.Run(self.teacher_dir.name, "teacher")]
        return [runner.Run(str(self.run_dir(m, e, s).relative_to(self.out)), label, (m, e), s)
                for label, m, e, s in self.runs() if not finished(self.run_dir(m, e, s))]

    def execute(self, run: runner.Run, data_root=None, device=None, progress=None, precision: str = "auto") -> None:
        if self._data is None:
            self._data = self.comparison.data(data_root)
        common = dict(device=device, progress=progress, precision=precision)
        if run.role == "teacher":
            args, kw = self.comparison.teacher_job(self._data)
            args = (*args[:-1], self.teacher_dir)
            runner.train_or_reuse(*args, **kw, **common)
            return
        if self._teacher is None:
            self._teacher = load_teacher(self.teacher_dir / "model.pt", device=device or "cpu")
        method, epochs = run.spec
        data = self._data
        runner.train_or_reuse(self.proto["student"], data["train"], data["test"], self.recipe(epochs),
                              self.out / run.name, method=method, teachers=[self._teacher], seed=run.seed,
                              val_data=data["val"], **common)

    def summarize(self) -> dict:
        """Write ``summary.json``: per method and budget the final accuracies of every seed, the curves, and the
        doubling test of each consecutive pair of budgets; ``converged_from``: each method's shortest budget whose
        doubling passes; ``regime_epochs``: the largest of those (None while a method has not passed)."""
        methods, tests, first, data = {}, {}, {}, None
        for label, m in pilot_methods(self.cfg).items():
            budgets = self.budgets(label)
            recs = {e: self.records(m, e) for e in budgets}
            methods[label] = {"method": m.to_dict(), "budgets": {e: budget_row(recs[e]) for e in budgets if recs[e]}}
            tests[label], first[label] = doubling_tests(recs, self.cfg["tolerance"])
            data = data or next((data_label(r) for e in budgets for r in recs[e].values()), None)
        regime = None if None in first.values() else max(first.values())
        summary = {"experiment": EXPERIMENT, "scale": self.scale, "protocol": self.cfg["protocol"],
                   "student": self.proto["student"], "num_train": self.proto.get("train_size"), "data": data,
                   "seeds": self.cfg["seeds"], "fractions": self.cfg["fractions"], "tolerance": self.cfg["tolerance"],
                   "methods": methods, "doubling": tests, "converged_from": first, "regime_epochs": regime,
                   "runs": run_names(self.out),
                   **({"overrides": self.overrides} if self.overrides else {})}
        write_record(self.out / "summary.json", summary, provenance(config={"sizes": self.cfg, "protocol": self.proto}))
        return summary


def budget_row(recs: dict) -> dict:
    """One method at one budget: final test, validation and clean training accuracy per seed (%), their means,
    the seeds' spread, and every seed's curve (epoch, val, test, clean train)."""
    row = {}
    for key in ("test_acc", "val_acc", "train_clean_acc"):
        per_seed = {s: _pct(r, key) for s, r in recs.items() if _pct(r, key) is not None}
        mean, ci = mean_ci95(per_seed.values()) if per_seed else (None, None)
        row[key] = {"per_seed": per_seed, "mean": mean, "ci95": None if ci != ci else ci}
    row["curves"] = {s: [{k: h[k] for k in ("epoch", "lr", "val_acc", "test_acc", "train_clean_acc", "train_acc")
                          if k in h} for h in history(r) if "test_acc" in h] for s, r in recs.items()}
    row["wall_time_s"] = {s: r["result"]["wall_time_s"] for s, r in recs.items()}
    return row


def run(scale: str | None = None, out: Path | None = None, data_root=None, device=None, progress=None,
        precision: str = "auto", overrides: dict | None = None, **executor) -> dict:
    """Train the pilots still missing, then summarise; ``executor`` as ``comparison.run``."""
    scale = config.get_scale(scale)
    grid = ConvergenceGrid(scale, Path(out or experiment_dir(EXPERIMENT, scale, overrides)), overrides)
    return run_to_summary(grid, data_root=data_root, device=device, progress=progress, precision=precision,
                          **executor)
