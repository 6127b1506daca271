"""The grid runner (fkdlib.experiments.runner): the same runs and numbers through every executor, killed workers, failing runs."""
import json
import os
import signal
from pathlib import Path

import pytest

from fkdlib.experiments import comparison, tuning
from fkdlib.experiments import runner


class FakeGrid:
    """Runs that write a file; ``boom`` kills its worker the first time, ``bad`` always raises."""

    experiment = "fake"

    def __init__(self, scale, out):
        self.scale, self.out = scale, Path(out)
        self.names = ["a", "b", "c", "d"] + (["boom"] if scale == "kill" else []) + (["bad"] if scale == "raise" else [])

    def todo(self):
        return [runner.Run(n, "final") for n in self.names if not (self.out / n).exists()]

    def execute(self, run, **options):
        tries = self.out / f"{run.name}.tries"
        tries.write_text(str(int(tries.read_text()) + 1 if tries.exists() else 1))
        if run.name == "boom" and tries.read_text() == "1":
            os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-run, as one killed by the OOM killer would
        if run.name == "bad":
            raise ValueError("this run cannot be trained")
        (self.out / run.name).write_text("done")

    def summarize(self):
        return {"done": sorted(p.name for p in self.out.iterdir() if "." not in p.name)}


def _ref(scale, out):
    return runner.GridRef("test_runner:FakeGrid", scale, str(out))


def test_a_worker_killed_mid_run_has_its_run_redone_and_the_grid_completes(tmp_path):
    failures = runner.run_grid(FakeGrid("kill", tmp_path), _ref("kill", tmp_path), workers=2, progress=False)
    assert failures == {}
    assert FakeGrid("kill", tmp_path).summarize()["done"] == ["a", "b", "boom", "c", "d"]
    assert (tmp_path / "boom.tries").read_text() == "2"


def test_a_run_that_raises_is_retried_once_then_reported_by_name_and_the_others_are_kept(tmp_path):
    failures = runner.run_grid(FakeGrid("raise", tmp_path), _ref("raise", tmp_path), progress=False)
    assert list(failures) == ["bad"] and "ValueError: this run cannot be trained" in failures["bad"]
    assert (tmp_path / "bad.tries").read_text() == "2"
    assert FakeGrid("raise", tmp_path).summarize()["done"] == ["a", "b", "c", "d"]
    grid = FakeGrid("raise", tmp_path)
    with pytest.raises(runner.GridFailed, match=r"1 run\(s\) failed twice.*\n  bad: ValueError"):
        tuning.run_to_summary(grid)  # the summary is written first; then the failure is raised, by name


def _finals(root: Path) -> dict:
    """Every run's final metrics under ``root``, keyed by run folder, the wall-clock time left out."""
    out = {}
    for path in sorted(root.rglob("result.json")):
        final = json.loads(path.read_text())["result"]["final"]
        out[str(path.parent.relative_to(root))] = {k: v for k, v in final.items() if k != "wall_time_s"}
    return out


def test_the_smoke_comparison_gives_the_same_runs_and_numbers_through_every_executor(tmp_path, monkeypatch):
    pytest.importorskip("ray")
    results = {}
    for name, executor in [("sequential", {}), ("workers", {"workers": 2}), ("ray", {"ray": "auto", "workers": 2})]:
        root = tmp_path / name
        monkeypatch.setenv("FKD_RESULTS_DIR", str(root))
        summary = comparison.run("smoke", progress=False, precision="fp32", **executor)  # one thread a run
        results[name] = (_finals(root), summary["paired"])
        if name == "sequential":  # every run in this process: the students of a seed read the teacher's outputs once
            caches = [g._cache for g in runner._GRIDS.values() if getattr(g, "_cache", None) is not None]
            assert caches and max(c.hits for c in caches) > 0
    import ray
    ray.shutdown()
    seq, pool, ray_runs = results["sequential"], results["workers"], results["ray"]
    assert len(seq[0]) >= 10 and seq[0] == pool[0] == ray_runs[0]
    assert seq[1] == pool[1] == ray_runs[1]


def test_a_grid_prints_its_size_and_time_once_its_first_epoch_is_measured(tmp_path, capsys):
    class Timed(FakeGrid):
        scale = "lite"

        def execute(self, run, **options):
            d = self.out / run.name
            d.mkdir()
            (d / "result.json").write_text(json.dumps({"result": {"history": [{"wall_time_s": 30.0}]},
                                                       "provenance": {"config": {"recipe": {"epochs": 10}}}}))

    grid = Timed("lite", tmp_path)
    assert runner._estimate(grid, [], 4, 2, "grid") is False  # nothing measured yet
    grid.execute(runner.Run("a", "final"))
    assert runner._estimate(grid, [runner.Run("a", "final")], 4, 2, "grid")
    out = capsys.readouterr().out
    assert "4 run(s) to do now" in out and "first epoch of a took 30.0 s: about 0.2 h for them at 2 at once" in out


def test_a_full_scale_grid_warns_before_it_starts_and_says_it_resumes(tmp_path, capsys):
    runner.run_grid(FakeGrid("full", tmp_path), _ref("full", tmp_path), progress=False, desc="grid")
    out = capsys.readouterr().out
    assert out.count("the full scale trains 4 run(s) now") == 1 and "resumes" in out
    runner.run_grid(FakeGrid("full", tmp_path), _ref("full", tmp_path), progress=False)   # nothing left: no warning
    assert "full scale" not in capsys.readouterr().out


def test_a_free_worker_is_given_the_most_urgent_run_of_the_seed_it_ran_last():
    """The students of a seed share batches, so a worker that keeps its seed can reuse the teacher's outputs."""
    pool = runner._Pool(2, 1)  # no process starts before a run is submitted
    try:
        urgent, b91, c90, d90 = (runner.Run(n, "tune", None, s) for n, s in
                                 [("urgent", 92), ("b", 91), ("c", 90), ("d", 90)])
        pool.seeds = [90, 91]
        assert pool.pick([urgent, b91, c90, d90]) == [c90, b91]
        pool.seeds = [90, None]
        assert pool.pick([urgent, b91, c90, d90]) == [c90, urgent]  # a new worker takes the most urgent run
        assert pool.planned == {"c": 0, "urgent": 1}
        pool.seeds = [None, None]
        assert pool.pick([urgent, b91, c90]) == [urgent, b91]  # nothing to keep: the most urgent first
    finally:
        pool.close()
