"""The experiment grid: runs once, skips what is done, summarises only from the run files."""
import json

import pytest

from fkdlib import config, experiments
from fkdlib.results import mean_ci95


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
    from fkdlib import comparison

    summary = tiny_grid
    assert set(summary["methods"]) == {"none", "fkd"} and summary["methods"]["fkd"]["n"] == 2

    def must_not_run(*a, **k):
        raise AssertionError("a finished grid must not load data or train again")

    monkeypatch.setattr(experiments, "train", must_not_run)
    monkeypatch.setattr(comparison, "comparison_data", must_not_run)
    again = experiments.method_comparison("smoke", progress=False)
    assert json.dumps(again["methods"]) == json.dumps(summary["methods"])  # NaN-safe


def test_the_summary_is_computed_from_the_run_files(tiny_grid):
    from fkdlib import comparison

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


def test_a_run_held_by_a_live_process_is_waited_for_and_a_stale_lock_is_cleared(tmp_path):
    import os
    import threading
    import time

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").write_text("999999999")  # no such process: stale
    with experiments._run_lock(run_dir):
        assert (run_dir / ".lock").read_text() == str(os.getpid())
    assert not (run_dir / ".lock").exists()

    (run_dir / ".lock").write_text(str(os.getpid()))  # held by a live process (this one)
    threading.Timer(0.3, lambda: (run_dir / ".lock").unlink()).start()
    t0 = time.perf_counter()
    with experiments._run_lock(run_dir, poll_s=0.05):
        pass
    assert time.perf_counter() - t0 >= 0.25


def test_a_second_worker_skips_a_run_another_live_process_holds_and_then_waits_for_it(tmp_path, monkeypatch):
    import os
    import threading

    calls = []
    monkeypatch.setattr(experiments, "train", lambda arch, tr, te, recipe, run_dir, **kw: calls.append(run_dir.name) or {})
    busy, free = tmp_path / "busy", tmp_path / "free"
    busy.mkdir()
    (busy / ".lock").write_text(str(os.getpid()))  # a live process (this one) is training "busy"
    jobs = [((None, None, None, None, d), {}) for d in (busy, free)]
    assert experiments._run_once(None, None, None, None, busy, wait=False) is None and calls == []
    # the grid trains "free" first, then waits on "busy" until its holder lets go, then takes it over
    threading.Timer(0.3, lambda: (busy / ".lock").unlink()).start()
    monkeypatch.setattr(experiments, "_run_lock", _fast_poll(experiments._run_lock))
    experiments._run_grid(jobs, progress=False, desc="grid")
    assert calls == ["free", "busy"] and not (busy / ".lock").exists()


def _fast_poll(run_lock):
    return lambda run_dir, wait=True: run_lock(run_dir, poll_s=0.05, wait=wait)


def test_a_lock_left_by_a_dead_process_is_taken_over(tmp_path, monkeypatch):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / ".lock").write_text("999999999")  # no such process
    calls = []
    monkeypatch.setattr(experiments, "train", lambda *a, **k: calls.append(1) or {"ok": True})
    assert experiments._run_once(None, None, None, None, run_dir, wait=False) == {"ok": True} and calls == [1]


def test_a_finished_run_made_with_other_settings_is_not_silently_reused(tiny_grid):
    from fkdlib.methods import Method
    from fkdlib.recipes import get_recipe

    cfg = config.sizes("method_comparison", "smoke")
    run_dir = experiments.experiment_dir("method_comparison", "smoke") / "runs" / "fkd_w100_fr0.01sq_s0"
    recipe = get_recipe(cfg["preset"], **cfg["student_recipe"])
    same = experiments._run_once(None, None, None, recipe, run_dir, method=Method("fkd"))
    assert same["result"]["status"] == "done"
    with pytest.raises(RuntimeError, match=r"other settings \(recipe.lr: .*Delete that folder"):
        experiments._run_once(None, None, None, get_recipe(cfg["preset"], **dict(cfg["student_recipe"], lr=0.123)),
                              run_dir, method=Method("fkd"))
    with pytest.raises(RuntimeError, match="method.lam_kd"):
        experiments._run_once(None, None, None, recipe, run_dir, method=Method("fkd", lam_kd=1.0))


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
