"""docs/paper.md, the paper as we know it: every section the code cites exists, and fkdlib.experiments.paper copies its numbers."""
import re

import nbformat
import pytest

from fkdlib.experiments import paper
from fkdlib.paths import REPO_ROOT

NOTES = REPO_ROOT / "docs" / "paper.md"


def _sections() -> set[str]:
    """The section numbers of the notes' headings: "1", "3", "3.1", ..."""
    return set(re.findall(r"^#{2,3} (\d+(?:\.\d+)?)\.? ", NOTES.read_text(encoding="utf-8"), flags=re.M))


def _citing_texts():
    for path in sorted([*REPO_ROOT.glob("fkdlib/**/*.py"), *REPO_ROOT.glob("tests/*.py"), REPO_ROOT / "README.md"]):
        yield path, path.read_text(encoding="utf-8")
    for path in sorted(REPO_ROOT.glob("notebooks/*.ipynb")):
        yield path, "\n".join(cell.source for cell in nbformat.read(path, 4).cells)


def test_every_cited_section_exists():
    sections, cited = _sections(), 0
    assert {"1", "2", "3", "3.1", "3.2", "3.3", "3.4", "4", "5"} <= sections
    for path, text in _citing_texts():
        for number in re.findall(r"docs/paper\.md §(\d+(?:\.\d+)?)", text):
            cited += 1
            assert number in sections, f"{path.relative_to(REPO_ROOT)} cites docs/paper.md §{number}, which has no heading"
    assert cited >= 20


def _table_rows(heading: str) -> dict[str, list[str]]:
    """The rows of the first table under ``heading``: first cell -> the other cells."""
    text = NOTES.read_text(encoding="utf-8").split(heading, 1)[1]
    rows = {}
    for line in text.splitlines():
        if line.startswith("|"):
            cells = [c.strip() for c in line.strip("|").split("|")]
            if not set(cells[0]) <= set("-"):
                rows[cells[0]] = cells[1:]
        elif rows:
            break
    return rows


def test_method_comparison_numbers_match_fkdlib_paper():
    rows = _table_rows("### 3.1")
    names = {"Teacher*": "teacher*", "Student*": "none*", "KD*": "kd*", "RKD*": "rkd*", "SP*": "sp*", "CRD*": "crd*",
             "FKD without FR": "fkd-nofr", "FKD": "fkd"}
    assert rows.pop("Teacher -> Student") == paper.METHOD_COMPARISON["pairs"]
    assert set(rows) == set(names)
    for label, cells in rows.items():
        key = names[label]
        means = [float(c.split("+/-")[0]) for c in cells]
        assert means == pytest.approx(paper.METHOD_COMPARISON["rows"][key], abs=1e-9), label
        if "+/-" in cells[0]:
            cis = [float(c.split("+/-")[1]) for c in cells]
            assert cis == pytest.approx(paper.METHOD_COMPARISON["ci95"][key], abs=1e-9), label


def test_ensemble_size_numbers_match_fkdlib_paper():
    rows = _table_rows("### 3.2")
    assert rows.pop("E") == ["KD student", "FKD student", "teacher ensemble"]
    ours = paper.ENSEMBLE_SIZE
    assert [int(e) for e in rows] == ours["E"]
    for i, (kd, fkd, ens) in enumerate(rows.values()):
        assert (float(kd), float(fkd), float(ens)) == pytest.approx((ours["kd"][i], ours["fkd"][i],
                                                                      ours["teacher_ensemble"][i]), abs=1e-9)
    assert f"without distillation reaches {ours['none']}" in NOTES.read_text(encoding="utf-8")
