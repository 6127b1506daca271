"""Results with provenance: every number we show is read from one of these JSON files, and this module owns them.

A record holds the result itself and how it was made: git commit (and whether the tree had
uncommitted changes), fkdlib, torch and Python versions, device, UTC time, seed and full config.
Records are written here (``write_record``: strict JSON, a missing number is ``null``, never ``NaN``, so any JSON
reader opens them) in the folders named here (``experiment_dir``, ``RECORD``); a run record (the engine's
``result.json``) is read through the small view below (``status``, ``final``, ``final_metrics``, ``history``,
``run_config``, ``run_method``, ``data_label``) rather than by indexing it by hand.
"""
from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import json
import math
import os
import platform
import subprocess
from collections.abc import Callable, Mapping
from pathlib import Path

import torch

from . import __version__
from .device import describe_device
from .models import checkpoints
from .paths import REPO_ROOT, results_dir

# a run folder, as the engine writes it: its record (metrics per epoch and provenance), resume checkpoint and weights
RECORD = "result.json"
CHECKPOINT = "checkpoints/last.pt"
MODEL = "model.pt"
# a grid's folder: the settings it pinned when it started (its arithmetic), so runs on other machines never mix them
GRID = "grid.json"


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


def experiment_dir(name: str, scale: str, overrides: dict | None = None) -> Path:
    """``results/<name>/<scale>/``, an experiment's folder at one scale (smoke: under the git-ignored
    ``results/smoke/``); with size overrides ``<scale>-<hash>/``, a folder of their own."""
    if not overrides:
        return results_dir(scale) / name / scale
    return results_dir(scale) / name / f"{scale}-{digest(overrides, 8)}"


def save_result(experiment: str, run: str, result: dict, provenance_record: dict, scale: str | None = None) -> Path:
    """Write ``{"result": ..., "provenance": ...}`` to ``results/<experiment>/<run>.json`` atomically."""
    return write_record(results_dir(scale) / experiment / f"{run}.json", result, provenance_record)


def write_record(path: str | Path, result: dict, provenance_record: dict) -> Path:
    """Write ``{"result": ..., "provenance": ...}`` as strict JSON (``to_json``) to ``path`` atomically (never a
    half-written file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f"{path.suffix}.{os.getpid()}.tmp")
    tmp.write_text(to_json({"result": result, "provenance": provenance_record}, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    return path


def to_json(value, **kw) -> str:
    """``value`` as strict JSON: every number that is not finite (NaN, a missing value; an infinity) is written
    ``null``, at any depth, and ``json.dumps`` is told ``allow_nan=False``, so ``NaN`` never reaches a file.
    ``kw``: ``json.dumps``'s (``indent``, ``sort_keys``). A reader gets None back where the value was missing."""
    return json.dumps(_finite_or_none(value), allow_nan=False, **kw)


