import pytest

from fkdlib.experiments import report
from fkdlib.records import provenance, write_record


def test_the_readme_block_is_rebuilt_from_the_summary_file_only(tmp_path, monkeypatch):
    monkeypatch.setenv("FKD_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(report, "REPO_ROOT", tmp_path)
    summary = {"teacher": "resnet20", "student": "resnet8", "data": "CIFAR-10 (JPEG q75 copy)", "teacher_test_acc": 81.234,
               "methods": {"none": {"mean": 60.0, "ci95": 1.5, "n": 3},
                           "fkd": {"mean": 63.456, "ci95": 0.7, "n": 3,
                                   "method": {"name": "fkd", "lam_kd": 300.0, "lam_fr": 0.001, "fr_squared": False}}},
               "paired": {"fkd - none": {"mean": 3.456, "ci95": 0.5, "n": 3}}}
    write_record(tmp_path / "results" / "method_comparison" / "lite" / "summary.json", summary, provenance(seed=0))
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.START}\nold table\n{report.END}\noutro\n")
    report.update_readme(readme)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old table" not in text
    assert "| FKD | λ 300, FR 0.001 ‖h‖ | 63.46 ± 0.70 (n=3) | 73.78 |" in text
    assert "| FKD − no distillation | +3.46 [+2.96, +3.96] (n=3) | better |" in text
    assert "| teacher | | 81.23 | 74.64 |" in text and "CIFAR-10 (JPEG q75 copy)" in text
    assert "reference only" in text


def test_a_readme_without_markers_is_an_error(tmp_path):
    (tmp_path / "R.md").write_text("no markers")
    with pytest.raises(ValueError, match="results:start"):
        report.update_readme(tmp_path / "R.md")


def test_ensemble_and_cross_dataset_tables_come_from_their_summaries(tmp_path, monkeypatch):
    monkeypatch.setenv("FKD_RESULTS_DIR", str(tmp_path / "results"))
    monkeypatch.setattr(report, "REPO_ROOT", tmp_path)
    cell = lambda mean: {"mean": mean, "ci95": 0.5, "n": 3}  # noqa: E731
    diff = {"mean": 1.5, "ci95": 1.0, "n": 3, "diffs": [1.0, 1.5, 2.0], "seeds": [0, 1, 2]}
    ensemble = {"arch": "resnet8", "data": "CIFAR-10 (JPEG q75 copy)", "E": [1, 8], "num_train": 2500,
                "teacher_ensemble": [55.5, 61.25],
                "rows": {"none": cell(40.0), "kd E=1": cell(44.0), "fkd E=1": cell(43.0), "kd E=8": cell(47.0),
                         "fkd E=8": cell(48.125), "fkd-concat E=8": cell(49.0)},
                "paired": {"fkd-concat E=8 - fkd E=8": diff}}
    fkd = {"name": "fkd", "lam_kd": 30.0, "lam_fr": 0.001, "fr_squared": False, "lr": 0.05, "unlabelled": False}
    cross = {"teacher": "resnet20", "student": "resnet8", "teacher_classes": ["cat"], "student_classes": ["dog"],
             "data": "CIFAR-10 (JPEG q75 copy)", "teacher_test_acc": 80.0, "val_size": 1000,
             "methods": {"none": dict(cell(60.0), method={"name": "none", "lr": 0.1}),
                         "fkd": dict(cell(62.0), method=fkd),
                         "fkd-unlabelled": dict(cell(63.0), method=dict(fkd, unlabelled=True))},
             "paired": {"fkd - none": dict(diff, mean=-2.0)}}
    for name, summary in [("ensemble_size", ensemble), ("cross_dataset", cross)]:
        write_record(tmp_path / "results" / name / "lite" / "summary.json", summary, provenance(seed=0))
    text = report.results_markdown("lite")
    assert "Method comparison" not in text  # no summary file, no table
    # E = 8 row: our ensemble, KD, FKD and FKD (concat), then the paper's values for E = 8 (docs/paper.md §3.2)
    assert ("| 8 | 61.25 | 47.00 ± 0.50 (n=3) | 48.12 ± 0.50 (n=3) | 49.00 ± 0.50 (n=3) | 75.82 | 73.39 | 73.61 |"
            in text)
    assert "| 1 | 55.50 | 44.00 ± 0.50 (n=3) | 43.00 ± 0.50 (n=3) |  | 70.55 |" in text  # no concat at E = 1
    assert "No distillation: ours 40.00 ± 0.50 (n=3), the paper 70.56" in text
    assert "| FKD (concat, ours) E=8 − FKD E=8 | +1.50 [+0.50, +2.50] (n=3) | better |" in text
    assert "| FKD | λ 30, FR 0.001 ‖h‖, lr 0.05 | 62.00 ± 0.50 (n=3) |" in text
    assert "| FKD, unlabelled kernel batch | λ 30, FR 0.001 ‖h‖, lr 0.05 | 63.00 ± 0.50 (n=3) |" in text
    assert "| no distillation | CE only, lr 0.1 | 60.00 ± 0.50 (n=3) |" in text
    assert "| FKD − no distillation | -2.00 [-3.00, -1.00] (n=3) | worse |" in text


def test_the_demo_summary_says_what_the_demo_showed_from_its_records(tmp_path):
    students = {"plain": {"alignment_start": 0.33, "alignment_end": 0.88, "test_accuracy": 0.9},
                "FKD": {"alignment_start": 0.33, "alignment_end": 0.98, "test_accuracy": 0.925}}
    write_record(tmp_path / "results" / "quickstart" / "lite.json",
                 {"teacher_test_accuracy": 0.95, "students": students}, provenance(seed=0))
    fkd_vs_e = {"E=1": {"mean": 0.667, "theorem": 0.75}, "E=8": {"mean": 0.93, "theorem": 0.996},
                "plain": {"mean": 0.5}}
    write_record(tmp_path / "results" / "theory" / "lite.json", {"fkd_vs_E": fkd_vs_e}, provenance(seed=0))
    (tmp_path / "figures").mkdir()
    (tmp_path / "figures" / "00_kernels.png").write_bytes(b"")
    text = report.demo_summary(tmp_path)
    assert "from 0.33 at the start to 0.88 for the plain student and 0.98 for the FKD student" in text
    assert "test accuracy plain 90.0%, FKD 92.5%" in text
    assert "E=1 66.7%, E=8 93.0% (the theorem's ideal: 75.0%, 99.6%; a student trained alone 50.0%)" in text
    assert "1 figures in" in text
