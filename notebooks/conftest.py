"""How the notebooks run under nbval: ``pytest --nbval notebooks/`` from the repository root, typed as is.

Unless the environment already says otherwise, a test run of the notebooks

- runs them at the ``smoke`` scale (``FKD_SCALE``): seconds per notebook, proving the code path and every
  ``assert`` cell, claiming nothing;
- writes their figures and results to a temporary folder (``FKD_FIGURES_DIR``, ``FKD_RESULTS_DIR``; see
  ``fkdlib.paths``), removed afterwards, so a test run never overwrites a committed file;
- draws no progress bars (``FKD_PROGRESS=0``): they would be output the committed notebooks do not have;
- uses this environment's Python as the kernel (as ``--nbval-current-env`` does) and stops a cell after 300 s,
  so a cell left at a large size fails fast;
- compares outputs through ``nbval_sanitize.cfg`` (as ``--nbval-sanitize-with`` does).

The committed outputs come from a ``lite`` run, so no printed number can match a smoke run. What strict
``--nbval`` still compares, after the sanitize file has blanked numbers, scale names, the device and figure
sizes, is the shape of each output: the same lines, the same kinds of output, and no new stderr (a warning).
A cell whose output changes shape with the scale (the data set's name, how many rows a grid has, a verdict
such as "apart"/"overlap") carries the cell tag ``nbval-ignore-output``: it still runs, and its asserts still
hold, but its output is not compared. ``--nbval-lax`` compares no output at all.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

SANITIZE_FILE = Path(__file__).with_name("nbval_sanitize.cfg")
CELL_TIMEOUT_S = 300
_NBVAL_DEFAULT_TIMEOUT_S = 2000   # nbval's own default for --nbval-cell-timeout: not set by the user
_tmp_dir: str | None = None


def pytest_configure(config):
    global _tmp_dir
    option = config.option
    if not (getattr(option, "nbval", False) or getattr(option, "nbval_lax", False)):
        return
    os.environ.setdefault("FKD_SCALE", "smoke")
    os.environ.setdefault("FKD_PROGRESS", "0")
    if not (os.environ.get("FKD_FIGURES_DIR") and os.environ.get("FKD_RESULTS_DIR")):
        _tmp_dir = tempfile.mkdtemp(prefix="fkd-nbval-")
        for var, sub in (("FKD_FIGURES_DIR", "figures"), ("FKD_RESULTS_DIR", "results")):
            if not os.environ.get(var):
                os.environ[var] = os.path.join(_tmp_dir, sub)
    if option.nbval_sanitize_with is None:
        option.nbval_sanitize_with = str(SANITIZE_FILE)
    if not option.nbval_kernel_name:
        option.nbval_current_env = True
    if option.nbval_cell_timeout == _NBVAL_DEFAULT_TIMEOUT_S:
        option.nbval_cell_timeout = CELL_TIMEOUT_S


def pytest_report_header(config):
    if getattr(config.option, "nbval", False) or getattr(config.option, "nbval_lax", False):
        return [f"notebooks: FKD_SCALE={os.environ.get('FKD_SCALE')}, "
                f"FKD_FIGURES_DIR={os.environ.get('FKD_FIGURES_DIR')}, FKD_RESULTS_DIR={os.environ.get('FKD_RESULTS_DIR')}",
                f"notebooks: outputs compared through {config.option.nbval_sanitize_with}"]
    return None


def pytest_unconfigure(config):
    global _tmp_dir
    if _tmp_dir is not None:
        shutil.rmtree(_tmp_dir, ignore_errors=True)
        _tmp_dir = None