def _finite_or_none(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_or_none(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_none(v) for v in value]
    return value


def load_result(path: str | Path) -> dict:
    """Read a record written by ``save_result``; a file without provenance is an error."""
    record = json.loads(Path(path).read_text())
    missing = {"result", "provenance"} - record.keys()
    if missing:
        raise ValueError(f"{path} is not a result record: missing {sorted(missing)}")
    return record


def pinned(out: str | Path, key: str, wanted: str | None, resolve: Callable[[], str]) -> str:
    """The setting ``key`` a grid in ``out`` pinned when it started (``grid.json``); a grid that pinned none pins
    ``resolve()`` now. ``wanted``: what the caller asks for (None or ``"auto"``: whatever is pinned); asking for
    another value than the pinned one is an error, so a grid that spans machines never mixes them."""
    path = Path(out) / GRID
    settings = load_result(path)["result"] if path.exists() else {}
    if key not in settings:
        settings[key] = wanted if wanted not in (None, "auto") else resolve()
        write_record(path, settings, provenance(config={"pinned": key}))
    elif wanted not in (None, "auto") and wanted != settings[key]:
        raise ValueError(f"{out} pinned {key}={settings[key]!r} when it started ({path}); it cannot go on with "
                         f"{key}={wanted!r}. Ask for {settings[key]!r} (or auto), or start the grid in a new folder.")
    return settings[key]


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


def finished(run_dir: str | Path) -> bool:
    """Whether ``run_dir`` holds a run whose record says done."""
    return done_record(run_dir) is not None


def run_record(run_dir: str | Path) -> dict:
    """The record ``{"result", "provenance"}`` of the run in ``run_dir`` (finished or not)."""
    return load_result(Path(run_dir) / RECORD)


def done_record(run_dir: str | Path) -> dict | None:
    """The record of the run in ``run_dir`` if it finished, else None (no record yet, or still running)."""
    path = Path(run_dir) / RECORD
    if not path.exists():
        return None
    record = load_result(path)
    return record if status(record) == "done" else None


# a run record's parts, as the engine writes them (engine.train): read them here, not by indexing the record
def status(record: dict) -> str:
    """``"done"``, or ``"running"``: still training, or stopped before its last epoch (killed, or a NaN stop)."""
    return record["result"]["status"]


def final_metrics(record: dict) -> dict:
    """The last epoch's row of a run record: accuracies as fractions (``test_acc`` 0.53), losses, kernel measures;
    a value that was not finite is None. ``final`` reads one of them in percent."""
    return record["result"]["final"]


def history(record: dict) -> list[dict]:
    """A run record's rows, one per epoch (and per evaluation), oldest first; ``final_metrics`` is the last."""
    return record["result"]["history"]


def run_config(record: dict) -> dict:
    """What the run was made with: architecture, data, recipe, method, seed, teachers, engine settings."""
    return record["provenance"]["config"]


def run_method(record: dict) -> dict:
    """The run's method and weights as recorded (``Method.to_dict``: ``{"name": "fkd", "lam_kd": 30.0, ...}``)."""
    return run_config(record)["method"]


def data_label(record: dict) -> str | None:
    """What the run's data is called in every figure and result: the engine's runs keep it in
    ``config["data_label"]``, notebook 01's record in ``config["data"]``."""
    config = run_config(record)
    return config.get("data_label", config.get("data"))


def setting(record: dict) -> dict:
    """What a run's numbers depend on besides the code, its sizes and its seeds, as its record names them:
    ``{"data": data_label, "device": describe_device's name, "torch": version}``. Another data set (torchvision's
    CIFAR-10 rather than our JPEG copy), another device (a GPU, a Mac, another CPU model) or another torch trains
    other networks from the same seeds: a claim about a committed run's own numbers holds only in its setting
    (``fkdlib.claims.setting_differs``)."""
    prov = record["provenance"]
    return {"data": data_label(record), "device": prov["device"], "torch": prov.get("torch_version")}


def setting_here(data_label: str, device: torch.device | str | None = None) -> dict:
    """``setting`` of a run made in this process on the data ``data_label`` and ``device`` (default: the best one)."""
    return {"data": data_label, "device": describe_device(device), "torch": torch.__version__}


def committed(path: str | Path) -> dict:
    """The record at ``path`` (relative to the repository) as the checkout's last commit holds it, so a run that has
    rewritten the file since (a reader's own run at the same scale) never stands in for the committed one; outside
    a git checkout, or for a file not committed, the file as it is (``load_result``)."""
    try:
        text = subprocess.run(["git", "show", f"HEAD:./{Path(path).as_posix()}"], cwd=REPO_ROOT, capture_output=True,
                              text=True, timeout=10, check=True).stdout
        record = json.loads(text)
    except (OSError, subprocess.SubprocessError, ValueError):
        return load_result(REPO_ROOT / path)
    if not {"result", "provenance"} <= record.keys():
        raise ValueError(f"{path} at the last commit is not a result record")
    return record


def final(record: dict, metric: str = "test_acc", missing: float | None = float("nan")) -> float | None:
    """A run record's final ``metric`` (``test_acc``, ``val_acc``, ``train_acc``, ``train_clean_acc``) in percent;
    ``missing`` (NaN, or None where the caller skips it) if it was not recorded or not finite (None in the file)."""
    value = final_metrics(record).get(metric)
    return missing if value is None or math.isnan(value) else 100 * value


def run_names(root: str | Path, pattern: str = "runs/*") -> list[str]:
    """The run folders under ``root`` matching ``pattern`` that hold a record, relative to ``root``, sorted."""
    root = Path(root)
    return sorted(str(p.parent.relative_to(root)) for p in root.glob(f"{pattern}/{RECORD}"))


def digest(settings: Mapping, length: int = 16) -> str:
    """A name for ``settings`` (JSON-able): the first ``length`` hex digits of the SHA-256 of their sorted JSON."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:length]


def cache_file(experiment: str, settings: Mapping, scale: str | None = None) -> Path:
    """Where the work done for ``settings`` (sizes, seeds, architectures, data) is kept:
    ``results/<experiment>/checkpoints/<digest of the settings>.pt`` (git-ignored). Other settings, other file."""
    return results_dir(scale) / experiment / "checkpoints" / f"{digest(settings)}.pt"


def cached(path: Path, make: Callable[[], dict]) -> tuple[dict, bool]:
    """``make()`` run once and its result (plain data: tensors, numbers, strings, lists, dicts) kept at ``path``;
    later calls read it back (safely: ``models.checkpoints.safe_load``). Returns the result and whether it was read."""
    if Path(path).is_file():
        return checkpoints.safe_load(path), True
    value = make()
    checkpoints.save(value, path)
    return value, False

