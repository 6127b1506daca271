"""Committed notebooks are clean, carry a Colab badge for their own path, and a Colab cell that is a no-op elsewhere."""
import importlib.util
import json
import re
import subprocess
import sys
import types
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

_SPEC = importlib.util.spec_from_file_location(
    "notebook_hygiene", Path(__file__).resolve().parent.parent / "tools" / "notebook_hygiene.py")
hygiene = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(hygiene)

from fkdlib.paths import REPO_ROOT  # noqa: E402

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
IDS = [p.name for p in NOTEBOOKS]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 7


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_committed_notebook_is_clean(path):
    assert path.stat().st_size <= hygiene.MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes"
    assert hygiene.problems(path) == [], f"{path.name}: fix with `make clean-notebooks` (or as each problem says)"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_colab_badge_links_this_very_file(path):
    links = re.findall(r"\]\((https://colab\.research\.google\.com/github/[^)]+)\)", nbformat.read(path, 4).cells[0].source)
    assert len(links) == 1, f"{path.name}: the title cell needs exactly one Open-in-Colab badge"
    repo, ref, linked = re.fullmatch(r"https://colab\.research\.google\.com/github/([^/]+/[^/]+)/blob/([^/]+)/(.+)",
                                     links[0]).groups()
    assert (repo, ref) == (hygiene.REPO, hygiene.REF)
    assert linked == path.relative_to(REPO_ROOT).as_posix() and (REPO_ROOT / linked).is_file()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=IDS)
def test_shown_figures_are_saved_and_none_is_linked(path):
    """Colab cannot resolve relative image links: a figure is shown from code and also written by viz.savefig."""
    for i, cell in enumerate(nbformat.read(path, 4).cells):
        if cell.cell_type == "markdown":
            images = re.findall(r"!\[[^]]*\]\(([^)\s]+)|<img[^>]*src=[\"']([^\"']+)", cell.source)
            local = [a or b for a, b in images if not re.match(r"https?://|attachment:", a or b)]
            assert not local, f"{path.name} cell {i} links images by path: {local}"
            continue
        shows = any("image/png" in o.get("data", {}) for o in cell.outputs) or re.search(r"plt\.show\(|display\(fig",
                                                                                        cell.source)
        assert not shows or "savefig(" in cell.source, f"{path.name} cell {i} shows a figure it does not save"


