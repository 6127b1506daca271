"""JupyterLab as a student meets it: the project's kernel, and notebook 00 run through the UI in headless Chromium (labdriver.py)."""
from __future__ import annotations

import sys
from pathlib import Path

from labdriver import SCREENSHOTS, _figure_cells, _open_and_run_all, _rendered_images


def test_the_lab_kernel_is_the_projects_python(lab):
    specs = lab.api("kernelspecs")
    argv0 = Path(specs["kernelspecs"][specs["default"]]["spec"]["argv"][0])
    assert specs["default"] == "python3" and argv0.parent.resolve() == Path(sys.executable).parent.resolve()


def test_quickstart_runs_in_jupyterlab_and_shows_its_figures(lab, page):
    _open_and_run_all(lab, page, "00_quickstart.ipynb")
    images = _rendered_images(page)
    assert len(images) == _figure_cells("00_quickstart.ipynb") and all(s.startswith("data:image/png") for s in images)
    assert (lab.figures / "00_kernels.png").is_file(), "the figure shown is also written to the figures folder"
    page.locator(".jp-OutputArea-output img").last.evaluate("img => img.scrollIntoView({block: 'center'})")  # kernels
    page.screenshot(path=str(SCREENSHOTS / "00_quickstart.png"))
