"""Cross-dataset distillation in the regime the paper tests: a teacher trained as long as its own doubling test says,
on every image of its label space, then students tuned on seeds of their own with a tie rule stated in advance."""
import json

from fake_runs import fake_run
from fkdlib.distill.methods import Method
from fkdlib.experiments import config
from fkdlib.experiments.cross import Candidate, ConvergedCrossGrid
from fkdlib.experiments.tuning import choose

FR = {"lam_fr": 0.01, "fr_squared": True}


def _grid(tmp_path, monkeypatch, **overrides):
    monkeypatch.setattr(ConvergedCrossGrid, "fkd_regulariser", lambda self: FR)
    return ConvergedCrossGrid("smoke", tmp_path, overrides)


def _drain(grid):
    roles = []
    while todo := grid.todo():
        roles.append({r.role for r in todo})
        for run in todo:
            grid.execute(run)
    return roles


def test_the_teacher_converges_on_its_whole_label_space_before_any_student(tmp_path, monkeypatch):
    tc = dict(config.sizes("cross_dataset_converged", "smoke")["teacher_convergence"], tolerance=101.0)
    grid = _grid(tmp_path, monkeypatch, teacher_convergence=tc)
    roles = _drain(grid)
    assert roles[0] == {"teacher-pilot"} and roles[1] == {"teacher"}, "the pilots come first, then the teacher"
    summary = grid.summarize()
    conv = summary["teacher_convergence"]
    # a tolerance every change meets: the first doubling passes and the teacher trains at its shorter budget
    assert conv["doubling"]["1 -> 2"]["converged"] and conv["epochs"] == 1 and set(conv["budgets"]) == {1, 2}
    teacher = json.loads((grid.teacher_dir / "result.json").read_text())
    data = grid.data()
    assert teacher["result"]["epochs_done"] == 1
    assert teacher["provenance"]["config"]["num_train"] == len(data["teacher_train"]), "every image of its classes"
    pilot = json.loads((grid.pilot_dir(2, 90) / "result.json").read_text())
    assert pilot["provenance"]["config"]["num_train"] == len(data["teacher_train"]) - tc["val_size"]
    # the students: tuned on the tuning seeds only, FKD with the comparison's regulariser, every final seed in
    tuned = {p.name.rsplit("_s", 1)[1] for p in (tmp_path / "runs").iterdir()}
    assert tuned == {"90", "0", "1"} or tuned == {"90", "91", "0", "1"}
    assert summary["methods"]["fkd"]["method"]["lam_fr"] == FR["lam_fr"]
    assert all(summary["methods"][m]["n"] == 2 for m in ("none", "rkd", "sp", "fkd", "fkd-unlabelled"))
    family = summary["family"]
    assert family["complete"] and set(family["results"]) == {"fkd - none", "fkd - rkd", "fkd - sp",
                                                             "fkd-unlabelled - fkd"}


def test_a_teacher_whose_doublings_all_fail_stops_the_grid_and_says_so(tmp_path, monkeypatch):
    tc = dict(config.sizes("cross_dataset_converged", "smoke")["teacher_convergence"], tolerance=-1.0)
    grid = _grid(tmp_path, monkeypatch, teacher_convergence=tc)
    _drain(grid)
    assert grid.teacher_budgets() == [1, 2, 4], "each failed doubling doubles again, up to max_epochs"
    assert not grid.teacher_dir.exists() and not (tmp_path / "runs").exists()
    assert grid.summarize()["state"].startswith("not valid: no doubling")


def _fake(grid, cand, seed, val):
    fake_run(grid.run_dir(cand, seed), val)


def test_a_learning_rate_tie_keeps_the_plain_students_choice(tmp_path, monkeypatch):
    grid = _grid(tmp_path, monkeypatch, methods=["none", "rkd"])
    base, other = grid.base_lr, grid.tuning["lrs"][0]
    _fake(grid, Candidate(Method("none"), base), 90, 60.0)
    _fake(grid, Candidate(Method("none"), other), 90, 61.0)   # the plain student prefers the other rate
    rkd = Method("rkd", lam_kd=Method("rkd").lam_kd)
    _fake(grid, Candidate(rkd, base), 90, 62.0)
    _fake(grid, Candidate(rkd, other), 90, 62.0)               # an exact tie: the plain student's rate wins
    chosen, tables, wanted = grid.choices()
    assert not wanted and chosen["none"].lr == other and chosen["rkd"].lr == other
    # without the rule the first rate tried would have won
    tries = tables["rkd"]["rounds"][-1]
    assert choose(tries, grid.cfg["val_size"])["run"].endswith(f"_lr{base:g}")
    # the plain student's own tie keeps the recipe's rate
    grid2 = _grid(tmp_path / "b", monkeypatch, methods=["none"])
    _fake(grid2, Candidate(Method("none"), base), 90, 60.0)
    _fake(grid2, Candidate(Method("none"), other), 90, 60.0)
    assert grid2.choices()[0]["none"].lr == base


def test_choose_breaks_only_exact_ties_for_the_preferred_run():
    tries = [{"run": "a", "val_acc": {90: 81.2}}, {"run": "b", "val_acc": {90: 81.2}},
             {"run": "c", "val_acc": {90: 81.1}}]
    assert choose(tries, 1000)["run"] == "a" and choose(tries, 1000, prefer="b")["run"] == "b"
    assert choose(tries, 1000, prefer="c")["run"] == "a", "a preferred run that is behind does not win"


def test_fkd_waits_for_the_comparisons_regulariser(tmp_path, monkeypatch):
    monkeypatch.setattr(ConvergedCrossGrid, "fkd_regulariser", lambda self: None)
    chosen, tables, wanted = ConvergedCrossGrid("smoke", tmp_path).choices()
    assert "fkd weight" not in tables and "fkd" not in chosen
    assert wanted and not any(c.method.name == "fkd" for c, _ in wanted), "the other methods tune meanwhile"
