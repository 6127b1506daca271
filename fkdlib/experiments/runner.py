"""Grids of training runs: one after another in this process, on a pool of local worker processes, or as Ray tasks.

A grid (``comparison.Grid``, ``cross_dataset.CrossGrid``, ``ensemble_size.EnsembleGrid``) says which runs it needs
now (``todo()``: ``Run``s whose inputs are finished, most urgent first) and trains one in whatever process runs it
(``execute(run, ...)``), loading its data and teachers there once per process. Every run writes its own record to
the results folder, so what is done is read from the files, and an interrupted grid resumes where it stopped (a
killed run from its last epoch). On a cluster that folder must be storage every node shares.

The runner only schedules: it keeps up to ``capacity`` runs in flight, asks the grid again after every finished
run (a finished tuning run may settle a choice and unlock the next ones), retries a failed run once, then reports it
by name with its error while the rest of the grid goes on. Executors: ``sequential`` (the default; nbval and smoke
runs), ``workers=N`` (``concurrent.futures`` with the spawn start method: N processes sharing the cores or one GPU),
``ray="auto"`` (start or join a local Ray) or ``ray="ADDRESS"`` (join a cluster; ``pip install fkdlib[cluster]``).
"""
from __future__ import annotations

import importlib
import json
from collections import Counter
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import torch

from ..distill.methods import Method
from ..engine.progress import bar
from ..engine.train import train
from ..records import finished, run_record


@dataclass(frozen=True)
class Run:
    """One run of a grid: ``name`` (its folder, relative to the grid's), what it is for, the grid's own description
    of it (a ``Method``, a ``Candidate``, ...) and its seed. Picklable: it travels to worker processes."""

    name: str
    role: str
    spec: object = None
    seed: int = 0


@dataclass(frozen=True)
class GridRef:
    """How any process rebuilds a grid: its class (``"module:Class"``), scale, folder and the options of every run."""

    cls: str
    scale: str
    out: str
    options: tuple = field(default_factory=tuple)
    overrides: str = "{}"   # the grid's size overrides, as JSON (hashable)

    def build(self):
        module, name = self.cls.split(":")
        overrides = json.loads(self.overrides)
        return getattr(importlib.import_module(module), name)(self.scale, Path(self.out),
                                                              **({"overrides": overrides} if overrides else {}))


class GridFailed(RuntimeError):
    """Raised after a grid has done all it could, naming every run that failed twice and its error."""

    def __init__(self, failures: dict[str, str]):
        self.failures = failures
        lines = "\n".join(f"  {name}: {err}" for name, err in failures.items())
        super().__init__(f"{len(failures)} run(s) failed twice; the other runs are done and summarised:\n{lines}")


def train_or_reuse(arch, train_data, test_data, recipe, run_dir, **kw) -> dict:
    """The record of ``run_dir`` if it holds this very run finished, else ``train`` it (resuming a killed one).

    A finished run is reused only if it was made with the recipe and method asked for now: a grid whose settings
    changed (a new lr chosen on validation, edited sizes) must not silently keep stale runs.
    """
    run_dir = Path(run_dir)
    if not finished(run_dir):
        return train(arch, train_data, test_data, recipe, run_dir, resume=True, **kw)
    record = run_record(run_dir)
    check_settings(record, run_dir, recipe, kw.get("method") or Method())
    return record


def check_settings(record: dict, run_dir, recipe, method) -> None:
    """Raise if a finished run's record was made with another recipe or method than ``recipe``, ``method``."""
    made = record["provenance"].get("config", {})  # a record without its settings cannot be checked
    wanted = json.loads(json.dumps({"recipe": recipe.to_dict(), "method": method.to_dict()}))
    diffs = [f"{part}.{k}: {made[part][k]!r} there, {v!r} now" for part, want in wanted.items()
             for k, v in want.items() if k in made.get(part, {}) and made[part][k] != v]
    if diffs:
        raise RuntimeError(f"{run_dir} holds a finished run made with other settings ({'; '.join(diffs)}). "
                           "Delete that folder to train it again with the new settings, or restore the old ones.")


# the CPU threads of one run, whatever runs it: a CPU's sums depend on how many threads share them, so a fixed count
# makes a run give the same numbers in this process, in a worker or in a Ray task; the cores go to --workers N
THREADS = 1

_GRIDS: dict[GridRef, object] = {}  # per process: each grid built once, with the data and teachers it loaded


def execute(ref: GridRef, run: Run, threads: int | None = None) -> str:
    """Train ``run`` of grid ``ref`` in this process (what every executor calls); returns its name."""
    grid = _GRIDS.get(ref)
    if grid is None:
        grid = _GRIDS[ref] = ref.build()
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        grid.execute(run, **dict(ref.options))
    finally:
        torch.set_num_threads(before)
    return run.name


class _Sequential:
    """Runs each submitted run at once, in this process."""

    capacity = 1

    def __init__(self, threads):
        self.threads = threads

    def submit(self, ref, run) -> Future:
        f = Future()
        try:
            f.set_result(execute(ref, run, self.threads))
        except Exception as err:  # reported by the runner with the run's name
            f.set_exception(err)
        return f

    def restart(self):
        pass

    def close(self):
        pass


