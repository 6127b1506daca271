"""Ensemble size in the regime the paper tests: the teachers' diversity is recorded before any student, and a grid
whose ensemble does not beat one teacher by min_gain trains no student and says why."""
import json

from fkdlib.engine.diversity import diversity
from fkdlib.experiments import ensemble
from fkdlib.experiments.config import sizes
from fkdlib.models.teachers import load_teacher


def test_diversity_comes_first_and_the_gain_gates_the_students(tmp_path):
    summary = ensemble.run("smoke", out=tmp_path, overrides=dict(min_gain=100.0),
                           grid_class=ensemble.ConvergedEnsembleGrid)
    cfg = sizes("ensemble_size_converged", "smoke")
    record = json.loads((tmp_path / ensemble.DIVERSITY).read_text())
    assert record["provenance"]["config"]["teachers"] == ["none_s100", "none_s101"]
    div = record["result"]
    assert summary["diversity"] == div and set(summary["teachers"]) == {"none_s100", "none_s101"}
    # the record is the teachers' own: recomputed from their saved weights it is the same
    grid = ensemble.ConvergedEnsembleGrid("smoke", tmp_path, dict(min_gain=100.0))
    data = ensemble.comparison_data(grid.proto, None)
    models = [load_teacher(d / "model.pt").model for d in grid.teacher_dirs]
    again = diversity(models, data["test"], cfg["E"], cfg["kernel_images"])
    assert again["ensemble_acc"] == {int(k): v for k, v in div["ensemble_acc"].items()}
    assert again["kernel_distance"] == div["kernel_distance"]
    # the teachers differ (their seeds), and the gain is far under 100 points: not valid, no student trained
    assert div["kernel_distance"] > 0 and div["single_acc"][0] != div["single_acc"][1]
    assert summary["valid"] is False and summary["state"].startswith("not valid")
    assert grid.todo() == [] and not (tmp_path / "runs").exists()
    # a threshold the gain meets makes the grid valid; its students wait for the comparison's chosen weights
    grid = ensemble.ConvergedEnsembleGrid("smoke", tmp_path, dict(min_gain=-100.0))
    assert grid.valid() is True and grid.summarize()["state"].startswith("valid")


def test_a_valid_grid_rechecks_fkds_lambda_at_the_most_teachers_then_trains_every_student(tmp_path, monkeypatch):
    weights = {"kd": {"lam_kd": 0.9}, "fkd": {"lam_kd": 30.0, "lam_fr": 0.01, "fr_squared": True}}
    monkeypatch.setattr(ensemble.ConvergedEnsembleGrid, "weights", lambda self: weights)
    grid = ensemble.ConvergedEnsembleGrid("smoke", tmp_path, dict(min_gain=-100.0))
    seen = []
    while todo := grid.todo():
        seen.append({(r.role, r.name) for r in todo})
        for run in todo:
            grid.execute(run)
    roles = [{role for role, _ in step} for step in seen]
    assert roles[:3] == [{"teacher"}, {"diversity"}, {"tune"}], "teachers, their diversity, then the search"
    tuned = sorted(name for step in seen for role, name in step if role == "tune")
    # the search starts at the comparison's lambda and its ladder neighbours, at E = 2, on the tuning seed only
    assert {"runs/fkd_w10_fr0.01sq_E2_s90", "runs/fkd_w30_fr0.01sq_E2_s90",
            "runs/fkd_w100_fr0.01sq_E2_s90"} <= set(tuned) and all(n.endswith("_E2_s90") for n in tuned)
    summary = grid.summarize()
    table = summary["lambda_search"]
    lam = summary["weights"]["fkd"]["lam_kd"]
    assert table["run"] == f"fkd_w{lam:g}_fr0.01sq" and lam in table["tried"]
    assert table["bracketed"] == (min(table["tried"]) < lam < max(table["tried"]))
    assert {10.0, 30.0, 100.0} <= set(table["tried"]) and len(table["tried"]) <= 3 + 2  # max_extend 1 a side
    # every student of every final seed, FKD at the chosen lambda whatever its E, KD at the comparison's weight
    cells = {"none", "kd E=1", "kd E=2", "fkd E=1", "fkd E=2", "fkd-concat E=2"}
    assert set(summary["rows"]) == cells and all(r["n"] == 2 for r in summary["rows"].values())
    assert {summary["rows"][c]["run"] for c in ("fkd E=1", "fkd E=2")} == {f"fkd_w{lam:g}_fr0.01sq"}
    assert summary["rows"]["kd E=2"]["run"] == "kd_w0.9"
    # each student learned from as many teachers as its E says
    rec = json.loads((tmp_path / "runs" / f"fkd_w{lam:g}_fr0.01sq_E2_s1" / "result.json").read_text())
    assert len(rec["provenance"]["config"]["teachers"]) == 2
    # the family fixed in advance is judged with Holm once every final seed is in
    family = summary["family"]
    assert family["complete"] and family["correction"] == "holm" and family["seeds"] == [0, 1]
    assert set(family["results"]) == {f"{a} - {b}" for a, b in sizes("ensemble_size_converged", "smoke")["family"]}
    assert summary["state"] == "complete"
