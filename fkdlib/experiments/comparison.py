"""The method comparison (docs/paper.md §3.1) on ``tuning.TunedGrid``: one teacher; per method
(none, KD, RKD, SP, FKD without FR, FKD, the FR-only control) its weights chosen on validation, then paired seeds.

Each method searches its own weight as its file says (``fkdlib.distill.methods``: KD, RKD, SP and CRD multiples of
RepDistiller's weight, FKD without FR its lambda_KD ladder); the comparison chains two choices of its own: FKD's
lambda_FR and FR form are tried at FKD-without-FR's chosen lambda_KD, and the FR-only control uses FKD's chosen
regulariser. ``study`` adds notebook 03's lambda study.
"""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..distill.methods import METHODS, Method, weight_candidates
from ..records import experiment_dir, final, final_metrics, load_result
from . import config
from .tuning import TunedGrid, ladder, run_to_summary

# the paired differences every summary reports: (a, b) means a - b
CONTRASTS = [("fkd", "none"), ("fkd", "kd"), ("kd", "none"), ("fkd", "fkd-nofr"), ("fkd", "fr"),
             ("fkd-nofr", "none"), ("rkd", "none"), ("sp", "none"), ("fr", "none")]


def candidates(method: str, tuning: dict, chosen: dict) -> list[Method] | None:
    """The weights tried for ``method``; None while they depend on a choice not made yet (``chosen``: name -> Method).
    FKD and the FR-only control follow the comparison's chain, every other method its own search."""
    if method == "fkd":
        if "fkd-nofr" not in chosen:
            return None
        lam = chosen["fkd-nofr"].lam_kd
        return [chosen["fkd-nofr"]] + [Method("fkd", lam_kd=lam, lam_fr=f, fr_squared=form == "squared")
                                        for f in tuning["fr_lams"] for form in tuning["fr_forms"]]
    if method == "fr":
        if "fkd" not in chosen:
            return None
        fkd = chosen["fkd"]
        if fkd.lam_fr == 0:  # FKD chose no regulariser: control the best regulariser it tried
            fkd = chosen.get("fkd-best-fr", fkd)
        return [Method("fr", lam_fr=fkd.lam_fr or tuning["fr_lams"][-1], fr_squared=fkd.fr_squared)]
    return weight_candidates(method, tuning)


# the comparison's chain of choices, made first: FKD without FR's lambda_KD, FKD's regulariser, the FR-only control
_CHAIN = ("fkd-nofr", "fkd", "fr")


