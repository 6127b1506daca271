"""Run a notebook's code in this process the way a reader who did an exercise would: every code cell top to bottom,
the ``parameters`` cell's values replaced by the exercise's, figures and results in temporary folders."""
from __future__ import annotations

import contextlib
import io
import json
import re
import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def code_cells(name: str) -> list[tuple[list[str], str]]:
    """``(tags, source)`` of every code cell of ``notebooks/<name>``."""
    nb = json.loads((NOTEBOOKS / name).read_text())
    return [(c.get("metadata", {}).get("tags", []), "".join(c["source"])) for c in nb["cells"] if c["cell_type"] == "code"]


def run_notebook(name: str, monkeypatch, tmp_path, scale: str = "smoke", **params) -> tuple[dict, str]:
    """Execute ``notebooks/<name>`` with ``params`` set after its parameters cell; returns its namespace and what it
    printed. Raises what a cell raises (an exercise must not stop the notebook)."""
    for var, folder in (("FKD_RESULTS_DIR", "results"), ("FKD_FIGURES_DIR", "figures")):
        monkeypatch.setenv(var, str(tmp_path / folder))
    monkeypatch.setenv("FKD_SCALE", scale)
    monkeypatch.setenv("FKD_PROGRESS", "0")
    monkeypatch.chdir(NOTEBOOKS)
    from IPython.display import display

    namespace, out = {"display": display, "__name__": "__main__"}, io.StringIO()
    with contextlib.redirect_stdout(out):
        for i, (tags, source) in enumerate(code_cells(name)):
            try:
                exec(compile(source, f"{name} cell {i}", "exec"), namespace)
            except Exception as err:
                raise AssertionError(f"{name}, code cell {i}, with {params}: {type(err).__name__}: {err}\n"
                                     f"printed so far:\n{out.getvalue()[-2000:]}") from err
            if "parameters" in tags:
                namespace.update(params)
    return namespace, out.getvalue()


def snippets(name: str) -> list[str]:
    """The code an exercise asks the reader to run: the fenced ``python`` blocks of the notebook's Exercises."""
    nb = json.loads((NOTEBOOKS / name).read_text())
    text = "".join("".join(c["source"]) for c in nb["cells"]
                   if c["cell_type"] == "markdown" and "## Exercises" in "".join(c["source"]))
    text = text[text.index("## Exercises"):]
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    return [textwrap.dedent(b) for b in blocks]


def execute_in_kernel(nb, tmp_path, cwd) -> None:
    """Execute ``nb`` (an nbformat notebook, in place) in a fresh kernel as nbval would, at smoke size: figures and
    results under ``tmp_path``, the kernel started in ``cwd``; raises ``CellExecutionError`` if a cell raises."""
    import pytest
    from nbclient import NotebookClient

    with pytest.MonkeyPatch.context() as mp:   # the kernel inherits this environment
        mp.setenv("FKD_SCALE", "smoke")
        mp.setenv("FKD_PROGRESS", "0")
        mp.setenv("FKD_FIGURES_DIR", str(tmp_path / "figures"))
        mp.setenv("FKD_RESULTS_DIR", str(tmp_path / "results"))
        mp.delenv("MPLBACKEND", raising=False)
        NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
