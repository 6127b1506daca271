"""Notebook 02's explorer in JupyterLab: headless Chromium runs the notebook, then moves the interact's E slider, its
λ slider and its combination rule as a reader would, and each change reruns the students and redraws (labdriver.py)."""
from __future__ import annotations

import re
import time

from labdriver import SCREENSHOTS, START_S, _figure_cells, _open_and_run_all, _rendered_images

NAME = "02_multiview_theory.ipynb"
INK = """img => {                        // the share of an image's pixels that are not near-white
    const c = document.createElement('canvas');
    [c.width, c.height] = [img.naturalWidth, img.naturalHeight];
    const g = c.getContext('2d');
    g.drawImage(img, 0, 0);
    const d = g.getImageData(0, 0, c.width, c.height).data;
    let ink = 0;
    for (let i = 0; i < d.length; i += 4) ink += (d[i] < 200 || d[i + 1] < 200 || d[i + 2] < 200) ? 1 : 0;
    return ink / (d.length / 4);
}"""


def _wait_for_redraw(box, before_src: str, before_text: str) -> tuple[str, str]:
    """The interact's image ``src`` and printed line once both differ from ``before`` (the output is replaced) and
    the browser has decoded the new image, which must not be blank (a figure drawn while pyplot flushed it was)."""
    image, line = box.locator(".widget-output img"), box.locator(".widget-output .jp-OutputArea-output pre")
    deadline = time.monotonic() + START_S
    while True:
        if image.count() and line.count():
            src, text = image.first.get_attribute("src"), line.first.inner_text()
            decoded = image.first.evaluate("img => img.complete && img.naturalWidth > 0")
            if src != before_src and text != before_text and decoded:
                ink = image.first.evaluate(INK)
                assert ink > 0.08, f"the explorer drew a blank figure ({ink:.1%} of its pixels inked) for {text!r}"
                return src, text
        if time.monotonic() > deadline:
            box.page.screenshot(path=str(SCREENSHOTS / "02_explorer_timeout.png"))
            shown = line.first.inner_text() if line.count() else None
            images = box.evaluate("""b => [...b.querySelectorAll('.widget-output img')].map(i => ({complete: i.complete,
                width: i.naturalWidth, src: i.src.slice(0, 40) + '... ' + i.src.length, loading: i.loading,
                shown: i.getBoundingClientRect().height}))""")
            raise AssertionError(f"the explorer did not redraw within {START_S} s of a control's change: it shows "
                                 f"{shown!r} and images {images}, before {before_text!r}")
        time.sleep(0.5)


def test_theory_explorer_reruns_and_redraws_when_its_controls_change(lab, page):
    _open_and_run_all(lab, page, NAME)
    assert len(_rendered_images(page)) >= _figure_cells(NAME) + 1, "a figure (or the explorer's) did not render"
    assert (lab.figures / "02_explorer.png").is_file(), "the static figure beneath the widget is written too"
    box = page.locator(".widget-interact").first
    box.evaluate("box => box.scrollIntoView({block: 'center'})")
    src, text = _wait_for_redraw(box, "", "")                       # the first draw, at the notebook's values
    assert text.startswith("E = 2, λ = 300, concat: single-view"), text   # smoke: E = 2 is the largest
    assert src.startswith("data:image/png")
    page.screenshot(path=str(SCREENSHOTS / "02_explorer_before.png"))

    E = box.locator(".widget-slider").filter(has_text="E teachers")
    E.locator(".noUi-handle").focus()
    page.keyboard.press("Home")                                       # one teacher
    src, text = _wait_for_redraw(box, src, text)
    assert E.locator(".widget-readout").inner_text() == "1" and text.startswith("E = 1, λ = 300, concat"), text

    lam = box.locator(".widget-slider").filter(has_text="λ")
    lam.locator(".noUi-handle").focus()
    page.keyboard.press("End")                                        # the largest λ: 10^3.5
    src, text = _wait_for_redraw(box, src, text)
    assert re.match(r"E = 1, λ = 3\.16e\+03, concat", text), text

    box.locator(".widget-toggle-button").filter(has_text="mean").click()
    src, text = _wait_for_redraw(box, src, text)
    assert re.match(r"E = 1, λ = 3\.16e\+03, mean: single-view (\d\.\d{3}) ± \S+ over 2 students", text), text
    box.evaluate("box => box.scrollIntoView({block: 'center'})")
    page.screenshot(path=str(SCREENSHOTS / "02_explorer_after.png"))
