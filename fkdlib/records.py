"""Results with provenance: every number we show is read from one of these JSON files.

A record holds the result itself and how it was made: git commit (and whether the tree had
uncommitted changes), fkdlib, torch and Python versions, device, UTC time, seed and full config.
"""
from __future__ import annotations

import datetime as _dt
import functools
import json
import os
import platform
import subprocess
from pathlib import Path

import torch

from . import __version__
from .device import describe_device
from .paths import REPO_ROOT, results_dir


def provenance(seed: int | None = None, config: dict | None = None, device: torch.device | str | None = None) -> dict:
    """How a result was made, as a JSON-ready dict.

    The git commit and dirty flag are read once per process (at its first record), so a long-running
    worker keeps naming the code it started with even if the checkout moves on meanwhile.
    """
    commit, dirty = _git_state()
    return {
        "git_commit": commit,
        "git_dirty": dirty,
        "fkdlib_version": __version__,
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": describe_device(device),
        "time_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": seed,
        "config": config or {},
    }


def save_result(experiment: str, run: str, result: dict, provenance_record: dict, scale: str | None = None) -> Path:
    """Write ``{"result": ..., "provenance": ...}`` to ``results/<experiment>/<run>.json`` atomically."""
    return write_record(results_dir(scale) / experiment / f"{run}.json", result, provenance_record)


def write_record(path: str | Path, result: dict, provenance_record: dict) -> Path:
    """Write ``{"result": ..., "provenance": ...}`` as JSON to ``path`` atomically (never a half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps({"result": result, "provenance": provenance_record}, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def load_result(path: str | Path) -> dict:
    """Read a record written by ``save_result``; a file without provenance is an error."""
    record = json.loads(Path(path).read_text())
    missing = {"result", "provenance"} - record.keys()
    if missing:
        raise ValueError(f"{path} is not a result record: missing {sorted(missing)}")
    return record


def pin_git_state() -> None:
    """Read the checkout's commit and dirtiness now, for every later record of this process (the engine calls
    it when a run starts, so a record names the code the run started with, not the tree at its first epoch)."""
    _git_state()


@functools.lru_cache(maxsize=1)
def _git_state() -> tuple[str, bool | None]:
    """The checkout's commit and dirtiness, read once per process: the code this process loaded."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
                                timeout=10, check=True).stdout.strip()
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO_ROOT,
                                capture_output=True, text=True, timeout=10, check=True).stdout
        return commit, bool(status.strip())
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)", None


# two-sided 97.5% quantiles of Student's t for 1..30 degrees of freedom
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
         2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)


def mean_ci95(values) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (Student t, as the paper reports 5 students).

    One value has no interval: its half-width is NaN.
    """
    xs = [float(v) for v in values]
    n = len(xs)
    if n == 0:
        raise ValueError("mean_ci95 needs at least one value")
    mean = sum(xs) / n
    if n == 1:
        return mean, float("nan")
    sd = (sum((x - mean) ** 2 for x in xs) / (n - 1)) ** 0.5
    t = _T975[n - 2] if n - 1 <= len(_T975) else 1.96
    return mean, t * sd / n ** 0.5


def mean_present(values) -> float:
    """The mean of the values that are not None (NaN when there are none): a metric some runs did not record."""
    values = [v for v in values if v is not None]
    return sum(values) / len(values) if values else float("nan")


def paired_ci95(a: dict, b: dict) -> dict:
    """The paired difference ``a - b`` over the seeds both have (``{seed: value}`` each): per-seed
    differences, their mean and the half-width of its 95% Student-t interval, and the count.

    Seed ``s`` gives every method the same initialisation and batch order, so the seed-to-seed spread
    cancels in the difference: this interval is far narrower than comparing two per-method intervals.
    """
    seeds = sorted(set(a) & set(b), key=str)
    if not seeds:
        raise ValueError("paired_ci95 needs at least one seed present in both")
    diffs = [float(a[s]) - float(b[s]) for s in seeds]
    mean, ci = mean_ci95(diffs)
    return {"mean": mean, "ci95": ci, "n": len(diffs), "diffs": diffs, "seeds": list(seeds)}


def verdict(diff: dict, what: str) -> str:
    """One sentence on a ``paired_ci95`` result, no stronger than its interval: above, below or no difference shown."""
    lo, hi = diff["mean"] - diff["ci95"], diff["mean"] + diff["ci95"]
    if diff["n"] < 2:
        call = "one seed: no interval"
    elif lo > 0:
        call = "better: the interval is above 0"
    elif hi < 0:
        call = "worse: the interval is below 0"
    else:
        call = "no difference shown: the interval contains 0"
    return f"{what}: {diff['mean']:+.2f} points [{lo:+.2f}, {hi:+.2f}] over {diff['n']} paired seeds ({call})"
