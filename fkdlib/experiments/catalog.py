"""One function per paper experiment (docs/paper.md §3); ``python -m fkdlib experiment NAME --scale ...`` calls them.

Each runs a grid of runs through ``fkdlib.experiments.runner``: a finished run (its ``result.json`` says done) is
skipped, a killed one resumes from its checkpoint. Every run has its own folder under ``results/<experiment>/<scale>/``
and the summary is computed from those files only. Keyword arguments (every experiment): the executor's,
``workers=N`` for N local worker processes, ``ray="auto"`` or a cluster's address for Ray tasks (by default the runs
train one after another here), ``threads``, ``resources``; any other is an override of the experiment's sizes
(``ensemble_size("lite", E=[1, 2], seeds=[0])``; ``config.sizes`` lists them), whose runs go to a folder of their
own, ``results/<experiment>/<scale>-<hash of the overrides>/``, so the committed results are never touched.
"""
from __future__ import annotations

from ..records import experiment_dir, final, final_metrics, provenance, write_record
from ..stats import mean_ci95, mean_present, paired_ci95
from ..theory.experiment import run as theory   # notebook 02's simulation: results/theory/<scale>.json
from . import comparison, config, ensemble
from . import convergence as doubling   # the module; ``convergence`` below is its catalog entry
from .cross import ConvergedCrossGrid, CrossGrid


EXECUTOR = ("workers", "ray", "threads", "resources")


def _split(kw: dict) -> tuple[dict, dict | None]:
    """``(executor, overrides)`` from an experiment's keyword arguments."""
    overrides = {k: v for k, v in kw.items() if k not in EXECUTOR}
    return {k: v for k, v in kw.items() if k in EXECUTOR}, overrides or None


def method_comparison(scale: str | None = None, data_root=None, device=None, progress: bool | None = None,
                      precision: str = "auto", **kw) -> dict:
    """docs/paper.md §3.1 at our scale (``fkdlib.experiments.comparison``): one teacher; per method (none, KD, RKD, SP, FKD without
    FR, FKD, FR only) weights chosen on a held-out validation split, then paired seeds of the chosen weights.

    Returns the summary (also written to ``summary.json``): the teacher, the protocol checks, every tuning table,
    per method the test accuracy of each seed with its mean and 95% CI, and the paired differences.
    When every run is already done (committed results), no data is loaded and nothing is trained.
    """
    executor, overrides = _split(kw)
    return comparison.run(scale, data_root=data_root, device=device, progress=progress, precision=precision,
                          overrides=overrides, **executor)


def method_comparison_converged(scale: str | None = None, data_root=None, device=None, progress: bool | None = None,
                                precision: str = "auto", **kw) -> dict:
    """docs/paper.md §3.1 in the regime the paper tests (``comparison.ConvergedGrid``): the students train as long
    as the doubling test (``convergence``) says, tuning uses seeds no final uses and searches that bracket, and the
    contrasts are a family fixed in advance, judged with Holm's correction. Returns the summary."""
    executor, overrides = _split(kw)
    return comparison.run(scale, data_root=data_root, device=device, progress=progress, precision=precision,
                          grid_class=comparison.ConvergedGrid, overrides=overrides, **executor)


def fkd_in_practice(scale: str | None = None, data_root=None, device=None, progress: bool | None = None,
                    precision: str = "auto", **kw) -> dict:
    """Notebook 03: the method comparison's runs that show FKD's two knobs, ``{label: {seed: run record}}``.

    FKD without FR at each lambda_KD of the tuning grid on the first three seeds (the kernel term alone), the
    plain student, FKD with its chosen regulariser and the FR-only control: every record's per-epoch history
    holds the kernel alignment with the teacher, the kernel distance, the feature norm and every loss term.
    """
    scale = config.get_scale(scale)
    method_comparison(scale, data_root, device, progress, precision, **kw)
    overrides = _split(kw)[1]
    grid = comparison.Grid(scale, experiment_dir("method_comparison", scale, overrides), overrides)
    chosen, _, _ = grid.choices()
    seeds = grid.seeds[:grid.cfg.get("study_seeds", 3)]
    runs = {label: chosen[m] for label, m in [("no distillation", "none"), ("FR only", "fr"),
                                              ("FKD (chosen weights)", "fkd")] if m in chosen}
    runs.update({f"FKD without FR, lambda_KD={m.lam_kd:g}": m
                 for m in comparison.candidates("fkd-nofr", grid.tuning, chosen)})
    records = {label: {s: grid.record(m, s) for s in seeds} for label, m in runs.items()}
    _summarize_fkd_in_practice(scale, grid, runs, records, overrides)
    return records


