"""JupyterLab as a student meets it: headless Chromium runs notebooks 00 and 01 through the UI (labdriver.py)."""
from __future__ import annotations

import sys
import time
from pathlib import Path

from labdriver import SCREENSHOTS, START_S, _figure_cells, _open_and_run_all, _rendered_images


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


def test_feature_kernels_explorer_redraws_when_a_control_changes(lab, page):
    _open_and_run_all(lab, page, "01_feature_kernels.ipynb")
    assert len(_rendered_images(page)) >= _figure_cells("01_feature_kernels.ipynb"), "a figure did not render"
    explorer = page.locator(".widget-hbox").filter(has=page.locator(".widget-slider")).first
    heatmap = explorer.locator(".widget-output img")
    before = heatmap.get_attribute("src")
    explorer.evaluate("box => box.scrollIntoView({block: 'center'})")
    page.screenshot(path=str(SCREENSHOTS / "01_explorer_before.png"))
    slider = explorer.locator(".widget-slider").filter(has_text="per class")
    assert int(slider.locator(".widget-readout").inner_text()) > 2
    slider.locator(".noUi-handle").focus()
    page.keyboard.press("Home")                            # the fewest images per class, as a person would drag
    deadline = time.monotonic() + START_S                  # the redraw replaces the image element: poll the src
    while heatmap.count() == 0 or heatmap.get_attribute("src") == before:
        assert time.monotonic() < deadline, f"the heatmap did not redraw within {START_S} s of the slider's change"
        time.sleep(0.5)
    after = heatmap.get_attribute("src")
    assert slider.locator(".widget-readout").inner_text() == "2"
    assert after.startswith("data:image/png") and after != before, "the heatmap did not change with the slider"
    page.screenshot(path=str(SCREENSHOTS / "01_explorer_after.png"))
