"""Cross-dataset distillation (docs/paper.md §3.3): a teacher trained on one label space, students on another.

The method comparison's protocol (``tuning.TunedGrid``) with the learning rate among the choices: for each
label-free method the weight is chosen on the students' validation split at the recipe's learning rate, then
the learning rate at that weight (the plain student: the learning rate alone), each by ``tuning.choose``
(contenders get a second seed). The chosen pairs then train at every seed, paired. ``fkd-unlabelled`` is FKD
with its chosen weight and rate whose kernel term sees its own batch of unlabelled images (STL-10 style).
KD is not run: it needs a shared label space, and ``train`` refuses it (notebook 06 shows the error).
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..distill.methods import METHODS, Method, weight_candidates
from ..records import (done_record, experiment_dir, final_metrics, finished, load_result, provenance, run_config,
                       run_names, write_record)
from . import config, runner
from .convergence import budget_recipe, budget_row, doubled_budgets, doubling_tests
from .splits import cross_data
from .tuning import TunedGrid, run_name

EXPERIMENT = "cross_dataset"
# the paired differences the summary reports: (a, b) means a - b
CONTRASTS = [("rkd", "none"), ("sp", "none"), ("fkd", "none"), ("fkd-unlabelled", "none"), ("fkd", "rkd"),
             ("fkd", "sp"), ("fkd-unlabelled", "fkd")]


@dataclass(frozen=True)
class Candidate:
    """A student's method, learning rate and whether its kernel term sees its own unlabelled batch."""

    method: Method
    lr: float
    unlabelled: bool = False

    def to_dict(self) -> dict:
        return {**self.method.to_dict(), "lr": self.lr, "unlabelled": self.unlabelled}


class CrossGrid(TunedGrid):
    experiment = EXPERIMENT
    contrasts = CONTRASTS

    def __init__(self, scale: str, out: Path, overrides: dict | None = None):
        super().__init__(scale, out, overrides)
        self.base_lr = config.recipe(self.cfg["preset"], **self.cfg["student_recipe"]).lr

    def name(self, cand: Candidate) -> str:
        """``fkd_w30_fr0.001norm_lr0.1``; ``..._unlabelled`` for the kernel term on unlabelled images."""
        return f"{run_name(cand.method)}_lr{cand.lr:g}" + ("_unlabelled" if cand.unlabelled else "")

    def describe(self, cand: Candidate) -> dict:
        return cand.to_dict()

    def weights(self, name: str) -> list[Method] | None:
        t = self.tuning
        return weight_candidates(name, t, **t["fkd_fr"])

    def stages(self):
        """Per method: its weight at the recipe's lr (``"<m> weight"``), then the lr at that weight (``"<m>"``)."""
        rates = [self.base_lr, *self.tuning["lrs"]]
        for name in [m for m in self.cfg["methods"] if m != "fkd-unlabelled"]:
            if name == "none":
                yield name, [Candidate(Method("none"), lr) for lr in rates]
                continue
            weights = self.weights(name)
            yield f"{name} weight", None if weights is None else [Candidate(m, self.base_lr) for m in weights]
            w = self._chosen.get(f"{name} weight")
            yield name, None if w is None else [replace(w, lr=lr) for lr in rates]

    def chosen_extra(self, key, table, cands, chosen) -> None:
        if key == "fkd" and "fkd-unlabelled" in self.cfg["methods"]:
            chosen["fkd-unlabelled"] = replace(chosen["fkd"], unlabelled=True)

    def data(self, data_root=None) -> dict:
        return cross_data(self.cfg, data_root)

    def teacher_job(self, data: dict):
        return ((self.cfg["teacher"], data["teacher_train"], data["teacher_test"],
                 config.recipe(self.cfg["preset"], **self.cfg["teacher_recipe"]), self.teacher_dir), dict(seed=0))

    def recipe(self, cand: Candidate):
        return config.recipe(self.cfg["preset"], **dict(self.cfg["student_recipe"], lr=cand.lr),
                          kd_batch_size=self.cfg["kd_batch_size"] if cand.unlabelled else None)

    def method(self, cand: Candidate) -> Method:
        return cand.method

    def student_job(self, cand: Candidate, seed: int, data: dict, teacher):
        return ((self.cfg["student"], data["train"], data["test"], self.recipe(cand), self.run_dir(cand, seed)),
                dict(method=cand.method, teachers=[teacher], seed=seed, val_data=data["val"],
                     kd_data=data["unlabelled"] if cand.unlabelled else None))

    def summary_extra(self, teacher: dict, methods: dict, chosen: dict) -> dict:
        """The two label spaces: the teacher's classes and the students'."""
        first = next((r for name in methods for s in self.seeds if (r := self.record(chosen[name], s))), None)
        return {"teacher_classes": run_config(teacher)["classes"],
                "student_classes": run_config(first)["classes"] if first else None}