class Grid(TunedGrid):
    """The method comparison: per method its weights chosen on validation (FKD's regulariser at FKD-without-FR's
    chosen lambda_KD; the FR-only control with FKD's regulariser), then every method at paired seeds."""

    experiment = "method_comparison"
    contrasts = CONTRASTS

    def stages(self):
        """``(key, candidates or None)`` per choice, in the order they are made, given ``chosen`` so far (a generator
        sent nothing: it reads ``self._chosen``). The method comparison: the longest chain of choices first."""
        for name in [*_CHAIN, *(m for m in METHODS if m not in _CHAIN)]:
            wanted = name in self.cfg["methods"] or (name == "fkd-nofr" and "fkd" in self.cfg["methods"])
            if wanted:
                yield name, candidates(name, self.tuning, self._chosen)

    def chosen_extra(self, key: str, table: dict, cands: list, chosen: dict) -> None:
        """After FKD's choice: the best regulariser it tried, which the FR-only control uses if FKD chose none."""
        if key == "fkd":
            with_fr = [t for t in table["rounds"][0] if t["method"]["lam_fr"] > 0]
            best_fr = max(with_fr, key=lambda t: sum(t["val_acc"].values()))
            chosen["fkd-best-fr"] = next(c for c in cands if self.name(c) == best_fr["run"])
            base = next((c for c in cands if c.lam_fr == 0), None)
            if self.tuning.get("fr_min_norm_change") and base is not None:  # the evidence that FR's search acted
                table["fr_norm_change"] = {self.name(c): self.fr_norm_change(c, base, signed=True)
                                           for c in cands if c.lam_fr > 0}

    def axis(self, key: str, cand: Method) -> float | None:
        """FKD's search is its regulariser's weight; every other method's is its own (``Spec.axis``)."""
        if key == "fkd":
            return cand.lam_fr or None  # no FR is the search's floor, not a value on its ladder
        return cand.spec.axis(cand)

    def axis_name(self, key: str) -> str:
        return "$\\lambda_{FR}$" if key == "fkd" else METHODS[key].axis_name

    def at(self, key: str, cand: Method, value: float) -> Method:
        return replace(cand, lam_fr=value) if key == "fkd" else cand.spec.at(cand, value)

    def beyond(self, key: str, cands: list, pick: Method) -> list:
        """Past the edge of a search (``TunedGrid.beyond``); FKD's regulariser also climbs while its largest weight
        changes the student's mean feature norm by less than ``tuning["fr_min_norm_change"]`` (a fraction) against
        FKD without FR on the first tuning seed, so that the FR ablation tests a regulariser that acts."""
        more = super().beyond(key, cands, pick)
        floor = self.tuning.get("fr_min_norm_change")
        if more or key != "fkd" or not floor:
            return more
        top = max((c for c in cands if c.lam_fr > 0), key=lambda c: c.lam_fr, default=None)
        base = next((c for c in cands if c.lam_fr == 0), None)
        if top is None or base is None or self.fr_norm_change(top, base) >= floor:
            return []
        grown = sum(c.lam_fr > max(self.tuning["fr_lams"]) for c in cands)
        return [self.at(key, top, ladder(top.lam_fr, True))] if grown < self.tuning.get("max_extend", 0) else []

    def fr_norm_change(self, cand: Method, base: Method, signed: bool = False) -> float | None:
        """|feature norm(cand) / feature norm(base) - 1| at the end of their runs on the first tuning seed (with
        its sign if ``signed``: FR shrinks the norm, so it is negative; None there where a norm is missing)."""
        seed = self.tuning_seeds[0]
        norms = [final_metrics(self.record(c, seed)).get("feature_norm") for c in (cand, base)]
        if None in norms or not norms[1]:
            return None if signed else float("inf")
        change = norms[0] / norms[1] - 1
        return change if signed else abs(change)

    def study(self, chosen: dict) -> list:
        """Runs beyond the finals (notebook 03's lambda study) on the first ``study_seeds`` seeds."""
        if "fkd" not in self.cfg["methods"]:
            return []
        return [(m, s) for s in self.seeds[:self.cfg.get("study_seeds", 3)]
                for m in candidates("fkd-nofr", self.tuning, chosen)]

    def summary_extra(self, teacher: dict, methods: dict, chosen: dict) -> dict:
        """The teacher's validation accuracy and the protocol checks: did the plain student plateau, does it
        memorise (train minus test), and how far is it below its teacher."""
        plain = methods.get("none", {})
        return {"teacher_val_acc": final(teacher, "val_acc"),
                "protocol": {"plain_last_two_epochs_gain": plain.get("last_two_epochs_gain"),
                             "plain_train_minus_test": (plain["train_acc"] - plain["mean"]) if plain else None,
                             "teacher_minus_plain": (final(teacher) - plain["mean"]) if plain else None}}


class ConvergedGrid(Grid):
    """The method comparison in the regime the paper tests (``config``'s ``method_comparison_converged``): students
    trained as long as the doubling test says, tuned on seeds of their own with searches that bracket, judged by a
    family of contrasts fixed in advance with Holm's correction. It shares the method comparison's teacher."""

    experiment = "method_comparison_converged"

    def summary_extra(self, teacher: dict, methods: dict, chosen: dict) -> dict:
        """The teacher's validation accuracy and the regime's evidence: the doubling test of the pilots and the plain
        student's clean training accuracy and distance below its teacher in the finals."""
        pilots = experiment_dir("convergence", self.scale) / "summary.json"
        doubling = load_result(pilots)["result"] if pilots.exists() else None
        plain = methods.get("none", {})
        return {"teacher_val_acc": final(teacher, "val_acc"),
                "protocol": {"epochs": self.recipe(None).epochs, "milestones": list(self.recipe(None).milestones),
                             "doubling": None if doubling is None else {"regime_epochs": doubling["regime_epochs"],
                                                                        "tests": doubling["doubling"]},
                             "plain_train_clean_acc": plain.get("train_clean_acc"),
                             "teacher_minus_plain": (final(teacher) - plain["mean"]) if plain else None}}


def run(scale: str | None = None, out: Path | None = None, data_root=None, device=None, progress=None,
        precision: str = "auto", grid_class: type = Grid, overrides: dict | None = None, **executor) -> dict:
    """Train what the grid still needs (teacher, tuning runs, finals, study), then summarise.

    ``executor``: ``workers=N``, ``ray="auto"`` or an address, ``threads``, ``resources`` (``fkdlib.experiments.runner``); by
    default the runs train one after another in this process. A run that fails twice is reported by name after the
    others are done and summarised (``runner.GridFailed``).
    """
    scale = config.get_scale(scale)
    out = Path(out or experiment_dir(grid_class.experiment, scale, overrides))
    return run_to_summary(grid_class(scale, out, overrides), data_root=data_root, device=device, progress=progress,
                          precision=precision, **executor)


def summarize(scale: str, out: Path | None = None) -> dict:
    """Read the comparison's runs and write its ``summary.json`` (``Grid.summarize``)."""
    return Grid(scale, Path(out or experiment_dir("method_comparison", scale))).summarize()