class _Pool:
    """N spawned worker processes (``concurrent.futures``); a pool broken by a killed worker is replaced."""

    def __init__(self, workers: int, threads):
        self.capacity, self.threads = workers, threads
        self.pool = self._new()

    def _new(self):
        return ProcessPoolExecutor(self.capacity, mp_context=get_context("spawn"))

    def submit(self, ref, run) -> Future:
        return self.pool.submit(execute, ref, run, self.threads)

    def restart(self):
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.pool = self._new()

    def close(self):
        self.pool.shutdown(wait=True)


class _Ray:
    """Each run a Ray task asking for ``resources`` (e.g. ``{"num_cpus": 1, "num_gpus": 0.25}``: four runs a GPU)."""

    def __init__(self, address: str, workers: int | None, threads, resources: dict | None):
        try:
            import ray
        except ImportError:
            raise ImportError("--ray needs Ray: pip install 'fkdlib[cluster]' (or pip install ray)") from None
        if not ray.is_initialized():
            if address == "auto":
                try:
                    ray.init(address="auto", log_to_driver=False)
                except ConnectionError:  # no cluster running here: start a local one
                    ray.init(log_to_driver=False, include_dashboard=False)
            else:
                ray.init(address=address, log_to_driver=False)
        gpu = torch.cuda.is_available()
        self.resources = resources or {"num_cpus": 1, **({"num_gpus": 1} if gpu else {})}
        per_run = self.resources.get("num_cpus", 1)
        slots = int(ray.cluster_resources().get("CPU", 1) // max(per_run, 1e-9))
        self.capacity = workers or max(1, slots)
        self.threads = threads
        self.task = ray.remote(execute).options(**self.resources)

    def submit(self, ref, run) -> Future:
        return self.task.remote(ref, run, self.threads).future()

    def restart(self):
        pass

    def close(self):
        pass


def _estimate(grid, running, n_todo: int, capacity: int, desc: str) -> bool:
    """Once a run has finished its first epoch: print the grid's size and its time at that rate; True once printed."""
    for run in running:
        try:
            record = run_record(Path(grid.out) / run.name)
            history, epochs = record["result"]["history"], record["provenance"]["config"]["recipe"]["epochs"]
        except (OSError, ValueError, KeyError):
            continue
        if not history:
            continue
        first = history[0]["wall_time_s"]
        total = first * epochs * n_todo / capacity
        print(f"{desc}: {n_todo} run(s) to do now (more may follow as choices are made), first epoch of {run.name} took "
              f"{first:.1f} s: about {total / 3600:.1f} h for them at {capacity} at once, if every epoch and run "
              f"costs the same", flush=True)
        return True
    return False


def make_executor(workers: int | None = None, ray: str | None = None, threads: int | None = THREADS,
                  resources: dict | None = None):
    """The executor the options ask for: Ray if ``ray``, a process pool if ``workers`` > 1, else sequential."""
    if ray:
        return _Ray(ray, workers, threads, resources)
    if workers and workers > 1:
        return _Pool(workers, threads)
    return _Sequential(threads)


def run_grid(grid, ref: GridRef, workers: int | None = None, ray: str | None = None, threads: int | None = THREADS,
             resources: dict | None = None, progress: bool | None = None, retries: int = 1,
             desc: str = "runs") -> dict[str, str]:
    """Train every run ``grid.todo()`` asks for until it asks for none, ``capacity`` at a time; returns the runs that
    failed ``retries + 1`` times, ``{name: error}`` (the others are done). One bar over runs: done, running, failed."""
    ex = make_executor(workers, ray, threads, resources)
    in_flight: dict[Future, Run] = {}
    attempts, failures, done = Counter(), {}, 0
    estimated = getattr(grid, "scale", "") == "smoke"  # toys: nothing worth estimating
    runs_bar = bar(total=0, progress=progress, desc=desc, unit="run")
    warned = getattr(grid, "scale", "") != "full"
    try:
        while True:
            todo = [r for r in grid.todo() if r.name not in failures]
            if not warned and todo:
                warned = True
                print(f"{desc}: the full scale trains {len(todo)} run(s) now (more may follow as choices are made) "
                      f"with the paper's recipe: hours on a GPU, days on a CPU. The time estimate follows the first "
                      f"epoch; stop at any time, and running it again resumes where it stopped.", flush=True)
            busy = {r.name for r in in_flight.values()}
            for run in [r for r in todo if r.name not in busy][:max(0, ex.capacity - len(in_flight))]:
                in_flight[ex.submit(ref, run)] = run
            runs_bar.total = done + len(failures) + len({r.name for r in todo} | set(busy))
            runs_bar.set_postfix(running=len(in_flight), failed=len(failures), refresh=False)
            runs_bar.refresh()
            if not in_flight:
                break
            finished, _ = wait(list(in_flight), timeout=None if estimated else 20, return_when=FIRST_COMPLETED)
            if not estimated:
                estimated = _estimate(grid, in_flight.values(), len(todo), ex.capacity, desc)
            broken = False
            for f in finished:
                run = in_flight.pop(f)
                err = f.exception()
                if err is None:
                    done += 1
                    runs_bar.update(1)
                    continue
                broken |= isinstance(err, BrokenProcessPool)
                attempts[run.name] += 1
                if attempts[run.name] > retries:
                    failures[run.name] = f"{type(err).__name__}: {err}"
            if broken:  # a worker died (killed, out of memory): the pool is gone, and the runs it still held with it;
                in_flight.clear()  # todo() asks for them again and they resume from their last checkpoint
                ex.restart()
    finally:
        runs_bar.close()
        ex.close()
    return failures