class ConvergedCrossGrid(CrossGrid):
    """Cross-dataset distillation in the regime the paper tests (``config``'s ``cross_dataset_converged``).

    The teacher knows its data: before it trains, pilots on its label space (all but ``teacher_convergence
    ["val_size"]`` held-out images, scored on them) run the doubling test (``convergence``) at budgets that double
    while it fails; the teacher then trains on every training image of its label space at the shortest budget
    that passed. The students: the converged comparison's regime, tuning seeds no final uses, weight searches that
    bracket (``TunedGrid.beyond``), an exact validation tie between learning rates going to the plain student's
    chosen rate (the plain student's own to the recipe's), FKD's regulariser as the converged method comparison
    chose it (``fkd_fr_from``: FKD waits for it), and the family fixed in advance judged with Holm's correction.
    """

    experiment = "cross_dataset_converged"

    # the teacher's doubling test
    def pilot_dir(self, epochs: int, seed: int) -> Path:
        return self.out / "teacher_pilots" / f"{self.cfg['teacher']}_e{epochs}_s{seed}"

    def pilots(self, epochs: int) -> dict:
        """``{seed: record}`` of the teacher's finished pilots at ``epochs``."""
        return {s: r for s in self.cfg["teacher_convergence"]["seeds"] if (r := done_record(self.pilot_dir(epochs, s)))}

    def teacher_budgets(self) -> list[int]:
        tc = self.cfg["teacher_convergence"]
        return doubled_budgets(tc["epochs"], tc.get("max_epochs"), self.pilots, len(tc["seeds"]), tc["tolerance"])

    def teacher_convergence(self) -> tuple[dict, int | None]:
        """``(tests, epochs)``: the teacher's doubling tests and the budget it trains at (None: none passed yet)."""
        return doubling_tests({e: self.pilots(e) for e in self.teacher_budgets()},
                              self.cfg["teacher_convergence"]["tolerance"])

    def teacher_recipe(self, epochs: int):
        tc = self.cfg["teacher_convergence"]
        return budget_recipe(self.cfg, epochs, tc["fractions"], tc["eval_every"], which="teacher_recipe")

    def pilots_todo(self) -> list:
        """The teacher's pilots still to train, longest budget first."""
        seeds = self.cfg["teacher_convergence"]["seeds"]
        return [runner.Run(str(self.pilot_dir(e, s).relative_to(self.out)), "teacher-pilot", e, s)
                for e in reversed(self.teacher_budgets()) for s in seeds if not finished(self.pilot_dir(e, s))]

    def todo(self) -> list:
        """The teacher's pilots (longest first), then, once a doubling passed, ``TunedGrid.todo`` (the teacher at
        that budget, tuning runs, finals); nothing while every budget up to ``max_epochs`` failed."""
        if pilots := self.pilots_todo():
            return pilots
        return [] if self.teacher_convergence()[1] is None else super().todo()

    def execute(self, run, data_root=None, device=None, progress=None, precision: str = "auto"):
        if run.role != "teacher-pilot":
            return super().execute(run, data_root, device, progress, precision)
        if getattr(self, "_data", None) is None:
            self._data = self.data(data_root)
        data = self._data
        return runner.train_or_reuse(self.cfg["teacher"], data["teacher_pilot_train"], data["teacher_test"],
                                     self.teacher_recipe(run.spec), self.out / run.name, seed=run.seed,
                                     val_data=data["teacher_pilot_val"], device=device, progress=progress,
                                     precision=precision)

    def data(self, data_root=None) -> dict:
        """``cross_data``, and the teacher pilots' split of the teacher's images (a fixed seeded draw held out)."""
        data = super().data(data_root)
        data["teacher_pilot_train"], data["teacher_pilot_val"] = data["teacher_train"].train_val(
            self.cfg["teacher_convergence"]["val_size"], seed=0)
        return data

    def teacher_job(self, data: dict):
        return ((self.cfg["teacher"], data["teacher_train"], data["teacher_test"],
                 self.teacher_recipe(self.teacher_convergence()[1]), self.teacher_dir), dict(seed=0))

    # the students' searches
    def fkd_regulariser(self) -> dict | None:
        """FKD's regulariser as the converged method comparison chose it (``lam_fr``, ``fr_squared``); None until then."""
        path = experiment_dir(self.cfg["fkd_fr_from"], self.scale) / "summary.json"
        fkd = load_result(path)["result"].get("methods", {}).get("fkd", {}) if path.exists() else {}
        return {k: fkd["method"][k] for k in ("lam_fr", "fr_squared")} if "method" in fkd else None

    def weights(self, name: str) -> list[Method] | None:
        if name != "fkd":
            return super().weights(name)
        fr = self.fkd_regulariser()
        return None if fr is None else weight_candidates("fkd", self.tuning, **fr)

    def axis(self, key: str, cand: Candidate) -> float | None:
        return cand.method.spec.axis(cand.method) if key.endswith(" weight") else None

    def axis_name(self, key: str) -> str:
        return METHODS[key.partition(" ")[0]].axis_name

    def at(self, key: str, cand: Candidate, value: float) -> Candidate:
        return replace(cand, method=cand.method.spec.at(cand.method, value))

    def preferred(self, cands: list) -> str | None:
        """The tie rule: among learning rates, the plain student's chosen one (its own search: the recipe's)."""
        if len({self.name(replace(c, lr=0.0)) for c in cands}) != 1:
            return None  # a search over weights, not learning rates
        plain = self._chosen.get("none")
        lr = self.base_lr if cands[0].method.name == "none" or plain is None else plain.lr
        return next((self.name(c) for c in cands if c.lr == lr), None)

    def summarize(self) -> dict:
        """``TunedGrid.summarize`` once the teacher is trained; before, a summary of the teacher's pilots."""
        if finished(self.teacher_dir):
            return super().summarize()
        convergence = self.teacher_convergence()
        state = ("teacher pilots" if self.pilots_todo() or convergence[1] is not None else
                 f"not valid: no doubling of the teacher's budget passed up to "
                 f"{self.cfg['teacher_convergence']['max_epochs']} epochs; train it longer or on more images")
        summary = {"experiment": self.experiment, "scale": self.scale, "teacher": self.cfg["teacher"],
                   "state": state, **self.teacher_summary(convergence), "runs": run_names(self.out, "*/*"),
                   **({"overrides": self.overrides} if self.overrides else {})}
        write_record(self.out / "summary.json", summary, provenance(config={"sizes": self.cfg}))
        return summary

    def teacher_summary(self, convergence: tuple | None = None) -> dict:
        """The teacher's doubling test: per budget its pilots' accuracies and curves, each doubling's verdict, and
        the budget the teacher trains at. ``convergence`` is ``teacher_convergence()`` when the caller has it."""
        tests, epochs = convergence or self.teacher_convergence()
        budgets = {e: budget_row(r) for e in self.teacher_budgets() if (r := self.pilots(e))}
        return {"teacher_convergence": {"budgets": budgets, "doubling": tests, "epochs": epochs,
                                        "held_out": self.cfg["teacher_convergence"]["val_size"]}}

    def summary_extra(self, teacher: dict, methods: dict, chosen: dict) -> dict:
        return {**super().summary_extra(teacher, methods, chosen), **self.teacher_summary(),
                "teacher_train_clean_acc": final_metrics(teacher).get("train_clean_acc")}
