"""Notebook 01 in JupyterLab as a student meets it (labdriver.py): its cells run, and the kernel explorer answers
each control (the slider, the difference view, the one-click class picker) with a new heatmap."""
from __future__ import annotations

import time

from labdriver import SCREENSHOTS, START_S, _figure_cells, _open_and_run_all, _rendered_images


def _wait_for_new_heatmap(heatmap, before: str | None, what: str) -> str:
    """The heatmap's ``src`` once it differs from ``before`` (a redraw replaces the image element: poll it)."""
    deadline = time.monotonic() + START_S
    while heatmap.count() == 0 or heatmap.get_attribute("src") == before:
        assert time.monotonic() < deadline, f"the heatmap did not redraw within {START_S} s of {what}"
        time.sleep(0.5)
    src = heatmap.get_attribute("src")
    assert src.startswith("data:image/png"), f"after {what} the output is not an image"
    return src


def _width(heatmap) -> int:
    """The drawn image's width in pixels (decoded: the browser has the new image)."""
    heatmap.evaluate("img => img.decode()")
    return heatmap.evaluate("img => img.naturalWidth")


def _screenshot(page, explorer, name: str) -> None:
    """The explorer at the top of the window, once its heatmap (if any) is painted."""
    explorer.evaluate("box => box.scrollIntoView({block: 'start'})")
    heatmap = explorer.locator(".widget-output img")
    if heatmap.count():
        heatmap.wait_for(state="visible")
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / name))


def test_feature_kernels_explorer_redraws_when_a_control_changes(lab, page):
    _open_and_run_all(lab, page, "01_feature_kernels.ipynb")
    assert len(_rendered_images(page)) >= _figure_cells("01_feature_kernels.ipynb"), "a figure did not render"
    explorer = page.locator(".fkd-kernel-explorer").first
    heatmap = explorer.locator(".widget-output img")
    _screenshot(page, explorer, "01_explorer_before.png")
    src, width = heatmap.get_attribute("src"), _width(heatmap)

    # the slider: the fewest images per class, as a person would drag it
    slider = explorer.locator(".widget-slider").filter(has_text="per class")
    assert int(slider.locator(".widget-readout").inner_text()) > 2
    slider.locator(".noUi-handle").focus()
    page.keyboard.press("Home")
    src = _wait_for_new_heatmap(heatmap, src, "the slider's change")
    assert slider.locator(".widget-readout").inner_text() == "2"

    # the difference view: rho - rho(teacher) for the untrained teacher and the student, the teacher not minus itself
    minus = explorer.locator(".widget-dropdown select")
    assert minus.is_disabled(), "the 'minus' network matters only to the difference view"
    explorer.locator(".widget-toggle-buttons button").filter(has_text="difference").click()
    src = _wait_for_new_heatmap(heatmap, src, "choosing the difference view")
    assert minus.is_enabled() and minus.input_value() == "teacher"
    assert _width(heatmap) < 0.85 * width, "the difference view should drop the teacher's own panel (3 -> 2)"
    _screenshot(page, explorer, "01_explorer_difference.png")

    # the class picker: one click drops a class, "none" leaves a message, one click brings a class back
    classes = explorer.locator(".fkd-classes .widget-toggle-button")
    first = classes.first
    assert classes.count() >= 2 and "mod-active" in first.get_attribute("class")
    first.click()
    src = _wait_for_new_heatmap(heatmap, src, "a click on a class")
    assert "mod-active" not in first.get_attribute("class")
    explorer.locator(".fkd-classes button").filter(has_text="none").click()
    explorer.locator(".widget-output").filter(has_text="pick at least one class").wait_for(timeout=START_S * 1000)
    assert heatmap.count() == 0
    first.click()
    src = _wait_for_new_heatmap(heatmap, None, "a click on a class after 'none'")
    assert explorer.locator(".fkd-classes .widget-toggle-button.mod-active").count() == 1
    _screenshot(page, explorer, "01_explorer_after.png")
