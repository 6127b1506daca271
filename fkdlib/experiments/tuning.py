"""Grids whose weights are chosen on validation, then trained at paired seeds (docs/paper.md §3).

1. One teacher (``teacher_<arch>/``).
2. Tuning: every candidate of a choice trains with the first tuning seed and is scored on the held-out validation
   split. The candidate with the best mean validation accuracy is chosen; when its margin over the runner-up is
   under twice the validation standard error, the contenders within that margin get another tuning seed (up to
   ``tuning["max_seeds"]``) before the choice is made. A search whose choice is the smallest or largest value it
   tried on its axis (a weight) tries the next value past that edge (``beyond``), up to ``tuning["max_extend"]``
   times a side, until the choice is interior: a search that brackets. The tuning seeds are ``cfg["tuning_seeds"]``,
   which no final uses (grids without them tune on their first final seeds, as before). The test set plays no part
   in any choice.
3. Finals: the chosen candidate of every method at every seed. Seed s gives every method the same initial weights
   and batch order, so methods are compared by paired differences (``stats.paired_ci95``).

A subclass says which choices are made among which candidates (``stages``), what else a choice settles
(``chosen_extra``), the runs beyond the finals (``study``) and which paired differences its summary reports
(``contrasts``). A run's folder is named by its weights (``runs/kd_w0.9_s0``), so a tuning run of the chosen
weights is also that method's final run of the same seed: nothing is trained twice. ``runner`` trains the runs.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

from ..distill.methods import Method
from ..device import get_device
from ..engine.amp import resolve_precision
from ..engine.teacher_cache import grid_cache
from ..records import (done_record, final, final_metrics, finished, history, pinned, provenance, run_config, run_names,
                       run_record, write_record)
from ..stats import family, mean_ci95, mean_present, paired_ci95
from . import config, runner
from .splits import comparison_data

# a worker's cache of the teacher's outputs, for the students of a seed it trains one after another (runner's seed
# affinity): the converged comparison's teacher on one seed's batches is about 0.3 GB (400 epochs of 2,500 images,
# a 64-wide feature and 10 logits in float32), so this holds four seeds; SP's feature maps are not kept
CACHE_BYTES = 5 * 256 * 1024 ** 2


def run_name(method: Method) -> str:
    """A run folder's name from the weights that matter: ``none``, ``kd_w0.9``, ``fkd_w100_fr0.01sq``, ``fr_fr0.001norm``
    (``..._concat``: FKD on the kernel of the teachers' concatenated features)."""
    name = f"{method.name}_w{float(f'{method.lam_kd:.3g}'):g}" if method.needs_teacher else method.name
    if method.lam_fr > 0:
        name += f"_fr{method.lam_fr:g}{'sq' if method.fr_squared else 'norm'}"
    return name + ("_concat" if method.ensemble == "concat" else "")


def choose(tries: list[dict], val_size: int, prefer: str | None = None) -> dict:
    """The best of ``tries`` (``{"run", "val_acc": {seed: %}}`` each, all on the same seeds) by mean validation accuracy.

    Returns ``{"run", "margin", "two_se", "clear", "contenders"}``: the margin over the runner-up, twice the
    binomial standard error of the winner's accuracy on ``val_size`` images, whether the margin exceeds it, and
    the runs within it of the winner (the winner included): those get another seed when the choice is not clear.
    A tie for the best (equal means) goes to ``prefer`` where it is among them (a tie rule stated before the
    search), else to the first tried.
    """
    means = {t["run"]: sum(t["val_acc"].values()) / len(t["val_acc"]) for t in tries}
    ranked = sorted(means, key=means.get, reverse=True)
    if prefer in means and math.isclose(means[prefer], means[ranked[0]], abs_tol=1e-9):
        ranked.remove(prefer)
        ranked.insert(0, prefer)
    best = ranked[0]
    p = means[best] / 100
    two_se = 200 * math.sqrt(max(p * (1 - p), 1e-12) / val_size)
    margin = means[best] - means[ranked[1]] if len(ranked) > 1 else float("inf")
    return {"run": best, "margin": margin, "two_se": two_se, "clear": margin >= two_se,
            "contenders": [r for r in ranked if means[best] - means[r] < two_se]}


class TunedGrid:
    """The state of a tuned grid at one scale, read from its run folders; ``plan()`` says what to train next.

    A candidate is whatever ``name`` and ``describe`` read (here a ``Method``; ``cross_dataset`` adds the learning
    rate); ``stages()`` says, given the choices made so far, which candidates each choice is made among.
    """

    experiment = ""
    contrasts: list[tuple[str, str]] = []   # the paired differences the summary reports: (a, b) means a - b

    def __init__(self, scale: str, out: Path, overrides: dict | None = None):
        self.scale, self.out, self.overrides = scale, out, dict(overrides or {})
        self.cfg = config.sizes(self.experiment, scale, **self.overrides)
        self.tuning, self.seeds = self.cfg["tuning"], self.cfg["seeds"]
        self.tuning_seeds = self.cfg.get("tuning_seeds") or self.seeds
        overlap = set(self.cfg.get("tuning_seeds") or ()) & set(self.seeds)
        if overlap:
            raise ValueError(f"{self.experiment}: tuning seeds {sorted(overlap)} are also final seeds")
        self.teacher_dir = out / f"teacher_{self.cfg['teacher']}"
        if self.cfg.get("teacher_from"):  # another grid's teacher, shared (that grid trains it)
            from ..records import experiment_dir
            self.teacher_dir = experiment_dir(self.cfg["teacher_from"], scale) / f"teacher_{self.cfg['teacher']}"

    def name(self, cand) -> str:
        return run_name(cand)

    def describe(self, cand) -> dict:
        return cand.to_dict()

    def run_dir(self, cand, seed: int) -> Path:
        return self.out / "runs" / f"{self.name(cand)}_s{seed}"

    def record(self, cand, seed: int) -> dict | None:
        return done_record(self.run_dir(cand, seed))

    def val_acc(self, cand, seed: int) -> float | None:
        rec = self.record(cand, seed)
        return None if rec is None else final(rec, "val_acc")

    def stages(self):
        """``(key, candidates or None)`` per choice, in the order they are made, given the choices made so far
        (``self._chosen``); None while a choice's candidates depend on one not made yet."""
        raise NotImplementedError

    def chosen_extra(self, key: str, table: dict, cands: list, chosen: dict) -> None:
        """What else the choice ``key`` settles (added to ``chosen``)."""

    def preferred(self, cands: list) -> str | None:
        """The run a tie among ``cands`` goes to (``choose``'s ``prefer``); None: the first tried."""
        return None

    def axis(self, key: str, cand) -> float | None:
        """Where ``cand`` sits on the axis the search ``key`` walks (a weight), or None if it is not on it."""
        return None

    def axis_name(self, key: str) -> str:
        """What the search ``key`` walks, for its table and figures."""
        return "weight"

    def at(self, key: str, cand, value: float):
        """The candidate like ``cand`` at ``value`` on the search's axis."""
        raise NotImplementedError

    def beyond(self, key: str, cands: list, pick) -> list:
        """Candidates past the edge of the search ``key`` when its choice ``pick`` is the smallest or largest value
        of its axis that was tried (the next value of ``ladder``), else none. ``tuning["max_extend"]`` (default 0:
        searches as given) caps how many values a side may add beyond the original grid."""
        limit, value = self.tuning.get("max_extend", 0), self.axis(key, pick)
        on_axis = [v for c in cands if (v := self.axis(key, c)) is not None]
        if not limit or len(on_axis) < 2:
            return []
        first = self._first_grid.setdefault(key, (min(on_axis), max(on_axis)))
        if value is None:  # the choice is off the axis (FKD's regulariser: none)
            return []
        for up, edge in ((False, min(on_axis)), (True, max(on_axis))):
            added = sum(v > first[1] if up else v < first[0] for v in on_axis)
            if value == edge and added < limit:
                return [self.at(key, pick, ladder(value, up))]
        return []

    def study(self, chosen: dict) -> list:
        """``(candidate, seed)`` runs beyond the finals."""
        return []

    def finals(self, chosen: dict) -> list:
        """The candidate each final method trains with at every seed."""
        return [chosen[name] for name in self.cfg["methods"] if name in chosen]

    def choices(self) -> tuple[dict, dict, list]:
        """``(chosen, tables, wanted)``: the candidate chosen per key so far, each key's tuning rounds and
        choice, and the ``(candidate, seed)`` tuning runs still wanted, in the order to run them."""
        self._chosen, tables, wanted, self._first_grid = {}, {}, [], {}
        chosen = self._chosen
        for key, cands in self.stages():
            if cands is None:
                continue
            while True:
                table, missing = self._settle(cands)
                if missing:
                    wanted += missing
                    break
                pick = next(c for c in cands if self.name(c) == table["run"])
                more = [c for c in self.beyond(key, cands, pick) if self.name(c) not in {self.name(d) for d in cands}]
                if not more:
                    break
                cands = cands + more
            if missing:
                continue
            if key in self._first_grid:
                table["axis"] = {"name": self.axis_name(key),
                                 "runs": {self.name(c): v for c in cands if (v := self.axis(key, c)) is not None}}
                table["tried"] = sorted(table["axis"]["runs"].values())
                value = self.axis(key, pick)
                table["bracketed"] = value is None or min(table["tried"]) < value < max(table["tried"])
            chosen[key] = pick
            tables[key] = table
            self.chosen_extra(key, table, cands, chosen)
        return chosen, tables, wanted

    def _settle(self, cands: list) -> tuple[dict | None, list]:
        """``(table, missing)``: the choice among ``cands`` with every round of validation runs that made it, or
        the runs still missing. Round 1 is seed 0 for every candidate; while the winner's margin is under twice
        the validation standard error, the contenders get one more seed, up to ``tuning["max_seeds"]``."""
        pool, seeds, rounds = cands, self.tuning_seeds[:1], []
        while True:
            missing = [(c, s) for c in pool for s in seeds if self.val_acc(c, s) is None]
            if missing:
                return None, missing
            tries = [{"run": self.name(c), "method": self.describe(c),
                      "val_acc": {s: self.val_acc(c, s) for s in seeds}} for c in pool]
            rounds.append(tries)
            if len(pool) == 1:
                return {"run": self.name(pool[0]), "rounds": rounds, "margin": None, "two_se": None,
                        "clear": None}, []
            pick = choose(tries, self.cfg["val_size"], self.preferred(cands))
            if pick["clear"] or len(seeds) >= min(self.tuning["max_seeds"], len(self.tuning_seeds)):
                return {**pick, "rounds": rounds}, []
            pool = [c for c in pool if self.name(c) in pick["contenders"]]
            seeds = self.tuning_seeds[:len(seeds) + 1]

    def plan(self) -> tuple[list[tuple[str, object, int]], dict]:
        """``(jobs, chosen)``: the ``(role, candidate, seed)`` runs not finished yet, most urgent first (tuning
        runs, then the chosen candidates at every seed, then the study), and the choices made so far."""
        chosen, _, wanted = self.choices()
        jobs = [("tune", c, s) for c, s in wanted]
        jobs += [("final", c, s) for s in self.seeds for c in self.finals(chosen)]
        jobs += [("study", c, s) for c, s in self.study(chosen)]
        seen, todo = set(), []
        for role, c, s in jobs:
            key = (self.name(c), s)
            if key in seen:
                continue
            seen.add(key)
            rec = self.record(c, s)
            if rec is None:
                todo.append((role, c, s))
            else:  # a finished run is reused only if made with the settings asked for now
                runner.check_settings(rec, self.run_dir(c, s), self.recipe(c), self.method(c))
        return todo, chosen

    # what the runner needs (fkdlib.experiments.runner): the runs to do now, and how a process trains one of them
    def todo(self) -> list:
        """The teacher while it is not done (every student needs it), then ``plan()``'s runs as ``runner.Run``s."""
        if not finished(self.teacher_dir):
            return [runner.Run(self.teacher_dir.name, "teacher")]
        return [runner.Run(str(self.run_dir(c, s).relative_to(self.out)), role, c, s) for role, c, s in self.plan()[0]]

    def execute(self, run, data_root=None, device=None, progress=None, precision: str = "auto") -> dict:
        """Train ``run`` in this process (its data and the teacher loaded once per process)."""
        from ..models.teachers import load_teacher

        if getattr(self, "_data", None) is None:
            self._data = self.data(data_root)
        common = dict(device=device, progress=progress, precision=precision)
        if run.role == "teacher":
            args, kw = self.teacher_job(self._data)
        else:
            if getattr(self, "_teacher", None) is None:
                self._teacher = load_teacher(self.teacher_dir / "model.pt", device=device or "cpu")
            args, kw = self.student_job(run.spec, run.seed, self._data, self._teacher)
            if getattr(self, "_cache", None) is None:
                self._cache = grid_cache(device, CACHE_BYTES)
            kw["teacher_cache"] = self._cache
        return runner.train_or_reuse(*args, **kw, **common)

    def final_rows(self, chosen: dict) -> tuple[dict, dict]:
        """``(rows, by_seed)``: per final method its chosen candidate, the test accuracy of every seed with its mean
        and 95% CI, and its finals' diagnostics (means over seeds); and ``{method: {seed: test accuracy}}``."""
        rows, by_seed = {}, {}
        for name in self.cfg["methods"]:
            if name not in chosen:
                continue
            recs = {s: r for s in self.seeds if (r := self.record(chosen[name], s)) is not None}
            by_seed[name] = {s: final(r) for s, r in recs.items()}
            finals = [final_metrics(r) for r in recs.values()]
            mean, ci = mean_ci95(list(by_seed[name].values())) if recs else (float("nan"), float("nan"))
            gamma = self.method(chosen[name]).gamma
            rows[name] = {"run": self.name(chosen[name]), "method": self.describe(chosen[name]),
                          "test_acc": by_seed[name], "mean": mean, "ci95": ci, "n": len(recs),
                          "train_acc": mean_present(100 * f["train_acc"] for f in finals),
                          **({"train_clean_acc": mean_present(100 * f["train_clean_acc"] for f in finals)}
                             if any("train_clean_acc" in f for f in finals) else {}),
                          "val_acc": mean_present(100 * f["val_acc"] for f in finals),
                          "train_ce": mean_present(f["train_ce"] / gamma for f in finals),  # unweighted
                          "kernel_distance": mean_present(f.get("kernel_distance") for f in finals),
                          "kernel_alignment": mean_present(f.get("kernel_alignment") for f in finals),
                          "feature_norm": mean_present(f.get("feature_norm") for f in finals),
                          "last_two_epochs_gain": mean_present(_last_two_gain(r) for r in recs.values())}
        return rows, by_seed

    def data(self, data_root=None) -> dict:
        return comparison_data(self.cfg, data_root)

    def teacher_job(self, data: dict) -> tuple[tuple, dict]:
        return ((self.cfg["teacher"], data["teacher_train"], data["test"],
                 config.recipe(self.cfg["preset"], **self.cfg["teacher_recipe"]), self.teacher_dir),
                dict(seed=0, val_data=data["val"]))

    def recipe(self, cand):
        """The recipe a candidate's student trains with."""
        return config.recipe(self.cfg["preset"], **self.cfg["student_recipe"])

    def method(self, cand) -> Method:
        return cand

    def student_job(self, cand, seed: int, data: dict, teacher) -> tuple[tuple, dict]:
        return ((self.cfg["student"], data["train"], data["test"], self.recipe(cand), self.run_dir(cand, seed)),
                dict(method=cand, teachers=[teacher],  # plain runs too: the probe measures their kernel
                     seed=seed, val_data=data["val"]))

    def summarize(self) -> dict:
        """Write ``summary.json``: the teacher, every tuning table with its choice, per method the chosen candidate's
        test accuracy at every seed (mean, 95% CI), and the paired differences of ``contrasts``."""
        chosen, tables, _ = self.choices()
        teacher = run_record(self.teacher_dir)
        methods, by_seed = self.final_rows(chosen)
        paired = {f"{a} - {b}": paired_ci95(by_seed[a], by_seed[b]) for a, b in self.contrasts
                  if by_seed.get(a) and by_seed.get(b)}
        registered = self.registered_family(by_seed)
        t_cfg = run_config(teacher)
        summary = {"experiment": self.experiment, "scale": self.scale, "teacher": self.cfg["teacher"],
                   "student": self.cfg["student"], "data": t_cfg["data_label"],
                   "num_train": {"teacher": t_cfg["num_train"], "student": self.cfg.get("train_size")},
                   "val_size": self.cfg["val_size"], "teacher_test_acc": final(teacher),
                   "tuning": tables, "methods": methods, "paired": paired,
                   "order": {"methods": list(methods), "paired": list(paired)},  # the JSON file sorts its keys
                   "runs": run_names(self.out), **({"overrides": self.overrides} if self.overrides else {}),
                   **registered,
                   **self.summary_extra(teacher, methods, chosen)}
        write_record(self.out / "summary.json", summary, provenance(config={"sizes": self.cfg}))
        return summary

    def summary_extra(self, teacher: dict, methods: dict, chosen: dict) -> dict:
        """What a grid's summary adds to the common one."""
        return {}

    def registered_family(self, by_seed: dict) -> dict:
        """The contrasts fixed before the first final (``cfg["family"]``: ``[a, b]`` pairs, ``cfg["alpha"]``), each
        with its paired interval, paired-t p-value and Holm-adjusted verdict over the whole family (``stats.family``);
        ``{}`` for a grid without one. A contrast whose finals are not all in yet is listed as pending, and the
        family is judged only once every contrast has every final seed; ``paired`` holds the rest: exploratory."""
        if not self.cfg.get("family"):
            return {}
        names = {f"{a} - {b}": (a, b) for a, b in self.cfg["family"]}
        complete = all(len(by_seed.get(m, {})) == len(self.seeds) for pair in names.values() for m in pair)
        judged = family({k: paired_ci95(by_seed[a], by_seed[b]) for k, (a, b) in names.items()},
                        self.cfg["alpha"]) if complete else {}
        return {"family": {"contrasts": list(names), "alpha": self.cfg["alpha"], "correction": "holm",
                           "seeds": self.seeds, "tuning_seeds": self.tuning_seeds, "why": self.cfg.get("family_why"),
                           "complete": complete, "results": judged}}


def ladder(value: float, up: bool) -> float:
    """The next value of the 1-3-10 ladder (..., 0.1, 0.3, 1, 3, 10, 30, ...) above or below ``value``; a value
    off the ladder (0.333 = 1/3) moves to the nearest ladder value at least twice as far (1 above, 0.1 below)."""
    if value <= 0:
        raise ValueError(f"a search's axis is positive, got {value}")
    rungs = [m * 10.0 ** e for e in range(math.floor(math.log10(value)) - 1, math.floor(math.log10(value)) + 2)
             for m in (1, 3)]
    pick = min(r for r in rungs if r > 2 * value) if up else max(r for r in rungs if r < value / 2)
    return float(f"{pick:.6g}")


def run_to_summary(grid, data_root=None, device=None, progress=None, precision: str = "auto", **executor) -> dict:
    """Any grid with ``todo``/``execute``/``summarize`` through ``runner.run_grid``; its summary (also written)."""
    if grid.todo():  # a grid with runs to train pins its arithmetic (one precision per grid, whatever machine)
        precision = pinned(grid.out, "precision", precision, lambda: resolve_precision(precision, get_device(device)))
    parallel = (executor.get("workers") or 1) > 1 or executor.get("ray")
    options = dict(data_root=str(data_root) if data_root else None, device=str(device) if device else None,
                   progress=False if parallel else progress, precision=precision)
    ref = runner.GridRef(f"{type(grid).__module__}:{type(grid).__qualname__}", grid.scale, str(grid.out),
                         tuple(sorted(options.items())), json.dumps(getattr(grid, "overrides", {}), sort_keys=True))
    failures = runner.run_grid(grid, ref, progress=progress, desc=f"{grid.experiment} ({grid.scale})", **executor)
    summary = grid.summarize()
    if failures:
        raise runner.GridFailed(failures)
    return summary


def _last_two_gain(rec: dict) -> float | None:
    """Test accuracy points added by the last two epochs (from the epoch before them to the end)."""
    accs = [h["test_acc"] for h in history(rec) if "test_acc" in h]
    return 100 * (accs[-1] - accs[-3]) if len(accs) >= 3 else None
