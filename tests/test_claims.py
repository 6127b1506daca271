import platform
import subprocess

import pytest
import torch

from fkdlib import claims, records
from fkdlib.device import describe_device


def test_a_claim_is_asserted_at_the_defaults_and_only_reported_elsewhere(capsys):
    assert claims.at_defaults(LAM=(30.0, 30.0), E=(4, 4))
    assert not claims.at_defaults(LAM=(0.0, 30.0), E=(4, 4))
    with pytest.raises(AssertionError, match="FKD beats plain"):
        claims.check(False, "FKD beats plain", defaults=True)
    claims.check(False, "FKD beats plain", defaults=False)
    assert "does not hold with your settings" in capsys.readouterr().out
    claims.check(True, "FKD beats plain")
    assert capsys.readouterr().out == ""


def _record(device: str, torch: str = "2.14.1+cu130", **config) -> dict:
    return {"result": {}, "provenance": {"device": device, "torch_version": torch, "config": config}}


def test_a_runs_setting_is_its_data_device_and_torch_as_its_record_names_them():
    engine_run = _record("cpu: x86_64 (1 threads)", data_label="CIFAR-10 (JPEG q75 copy)")
    notebook_01 = _record("cpu: x86_64 (2 threads)", data="CIFAR-10 (JPEG q75 copy)")   # notebook 01 says "data"
    assert records.setting(engine_run) == {"data": "CIFAR-10 (JPEG q75 copy)", "device": "cpu: x86_64 (1 threads)",
                                           "torch": "2.14.1+cu130"}
    assert records.setting(notebook_01)["data"] == "CIFAR-10 (JPEG q75 copy)"
    here = records.setting_here("synthetic", "cpu")
    assert here == {"data": "synthetic", "device": describe_device("cpu"), "torch": torch.__version__}


def test_a_cpu_is_named_by_its_model_instruction_set_and_threads():
    """Two x86-64 CPUs of other models sum in other orders (the committed lite runs, made on an Intel Xeon, are not
    retraced to the last digit on an AMD EPYC): the name a record keeps tells them apart."""
    name = describe_device("cpu")
    assert name.startswith("cpu: ") and name.endswith(f", {torch.get_num_threads()} threads)")
    assert platform.machine() in name and torch.backends.cpu.get_cpu_capability() in name


@pytest.mark.parametrize("path", ["results/feature_kernels/lite.json",
                                  "results/method_comparison/lite/runs/fkd_w30_fr0.001norm_s0/result.json"])
def test_the_committed_runs_the_notebooks_compare_with_name_their_setting(path):
    shown = records.setting(records.committed(path))
    assert shown["data"] == "CIFAR-10 (JPEG q75 copy)" and shown["device"].startswith("cpu: ") and shown["torch"]


def test_the_committed_record_is_the_last_commits_not_a_rewritten_file(tmp_path, monkeypatch):
    """A reader's own lite run of notebook 01 rewrites results/feature_kernels/lite.json; the committed run is still
    the one its text describes. Outside a git checkout the file is all there is."""
    root = tmp_path / "repo"
    (root / "results").mkdir(parents=True)
    path = root / "results" / "run.json"
    records.write_record(path, {"acc": 1}, {"device": "cpu: x86_64 (1 threads)", "config": {}})
    monkeypatch.setattr(records, "REPO_ROOT", root)
    assert records.committed("results/run.json")["result"] == {"acc": 1}          # no checkout: the file
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@t"]
    for cmd in (["init", "-q"], ["add", "results/run.json"], ["commit", "-qm", "run"]):
        subprocess.run(git + cmd, check=True, capture_output=True)
    records.write_record(path, {"acc": 2}, {"device": "cuda: Tesla T4", "config": {}})   # a reader's own run
    assert records.committed("results/run.json")["result"] == {"acc": 1}
    assert records.load_result(path)["result"] == {"acc": 2}


def test_a_claim_about_a_committed_run_is_asserted_only_in_its_setting(capsys):
    committed = records.setting(_record("cpu: x86_64 (1 threads)", data_label="CIFAR-10 (JPEG q75 copy)"))
    assert claims.setting_differs(committed, dict(committed)) is None
    with pytest.raises(AssertionError, match="retraces the committed run"):   # its setting: asserted
        claims.check(False, "retraces the committed run", True, None)
    colab = {"data": "CIFAR-10", "device": "cuda: Tesla T4", "torch": "2.14.1+cu130"}
    differs = claims.setting_differs(committed, colab)
    assert "data: CIFAR-10 (JPEG q75 copy) there, CIFAR-10 here" in differs
    assert "device: cpu: x86_64 (1 threads) there, cuda: Tesla T4 here" in differs and "torch" not in differs
    claims.check(False, "retraces the committed run", True, differs)          # elsewhere: reported, with the reason
    assert capsys.readouterr().out == f"retraces the committed run: does not hold here ({differs})\n"
    claims.check(True, "retraces the committed run", False, differs)          # knobs changed: that reason comes first
    assert "holds with your settings (asserted only at the defaults)" in capsys.readouterr().out
