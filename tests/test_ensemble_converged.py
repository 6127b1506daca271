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
