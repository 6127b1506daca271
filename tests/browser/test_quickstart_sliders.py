"""Notebook 00's weight sliders in JupyterLab (labdriver.py): move a slider, press train, and the FKD student is
trained again and its figure redraws with the weights chosen."""
from __future__ import annotations

import time

from labdriver import SCREENSHOTS, START_S, _open_and_run_all, _rendered_images


def _wait_for(page, what: str, condition) -> None:
    deadline = time.monotonic() + START_S
    while not condition():
        assert time.monotonic() < deadline, f"{what} within {START_S} s"
        time.sleep(0.5)


def test_the_sliders_retrain_the_fkd_student_and_redraw_its_figure(lab, page):
    _open_and_run_all(lab, page, "00_quickstart.ipynb")
    images_after_run = len(_rendered_images(page))
    box = page.locator(".widget-vbox").filter(has=page.locator(".widget-button")).first
    box.evaluate("b => b.scrollIntoView({block: 'start'})")
    figure, text = box.locator(".widget-output img"), box.locator(".widget-output")
    assert figure.count() == 0, "the widget draws only when asked to train"
    kd = box.locator(".widget-slider").filter(has_text="λ_KD")
    fr = box.locator(".widget-slider").filter(has_text="λ_FR")
    assert kd.locator(".widget-readout").inner_text() == "100"   # the notebook's own weights to start
    kd.locator(".noUi-handle").focus()
    page.keyboard.press("End")                                    # the largest lambda_KD, as a person would drag
    assert kd.locator(".widget-readout").inner_text() == "3000"
    box.locator("button", has_text="train").click()
    _wait_for(page, "the figure did not appear after 'train'", lambda: figure.count() == 1)
    first = figure.get_attribute("src")
    assert first.startswith("data:image/png") and "λ_KD=3000, λ_FR=0.01:" in text.text_content()

    fr.locator(".noUi-handle").focus()
    page.keyboard.press("Home")                                   # no feature regulariser
    assert fr.locator(".widget-readout").inner_text() == "0"
    box.locator("button", has_text="train").click()
    _wait_for(page, "the figure did not redraw after the second 'train'",
              lambda: figure.count() == 1 and figure.get_attribute("src") != first)
    assert "λ_KD=3000, λ_FR=0:" in text.text_content(), "the redrawn figure is not the new weights'"
    assert figure.get_attribute("src").startswith("data:image/png")
    assert len(_rendered_images(page)) == images_after_run + 1, "the widget shows one figure, replaced on each try"
    page.screenshot(path=str(SCREENSHOTS / "00_sliders.png"))
