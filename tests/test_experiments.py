"""The experiment grid: runs once, skips what is done, summarises only from the run files."""
import json

import pytest

from fkdlib import experiments
from fkdlib.experiments import config
from fkdlib.stats import mean_ci95


@pytest.fixture(scope="module")
def tiny_grid(tmp_path_factory):
    """A two-method, two-seed smoke grid, run once for the module."""
    mp = pytest.MonkeyPatch()
    mp.setenv("FKD_RESULTS_DIR", str(tmp_path_factory.mktemp("results")))
    sizes = dict(config._SIZES["method_comparison"]["smoke"], methods=["none", "fkd"], seeds=[0, 1])
    mp.setitem(config._SIZES, "method_comparison", {"smoke": sizes})
    summary = experiments.method_comparison("smoke", progress=False)
    yield summary
    mp.undo()


def test_the_grid_runs_then_skips_finished_runs_and_loads_no_data(tiny_grid, monkeypatch):
    from fkdlib.experiments import comparison

    summary = tiny_grid
    assert set(summary["methods"]) == {"none", "fkd"} and summary["methods"]["fkd"]["n"] == 2

    def must_not_run(*a, **k):
        raise AssertionError("a finished grid must not load data or train again")

    monkeypatch.setattr("fkdlib.experiments.runner.train", must_not_run)
    monkeypatch.setattr("fkdlib.experiments.tuning.comparison_data", must_not_run)
    again = experiments.method_comparison("smoke", progress=False)
    assert json.dumps(again["methods"]) == json.dumps(summary["methods"])  # NaN-safe


def test_the_summary_is_computed_from_the_run_files(tiny_grid):
    from fkdlib.experiments import comparison

    out = experiments.experiment_dir("method_comparison", "smoke")
    run = tiny_grid["methods"]["fkd"]["run"]
    # edit one run's record: the summary must follow the files, not anything remembered
    path = out / "runs" / f"{run}_s1" / "result.json"
    record = json.loads(path.read_text())
    record["result"]["final"]["test_acc"] = 0.5
    path.write_text(json.dumps(record))
    summary = comparison.summarize("smoke")
    first = 100 * json.loads((out / "runs" / f"{run}_s0" / "result.json").read_text())["result"]["final"]["test_acc"]
    mean, ci = mean_ci95([first, 50.0])
    assert summary["methods"]["fkd"]["mean"] == pytest.approx(mean)
    assert summary["methods"]["fkd"]["ci95"] == pytest.approx(ci)
    plain = summary["methods"]["none"]["test_acc"]
    assert summary["paired"]["fkd - none"]["diffs"] == pytest.approx([first - plain[0], 50.0 - plain[1]])
    saved = json.loads((out / "summary.json").read_text())
    assert saved["result"]["methods"]["fkd"]["test_acc"]["1"] == 50.0 and "git_commit" in saved["provenance"]


def test_a_finished_run_made_with_other_settings_is_not_silently_reused(tiny_grid, monkeypatch):
    from fkdlib.experiments import runner
    from fkdlib.distill.methods import Method
    from fkdlib.experiments.config import recipe as get_recipe

    cfg = config.sizes("method_comparison", "smoke")
    run_dir = experiments.experiment_dir("method_comparison", "smoke") / "runs" / "fkd_w100_fr0.01sq_s0"
    recipe = get_recipe(cfg["preset"], **cfg["student_recipe"])
    same = runner.train_or_reuse(None, None, None, recipe, run_dir, method=Method("fkd"))
    assert same["result"]["status"] == "done"
    with pytest.raises(RuntimeError, match=r"other settings \(recipe.lr: .*Delete that folder"):
        runner.train_or_reuse(None, None, None, get_recipe(cfg["preset"], **dict(cfg["student_recipe"], lr=0.123)),
                              run_dir, method=Method("fkd"))
    with pytest.raises(RuntimeError, match="method.lam_kd"):
        runner.train_or_reuse(None, None, None, recipe, run_dir, method=Method("fkd", lam_kd=1.0))
    # the grid itself refuses to plan around runs made with settings since edited
    sizes = dict(config._SIZES["method_comparison"]["smoke"], methods=["none", "fkd"], seeds=[0, 1],
                 student_recipe=dict(cfg["student_recipe"], lr=0.123))
    monkeypatch.setitem(config._SIZES, "method_comparison", {"smoke": sizes})
    with pytest.raises(RuntimeError, match="recipe.lr"):
        experiments.method_comparison("smoke", progress=False)


def test_fkd_in_practice_reads_the_comparisons_runs_and_summarises_them_paired(tiny_grid):
    records = experiments.fkd_in_practice("smoke", progress=False)
    saved = json.loads((experiments.experiment_dir("fkd_in_practice", "smoke") / "summary.json").read_text())
    rows = saved["result"]["rows"]
    assert set(records) == set(rows) and "no distillation" in rows and "FKD without FR, lambda_KD=100" in rows
    plain = {s: 100 * r["result"]["final"]["test_acc"] for s, r in records["no distillation"].items()}
    fkd = {s: 100 * r["result"]["final"]["test_acc"] for s, r in records["FKD (chosen weights)"].items()}
    diffs = rows["FKD (chosen weights)"]["minus_plain"]["diffs"]
    assert diffs == pytest.approx([fkd[s] - plain[s] for s in sorted(plain)])
    assert all(r.startswith("runs/") for row in rows.values() for r in row["runs"])