def test_colab_cell_does_nothing_outside_colab():
    """In a fresh interpreter the cell spawns nothing, changes no folder, writes no file and imports nothing new
    (an audit hook sees every such event)."""
    probe = f"""
import os, subprocess, sys
events = []
sys.addaudithook(lambda event, args: events.append((event, args)))
before = set(sys.modules)
exec(compile({hygiene.COLAB_CELL!r}, "colab_cell", "exec"), {{}})
bad = [e for e, a in events if e in ("subprocess.Popen", "os.system", "os.chdir", "socket.connect")
       or (e == "open" and isinstance(a[1], str) and set(a[1]) & set("wax+"))]
print(repr((bad, sorted(set(sys.modules) - before))))
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == repr(([], [])), out.stdout + out.stderr


def test_colab_cell_on_colab_clones_the_badge_ref_installs_without_deps_and_reports_the_gpu(monkeypatch, capsys):
    calls, chdirs = [], []
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd) or subprocess.CompletedProcess(cmd, 0))
    monkeypatch.setattr("os.chdir", chdirs.append)
    monkeypatch.setattr("os.path.isdir", lambda p: False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    exec(compile(hygiene.COLAB_CELL, "colab_cell", "exec"), {})
    clone, install = calls
    assert clone[:2] == ["git", "clone"] and clone[clone.index("--branch") + 1] == hygiene.REF
    assert f"https://github.com/{hygiene.REPO}" in clone and clone[-1] == "/content/fkd"
    assert install[1:] == ["-m", "pip", "install", "-q", "--no-deps", "-e", "/content/fkd"]  # never touch Colab's torch
    assert chdirs == ["/content/fkd/notebooks"] and sys.path[0] == "/content/fkd"
    import torch
    expected = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    assert capsys.readouterr().out.startswith(f"GPU: {expected}")


@pytest.mark.parametrize("failing, stderr", [
    ("git", "fatal: unable to access 'https://github.com/fkd-project/fkd/': Could not resolve host: github.com"),
    ("pip", "ERROR: file:///content/fkd does not appear to be a Python project"),
])
def test_colab_cell_on_colab_shows_git_and_pip_errors_in_the_cell(monkeypatch, failing, stderr):
    """A failed clone or install stops the cell with the command and git's or pip's own message, not only
    "returned non-zero exit status 128"; nothing after it runs."""
    calls, chdirs = [], []

    def run(cmd, **kw):
        calls.append(cmd)
        assert kw.get("capture_output") and kw.get("text")   # the message is captured, to be shown
        fails = (cmd[0] == "git") == (failing == "git")
        return subprocess.CompletedProcess(cmd, 128 if fails else 0, stdout="", stderr=stderr if fails else "")

    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    monkeypatch.setattr(subprocess, "run", run)
    monkeypatch.setattr("os.chdir", chdirs.append)
    monkeypatch.setattr("os.path.isdir", lambda p: False)
    monkeypatch.setattr(sys, "path", list(sys.path))
    with pytest.raises(RuntimeError) as err:
        exec(compile(hygiene.COLAB_CELL, "colab_cell", "exec"), {})
    message = str(err.value)
    assert stderr in message and "exit status 128" in message
    assert " ".join(calls[-1]) in message                    # which command failed
    assert len(calls) == (1 if failing == "git" else 2) and chdirs == []


def _dirty_notebook(tmp_path: Path) -> Path:
    widget = new_output("execute_result", {hygiene.WIDGET_MIME: {"model_id": "ab12", "version_major": 2},
                                           "text/plain": "HBox(children=(...))"}, execution_count=3)
    cells = [new_markdown_cell("# Title\n[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
                               "(https://colab.research.google.com/github/someone/else/blob/dev/notebooks/old.ipynb)"),
             new_code_cell("import os, subprocess, sys\nif 'google.colab' in sys.modules:\n    pass", execution_count=1),
             new_code_cell("print(DATA)", execution_count=2, outputs=[new_output(
                 "stream", name="stdout", text=f"read {REPO_ROOT}/results/x.json and {REPO_ROOT.parent}/shared/d.npz\n")],
                 metadata={"execution": {"iopub.status.busy": "2026-01-01T00:00:00Z"}, "tags": ["parameters"],
                           "scrolled": True}),
             new_code_cell("explorer.widget()", execution_count=3, outputs=[widget], metadata={"collapsed": False})]
    nb = new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3 (fkd)", "language": "python", "name": "python3"},
        "language_info": {"name": "python", "version": "3.11.7"},
        "widgets": {"application/vnd.jupyter.widget-state+json": {"state": {"ab12": {"outputs": ["x" * 1000]}}}}})
    path = tmp_path / "07_dirty.ipynb"
    nbformat.write(nb, path)
    return path


def test_cleaning_drops_volatile_metadata_and_keeps_outputs(tmp_path):
    path = _dirty_notebook(tmp_path)
    found = hygiene.problems(path)
    assert any("not normalised" in p for p in found) and any("absolute path" in p for p in found)
    assert any("Colab badge" in p for p in found) and any("COLAB_CELL" in p for p in found)
    assert hygiene.main([str(path)]) == 0 and hygiene.problems(path) == []
    raw = path.read_text()
    nb = nbformat.reads(raw, 4)
    assert nb.metadata == {"kernelspec": hygiene.KERNELSPEC, "language_info": {"name": "python"}}
    assert [c.metadata for c in nb.cells] == [{}, {}, {"tags": ["parameters"]}, {}]
    assert nb.cells[2].outputs[0].text == "read results/x.json and ../shared/d.npz\n"   # output kept, paths relative
    assert nb.cells[3].outputs[0].data == {"text/plain": hygiene.WIDGET_NOTE}
    assert hygiene.badge_url("notebooks/07_dirty.ipynb") in nb.cells[0].source
    assert nb.cells[1].source == hygiene.COLAB_CELL and "2026-01-01" not in raw and "widget-state" not in raw
    assert hygiene.main([str(path)]) == 0 and path.read_text() == raw   # idempotent: a clean notebook is left alone


def test_out_of_order_counts_oversize_and_errors_are_reported_not_hidden(tmp_path, monkeypatch):
    path = _dirty_notebook(tmp_path)
    hygiene.main([str(path)])
    nb = json.loads(path.read_text())
    nb["cells"][2]["execution_count"] = 7   # a cell re-run by hand
    nb["cells"][3]["outputs"].append({"output_type": "stream", "name": "stderr", "text": "UserWarning: careful\n"})
    path.write_text(nbformat.writes(nbformat.from_dict(nb)) + "\n")
    monkeypatch.setattr(hygiene, "MAX_BYTES", 1000)
    assert hygiene.main(["--check", str(path)]) == 1
    found = hygiene.problems(path)
    assert any("[1, 7, 3]" in p for p in found) and any("stderr" in p for p in found) and any("MB" in p for p in found)
    assert hygiene.main([str(path)]) == 1 and json.loads(path.read_text())["cells"][2]["execution_count"] == 7


def test_every_notebook_has_a_parameters_cell_with_form_fields_and_the_drive_option():
    import json
    import re

    COLAB_CELL = hygiene.COLAB_CELL
    from fkdlib.paths import REPO_ROOT

    for path in sorted((REPO_ROOT / "notebooks").glob("0*.ipynb")):
        cells = json.loads(path.read_text())["cells"]
        params = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(params) == 1, path.name
        src = "".join(params[0]["source"])
        assert re.search(r'^SCALE = "lite"  # @param \["smoke", "lite", "full"\]$', src, re.M), path.name
        assert 'os.environ.get("FKD_SCALE", SCALE)' in src, path.name  # nbval and CI still choose the scale
        code = [c for c in cells if c["cell_type"] == "code"]
        assert "".join(code[0]["source"]) == COLAB_CELL and code[1] is params[0], path.name
    assert 'SAVE_TO_DRIVE = False  # @param {type:"boolean"}' in COLAB_CELL and "FKD_RESULTS_DIR" in COLAB_CELL
