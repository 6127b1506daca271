"""Grids of training runs: one after another in this process, on a pool of local worker processes, or as Ray tasks.

A grid (``comparison.Grid``, ``cross_dataset.CrossGrid``, ``ensemble_size.EnsembleGrid``) says which runs it needs
now (``todo()``: ``Run``s whose inputs are finished, most urgent first) and trains one in whatever process runs it
(``execute(run, ...)``), loading its data and teachers there once per process. Every run writes its own record to
the results folder, so what is done is read from the files, and an interrupted grid resumes where it stopped (a
killed run from its last epoch). On a cluster that folder must be storage every node shares.

The runner only schedules: it keeps up to ``capacity`` runs in flight, asks the grid again after every finished
run (a finished tuning run may settle a choice and unlock the next ones), retries a failed run once, then reports it
by name with its error while the rest of the grid goes on. Executors: ``sequential`` (the default; nbval and smoke
runs), ``workers=N`` (N spawned worker processes sharing the cores or one GPU; a free worker is given the most urgent run of
the seed it ran last, whose batches its grid may have seen: ``TeacherCache``),
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
from ..records import finished, history, run_config, run_record


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

    def pick(self, runs: list[Run]) -> list[Run]:
        return runs[:1]  # the most urgent

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
    """N spawned worker processes, each its own one-process ``concurrent.futures`` pool, so that a run goes to the
    worker that ran its seed last where that worker is free: the students of a seed see the same batches, and the
    worker's grid may still hold the teacher's outputs on them (``TeacherCache``). A worker killed mid-run breaks only
    its own pool, which is replaced; its run is asked for again and resumes from its last checkpoint."""

    def __init__(self, workers: int, threads):
        self.capacity, self.threads = workers, threads
        self.pools = [self._new() for _ in range(workers)]
        self.seeds: list[int | None] = [None] * workers  # the seed each worker was given last
        self.running: dict[Future, int] = {}              # future -> its worker
        self.planned: dict[str, int] = {}                 # run name -> the worker ``pick`` chose for it

    @staticmethod
    def _new():
        return ProcessPoolExecutor(1, mp_context=get_context("spawn"))

    def _free(self) -> list[int]:
        for f in [f for f in self.running if f.done() and not isinstance(f.exception(), BrokenProcessPool)]:
            del self.running[f]  # finished: its worker is free (a broken one waits for ``restart``)
        busy = {w for f, w in self.running.items() if not f.done()}
        return [w for w in range(self.capacity) if w not in busy]

    def _assign(self, runs: list[Run]) -> list[tuple[Run, int]]:
        """Free workers matched with runs: each first with the most urgent run of its own last seed, then the
        workers left with the most urgent runs left."""
        free, left, pairs = self._free(), list(runs), []
        for w in list(free):
            run = next((r for r in left if self.seeds[w] is not None and r.seed == self.seeds[w]), None)
            if run is not None:
                pairs.append((run, w))
                left.remove(run)
                free.remove(w)
        return pairs + list(zip(left, free))

    def pick(self, runs: list[Run]) -> list[Run]:
        pairs = self._assign(runs)
        self.planned = {r.name: w for r, w in pairs}
        return [r for r, _ in pairs]

    def submit(self, ref, run) -> Future:
        w = self.planned.pop(run.name, None)
        if w is None:
            w = self._assign([run])[0][1]
        self.seeds[w] = run.seed
        try:
            future = self.pools[w].submit(execute, ref, run, self.threads)
        except BrokenProcessPool:  # its worker died after its last run finished
            self.pools[w] = self._new()
            future = self.pools[w].submit(execute, ref, run, self.threads)
        self.running[future] = w
        return future

    def restart(self):
        """Replace the pools of workers that died (their futures hold ``BrokenProcessPool``)."""
        for f, w in list(self.running.items()):
            if f.done():
                del self.running[f]
                if isinstance(f.exception(), BrokenProcessPool):
                    self.pools[w].shutdown(wait=False, cancel_futures=True)
                    self.pools[w], self.seeds[w] = self._new(), None

    def close(self):
        for pool in self.pools:
            pool.shutdown(wait=True)


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

    def pick(self, runs: list[Run]) -> list[Run]:
        return runs  # the runner keeps at most ``capacity`` in flight

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
            rows, epochs = history(record), run_config(record)["recipe"]["epochs"]
        except (OSError, ValueError, KeyError):
            continue
        if not rows:
            continue
        first = rows[0]["wall_time_s"]
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
            for run in ex.pick([r for r in todo if r.name not in busy])[:max(0, ex.capacity - len(in_flight))]:
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
            if broken:  # a worker died (killed, out of memory): its pool is replaced; todo() asks for its run again,
                ex.restart()  # which resumes from its last checkpoint
    finally:
        runs_bar.close()
        ex.close()
    return failures