def _summarize_fkd_in_practice(scale: str, grid, runs: dict, records: dict, overrides: dict | None) -> None:
    """``results/fkd_in_practice/<scale>/summary.json``: per run label its weights, run folders, test accuracy per
    seed (mean, 95% CI), final kernel distance and feature norm, and its paired difference from the plain student."""
    def acc(label):
        return {s: final(r) for s, r in records[label].items() if r is not None}

    rows = {}
    for label, method in runs.items():
        finals = [final_metrics(r) for r in records[label].values() if r is not None]
        mean, ci = mean_ci95(list(acc(label).values())) if finals else (float("nan"), float("nan"))
        rows[label] = {"method": method.to_dict(), "runs": [str(grid.run_dir(method, s).relative_to(grid.out))
                                                            for s in records[label]],
                       "test_acc": acc(label), "mean": mean, "ci95": ci,
                       "kernel_distance": mean_present(f.get("kernel_distance") for f in finals),
                       "feature_norm": mean_present(f.get("feature_norm") for f in finals)}
        if label != "no distillation" and finals:
            rows[label]["minus_plain"] = paired_ci95(acc(label), acc("no distillation"))
    write_record(experiment_dir("fkd_in_practice", scale, overrides) / "summary.json",
                 {"experiment": "fkd_in_practice", "scale": scale, "rows": rows,
                  "runs_in": f"results/method_comparison/{grid.out.name}/", **({"overrides": overrides} if overrides else {})},
                 provenance(config={"sizes": grid.cfg}))


def ensemble_size(scale: str | None = None, data_root=None, device=None, progress: bool | None = None,
                  precision: str = "auto", **kw) -> dict:
    """docs/paper.md §3.2 at our scale (``fkdlib.experiments.ensemble``): one architecture for every teacher and student,
    the teachers trained like the students on their data; KD, FKD on the mean of the teachers' kernels and FKD on
    their concatenated features at each E, paired over seeds with plain students. Returns the summary."""
    executor, overrides = _split(kw)
    return ensemble.run(scale, data_root=data_root, device=device, progress=progress, precision=precision,
                        overrides=overrides, **executor)


def ensemble_size_converged(scale: str | None = None, data_root=None, device=None, progress: bool | None = None,
                            precision: str = "auto", **kw) -> dict:
    """Ensemble size in the regime the paper tests (``ensemble.ConvergedEnsembleGrid``): converged teachers, their
    diversity recorded and the grid's validity judged before any student. Returns the summary."""
    executor, overrides = _split(kw)
    return ensemble.run(scale, data_root=data_root, device=device, progress=progress, precision=precision,
                        overrides=overrides, grid_class=ensemble.ConvergedEnsembleGrid, **executor)


def cross_dataset(scale: str | None = None, data_root=None, device=None, progress: bool | None = None,
                  precision: str = "auto", **kw) -> dict:
    """docs/paper.md §3.3 at our scale (``fkdlib.experiments.cross``): a teacher on one label space, students on another;
    each method's weight and learning rate chosen on validation, then paired seeds. Returns the summary."""
    executor, overrides = _split(kw)
    return comparison.run(scale, data_root=data_root, device=device, progress=progress, precision=precision,
                          grid_class=CrossGrid, overrides=overrides, **executor)


def cross_dataset_converged(scale: str | None = None, data_root=None, device=None, progress: bool | None = None,
                            precision: str = "auto", **kw) -> dict:
    """Cross-dataset distillation in the regime the paper tests (``cross.ConvergedCrossGrid``): a teacher trained to
    its own doubling test on every image of its label space, students in the converged regime, searches that
    bracket, a tie rule stated in advance, the family with Holm. Returns the summary."""
    executor, overrides = _split(kw)
    return comparison.run(scale, data_root=data_root, device=device, progress=progress, precision=precision,
                          grid_class=ConvergedCrossGrid, overrides=overrides, **executor)


def convergence(scale: str | None = None, data_root=None, device=None, progress: bool | None = None,
                precision: str = "auto", **kw) -> dict:
    """The doubling test (``fkdlib.experiments.convergence``): the plain student and FKD at one weight, at doubling
    budgets, on the method comparison's data; the shortest budget at which doubling moves validation accuracy by
    under a point is the comparison's regime. Returns the summary."""
    executor, overrides = _split(kw)
    return doubling.run(scale, data_root=data_root, device=device, progress=progress, precision=precision,
                        overrides=overrides, **executor)


EXPERIMENTS = {"convergence": convergence, "method_comparison": method_comparison,
               "method_comparison_converged": method_comparison_converged, "fkd_in_practice": fkd_in_practice,
               "ensemble_size": ensemble_size,
               "ensemble_size_converged": ensemble_size_converged, "cross_dataset": cross_dataset,
               "cross_dataset_converged": cross_dataset_converged, "theory": theory}
