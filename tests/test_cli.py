"""The command line: documented, one-line errors, and a teacher -> student -> evaluate round trip."""
import json
import subprocess
import sys

import pytest

from fkdlib.cli import main


def _run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_help_documents_every_command():
    out = subprocess.run([sys.executable, "-m", "fkdlib", "distill", "--help"], capture_output=True, text=True,
                         check=True).stdout
    for flag in ("--model", "--dataset", "--data-dir", "--epochs", "--seed", "--out", "--resume", "--method",
                 "--lam-kd", "--lam-fr", "--teacher"):
        assert flag in out
    for cmd in ("train-teacher", "evaluate"):
        assert subprocess.run([sys.executable, "-m", "fkdlib", cmd, "--help"], capture_output=True).returncode == 0


def test_argument_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train-teacher", "--model", "nope", "--dataset", "synthetic", "--out", "x"])
    err = capsys.readouterr().err.strip()
    assert exc.value.code == 2 and "\n" not in err and "invalid choice: 'nope'" in err


def test_teacher_student_evaluate_round_trip(tmp_path, capsys):
    common = ["--dataset", "synthetic", "--preset", "smoke", "--quiet"]
    rc, out, _ = _run(capsys, "train-teacher", "--model", "resnet8", "--out", str(tmp_path / "t"), *common)
    assert rc == 0 and json.loads(out)["test_acc"] is not None
    rc, out, _ = _run(capsys, "distill", "--model", "resnet8", "--teacher", str(tmp_path / "t" / "model.pt"),
                      "--method", "fkd", "--lam-kd", "50", "--out", str(tmp_path / "s"), *common)
    assert rc == 0
    record = json.loads((tmp_path / "s" / "result.json").read_text())
    assert record["provenance"]["config"]["method"]["lam_kd"] == 50.0
    rc, out, _ = _run(capsys, "evaluate", "--checkpoint", str(tmp_path / "s" / "model.pt"), "--dataset", "synthetic")
    assert rc == 0 and json.loads(out)["accuracy"] == pytest.approx(record["result"]["final"]["test_acc"])
    # running into the same folder again without --resume is refused, in one line
    rc, _, err = _run(capsys, "train-teacher", "--model", "resnet8", "--out", str(tmp_path / "t"), *common)
    assert rc == 1 and "--resume" in err and err.count("\n") == 1


def test_kd_across_label_spaces_is_one_line_error(tmp_path, capsys):
    common = ["--dataset", "synthetic", "--preset", "smoke", "--quiet"]
    assert _run(capsys, "train-teacher", "--model", "resnet8", "--classes", "0,1,2", "--out", str(tmp_path / "t"),
                *common)[0] == 0
    rc, _, err = _run(capsys, "distill", "--model", "resnet8", "--teacher", str(tmp_path / "t" / "model.pt"),
                      "--method", "kd", "--classes", "3,4,5", "--out", str(tmp_path / "s"), *common)
    assert rc == 1 and "share a label space" in err and err.count("\n") == 1


def test_a_missing_dataset_names_the_path(tmp_path, capsys):
    rc, _, err = _run(capsys, "train-teacher", "--model", "resnet8", "--dataset", "cifar100", "--data-dir",
                      str(tmp_path), "--out", str(tmp_path / "run"), "--quiet")
    assert rc == 1 and str(tmp_path) in err and "cifar-100-python" in err and "download" in err


def test_experiment_overrides_from_the_command_line(tmp_path, monkeypatch, capsys):
    from fkdlib.cli import _overrides

    assert _overrides(["E=[1, 2]", "seeds=[0]", "preset=smoke"]) == {"E": [1, 2], "seeds": [0], "preset": "smoke"}
    with pytest.raises(SystemExit, match="SIZE=VALUE"):
        _overrides(["E"])
    monkeypatch.setenv("FKD_RESULTS_DIR", str(tmp_path))
    rc, out, _ = _run(capsys, "experiment", "ensemble_size", "--scale", "smoke", "--quiet", "--precision", "fp32",
                      "--set", "E=[1]", "--set", "seeds=[0]")
    summary = json.loads(out)
    assert rc == 0 and summary["overrides"] == {"E": [1], "seeds": [0]} and summary["E"] == [1]
