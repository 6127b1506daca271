import pytest

from fkdlib import report
from fkdlib.results import provenance, write_record


def test_the_readme_block_is_rebuilt_from_the_summary_file_only(tmp_path, monkeypatch):
    monkeypatch.setenv("FKD_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(report, "REPO_ROOT", tmp_path)
    summary = {"teacher": "resnet20", "student": "resnet8", "data": "CIFAR-10 (JPEG q75 copy)", "teacher_test_acc": 81.234,
               "methods": {"none": {"mean": 60.0, "ci95": 1.5, "n": 3}, "fkd": {"mean": 63.456, "ci95": 0.7, "n": 3}}}
    write_record(tmp_path / "results" / "method_comparison" / "lite" / "summary.json", summary, provenance(seed=0))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nold table\n{report.END}\noutro\n")
    report.update_readme(readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old table" not in text
    assert "| FKD | 63.46 ± 0.70 (n=3) | 73.78 |" in text
    assert "| teacher | 81.23 | 74.64 |" in text and "CIFAR-10 (JPEG q75 copy)" in text
    assert "reference only" in text


def test_a_readme_without_markers_is_an_error(tmp_path):
    (tmp_path / "R.md").write_text("no markers")
    with pytest.raises(ValueError, match="results:start"):
        report.update_readme(tmp_path / "R.md")
