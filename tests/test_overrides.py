"""Experiments take size overrides (``experiments.X(scale, **overrides)``): their runs go to a folder of their own."""
import json

import pytest

from fkdlib import experiments
from fkdlib.experiments import config, runner
from fkdlib.experiments.ensemble import EnsembleGrid


@pytest.fixture
def results(tmp_path, monkeypatch):
    monkeypatch.setenv("FKD_RESULTS_DIR", str(tmp_path))
    return tmp_path


def test_sizes_take_overrides_and_refuse_a_size_that_does_not_exist():
    base = config.sizes("ensemble_size", "smoke")
    assert config.sizes("ensemble_size", "smoke", E=[1])["E"] == [1] and base["E"] != [1]
    assert config.sizes("ensemble_size", "smoke") == base, "an override must not leak into the shared sizes"
    with pytest.raises(ValueError, match="has no size.*epochz.*its sizes:.*teacher_seeds"):
        config.sizes("ensemble_size", "smoke", epochz=3)


def test_an_override_gets_its_own_folder_named_by_its_values():
    plain = experiments.experiment_dir("ensemble_size", "lite")
    a = experiments.experiment_dir("ensemble_size", "lite", {"E": [1, 2]})
    assert a != plain and a.parent == plain.parent and a.name.startswith("lite-")
    assert a == experiments.experiment_dir("ensemble_size", "lite", {"E": [1, 2]})
    assert a != experiments.experiment_dir("ensemble_size", "lite", {"E": [1, 4]})


def test_a_grid_rebuilt_in_a_worker_keeps_its_overrides():
    ref = runner.GridRef("fkdlib.experiments.ensemble:EnsembleGrid", "smoke", "/nowhere", (),
                         json.dumps({"E": [1], "seeds": [0]}))
    grid = ref.build()
    assert isinstance(grid, EnsembleGrid) and grid.cfg["E"] == [1] and grid.cfg["seeds"] == [0]


def test_an_exercise_runs_with_overrides_and_leaves_the_default_grid_alone(results):
    summary = experiments.ensemble_size("smoke", progress=False, precision="fp32", E=[1], seeds=[0])
    assert summary["overrides"] == {"E": [1], "seeds": [0]} and summary["E"] == [1]
    assert set(summary["rows"]) == {"none", "kd E=1", "fkd E=1"}
    assert all(set(r["test_acc"]) == {0} for r in summary["rows"].values())
    assert not experiments.experiment_dir("ensemble_size", "smoke").exists()
    out = experiments.experiment_dir("ensemble_size", "smoke", {"E": [1], "seeds": [0]})
    assert json.loads((out / "summary.json").read_text())["result"]["overrides"] == {"E": [1], "seeds": [0]}
