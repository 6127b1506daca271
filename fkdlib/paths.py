"""Where things live, resolved from the package, never from the current directory, and the scales that pick a
folder: nbval, Colab and papermill each start notebooks in a different folder; these paths do not care.
"""
from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

# every notebook and experiment runs at one of these (fkdlib.experiments.config says what each means)
SCALES = ("smoke", "lite", "full")


def get_scale(scale: str | None = None) -> str:
    """Validate ``scale``; if None, read ``FKD_SCALE`` (default ``lite``)."""
    scale = scale if scale is not None else os.environ.get("FKD_SCALE", "lite")
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}: choose one of {', '.join(SCALES)} (setting FKD_SCALE or SCALE)")
    return scale


def figures_dir(scale: str | None = None) -> Path:
    """The folder figures are written to.

    ``FKD_FIGURES_DIR`` overrides it (the tests point it at a temporary folder). Otherwise
    ``figures/``; smoke-scale figures go to ``figures/smoke/`` (git-ignored), so that a smoke run
    never overwrites a committed figure.
    """
    return _scaled("FKD_FIGURES_DIR", REPO_ROOT / "figures", scale)


def results_dir(scale: str | None = None) -> Path:
    """``results/``: one folder per experiment, one JSON per run.

    Like ``figures_dir``: ``FKD_RESULTS_DIR`` overrides it, and smoke-scale results go to the
    git-ignored ``results/smoke/``.
    """
    return _scaled("FKD_RESULTS_DIR", REPO_ROOT / "results", scale)


def _scaled(env_var: str, default: Path, scale: str | None) -> Path:
    override = os.environ.get(env_var)
    if override:
        return Path(override)
    return default / "smoke" if scale == "smoke" else default
