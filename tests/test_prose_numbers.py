"""Issue 26 item 3: a number the prose of a notebook states is shown by a code cell above it, or is the paper's."""
import importlib.util
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

_SPEC = importlib.util.spec_from_file_location(
    "prose_numbers", Path(__file__).resolve().parent.parent / "tools" / "prose_numbers.py")
prose = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(prose)

from fkdlib.paths import REPO_ROOT  # noqa: E402

NOTEBOOKS = sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
# re-derived from the converged method comparison's finals (issue 23 item 7); until then their prose predates it
PENDING = {"03_fkd_in_practice.ipynb", "04_method_comparison.ipynb"}


def _nb(*cells):
    return new_notebook(cells=list(cells))


def _printed(text):
    return new_code_cell("print(...)", outputs=[new_output("stream", name="stdout", text=text)])


def test_a_number_printed_above_is_sourced_one_stated_before_its_cell_is_not():
    nb = _nb(new_markdown_cell("FKD gains 1.42 points."), _printed("gain 1.4213, accuracy 0.7384\n"),
             new_markdown_cell("FKD gains 1.42 points (73.8% against 72.4%)."))
    assert [(i, n) for i, n, _ in prose.unsourced(nb)] == [(0, "1.42"), (2, "72.4%")]


def test_rounding_a_fraction_to_a_percentage_the_papers_numbers_maths_and_code_are_exempt():
    nb = _nb(_printed("accuracy 0.7384\n"),
             new_markdown_cell("The student reaches 73.8%, or 74%. The paper reports 75.51 on this pair. "
                               "With $\\lambda = 0.5$ and `lr=0.05` we show the 95% interval."))
    assert prose.unsourced(nb) == []


def test_a_number_rendered_as_markdown_output_counts_and_integers_are_not_claims():
    shown = new_code_cell("display(Markdown(t))", outputs=[new_output("display_data", data={"text/markdown": "**66.40%**"})])
    nb = _nb(shown, new_markdown_cell("Seeds 0-5 over 400 epochs: one teacher reaches 66.4%."))
    assert prose.unsourced(nb) == []
    assert [n for _, n, _ in prose.unsourced(_nb(new_markdown_cell("about 66.4%")))] == ["66.4%"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_every_number_a_notebook_states_is_shown_above_it(path, request):
    if path.name in PENDING:
        request.applymarker(pytest.mark.xfail(strict=True, reason="prose predates the converged finals (issue 23)"))
    missing = prose.unsourced(nbformat.read(path, 4))
    assert not missing, "\n".join(f"cell {i}: {n} in: {s[:120]}" for i, n, s in missing)
