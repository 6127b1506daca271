import json

import matplotlib
import pytest
import torch

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from fkdlib import paths, viz  # noqa: E402
from fkdlib.experiments import config  # noqa: E402
from fkdlib.device import describe_device, get_device  # noqa: E402
from fkdlib import records  # noqa: E402
from fkdlib.experiments import report  # noqa: E402
from fkdlib.records import load_result, provenance, save_result, write_record  # noqa: E402
from fkdlib.stats import paired_ci95, side, verdict  # noqa: E402


def test_provenance_says_how_a_result_was_made():
    p = provenance(seed=7, config={"lr": 0.1}, device="cpu")
    assert p["seed"] == 7 and p["config"] == {"lr": 0.1}
    assert p["device"].startswith("cpu")
    assert p["torch_version"] == torch.__version__
    assert len(p["git_commit"]) == 40 or p["git_commit"].startswith("unknown")
    assert p["time_utc"].endswith("+00:00")


def test_results_round_trip_and_smoke_results_stay_out_of_results(tmp_path, monkeypatch):
    monkeypatch.setenv("FKD_RESULTS_DIR", str(tmp_path))
    path = save_result("exp", "run0", {"acc": 0.5}, provenance(seed=0))
    assert path == tmp_path / "exp" / "run0.json"
    assert load_result(path)["result"] == {"acc": 0.5}
    (tmp_path / "bare.json").write_text(json.dumps({"acc": 0.5}))
    with pytest.raises(ValueError, match="missing"):
        load_result(tmp_path / "bare.json")
    monkeypatch.delenv("FKD_RESULTS_DIR")
    assert paths.results_dir("smoke") == paths.REPO_ROOT / "results" / "smoke"
    assert paths.results_dir("lite") == paths.REPO_ROOT / "results"


def _refuse(constant):
    raise ValueError(f"not strict JSON: {constant}")


def test_a_missing_number_is_written_as_null_never_nan(tmp_path):
    """Records and summaries are strict JSON: any JSON reader opens them (NaN, Infinity are not JSON)."""
    nan, inf = float("nan"), float("inf")
    path = write_record(tmp_path / "r.json", {"status": "done", "final": {"test_acc": 0.5, "train_ce": nan},
                                              "history": [{"loss": inf}, {"loss": -inf, "pair": (1.0, nan)}],
                                              "by_seed": {0: nan}},
                        provenance(config={"lr": 0.1, "gap": nan}))
    record = json.loads(path.read_text(), parse_constant=_refuse)
    assert record["result"]["final"] == {"test_acc": 0.5, "train_ce": None}
    assert record["result"]["history"] == [{"loss": None}, {"loss": None, "pair": [1.0, None]}]
    assert record["result"]["by_seed"] == {"0": None} and record["provenance"]["config"]["gap"] is None
    assert json.loads(records.to_json([nan, 1]), parse_constant=_refuse) == [None, 1]


def test_a_run_record_is_read_through_its_view(tmp_path):
    config = {"data_label": "CIFAR-10", "classes": [0, 1], "method": {"name": "fkd", "lam_kd": 30.0}}
    write_record(tmp_path / records.RECORD, {"status": "done", "history": [{"epoch": 0, "test_acc": 0.4},
                                                                          {"epoch": 1, "test_acc": 0.5, "val_acc": None}],
                                            "final": {"epoch": 1, "test_acc": 0.5, "val_acc": float("nan")}},
                 provenance(seed=0, config=config))
    rec = records.done_record(tmp_path)
    assert records.status(rec) == "done" and records.final(rec) == 50.0 and len(records.history(rec)) == 2
    assert records.final_metrics(rec) == {"epoch": 1, "test_acc": 0.5, "val_acc": None}
    assert records.final(rec, "val_acc") != records.final(rec, "val_acc")          # missing: NaN by default
    assert records.final(rec, "val_acc", missing=None) is None and records.final(rec, "train_acc", None) is None
    assert records.run_config(rec)["classes"] == [0, 1] and records.run_method(rec)["lam_kd"] == 30.0
    assert records.data_label(rec) == records.setting(rec)["data"] == "CIFAR-10"


def test_a_summary_read_back_with_a_missing_interval_still_reads(tmp_path):
    """One seed has no interval: NaN in memory, null in the file; the readers take either."""
    one = paired_ci95({0: 60.0}, {0: 58.0})
    path = write_record(tmp_path / "summary.json", {"paired": {"fkd - none": one}}, provenance())
    back = load_result(path)["result"]["paired"]["fkd - none"]
    assert back["ci95"] is None and side(back) == side(one) == "one seed"
    assert verdict(back, "FKD - plain") == verdict(one, "FKD - plain")
    assert report._cell({"mean": 60.0, "ci95": None, "n": 1}) == "60.00 ± n/a (n=1)"
    fig = viz.paired_differences({"paired": {"fkd - none": back}, "teacher": "t", "student": "s"})
    plt.close(fig)


def test_figures_go_to_one_place_with_stable_bytes(tmp_path, monkeypatch):
    monkeypatch.setenv("FKD_FIGURES_DIR", str(tmp_path))
    K = torch.eye(6)
    written = []
    for _ in range(2):
        fig = viz.kernel_heatmaps({"a": K, "b": -K}, labels=torch.tensor([0, 0, 1, 1, 2, 2]))
        written.append(viz.savefig(fig, "99_test", source="results/x.json").read_bytes())
        plt.close(fig)
    assert written[0] == written[1], "the same figure must give the same file (no timestamps)"
    monkeypatch.delenv("FKD_FIGURES_DIR")
    assert paths.figures_dir("smoke") == paths.REPO_ROOT / "figures" / "smoke"


def test_scales_are_validated_and_sizes_are_fresh_copies(monkeypatch):
    monkeypatch.setenv("FKD_SCALE", "smoke")
    assert config.get_scale() == "smoke"
    with pytest.raises(ValueError, match="smoke, lite, full"):
        config.get_scale("huge")
    a = config.sizes("quickstart", "lite")
    a["batch_size"] = -1
    assert config.sizes("quickstart", "lite")["batch_size"] > 0
    small, big = config.sizes("quickstart", "smoke"), config.sizes("quickstart", "full")
    assert all(small[k] <= big[k] for k in small)


def test_device_helper():
    assert get_device("cpu") == torch.device("cpu")
    assert get_device().type in {"cuda", "mps", "cpu"}
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="cuda"):
            get_device("cuda")
    assert describe_device("cpu").startswith("cpu")


def test_mean_ci95_matches_a_hand_computed_student_t_interval():
    from fkdlib.stats import mean_ci95
    mean, half = mean_ci95([70.0, 72.0, 74.0])  # sd 2, n 3, t(0.975, 2) = 4.303
    assert mean == pytest.approx(72.0) and half == pytest.approx(4.303 * 2 / 3 ** 0.5, rel=1e-4)
    mean, half = mean_ci95([1.0, 1.0, 1.0, 1.0, 1.0])
    assert half == 0.0
    assert mean_ci95([5.0])[1] != mean_ci95([5.0])[1]  # NaN: one run has no interval


def test_the_validation_figure_names_each_stage_of_a_choice():
    def tries(lrs, lam):
        return {"run": "r", "rounds": [[{"run": f"w{lam}_lr{lr}", "val_acc": {0: 50 + lr},
                                         "method": {"name": "rkd", "lam_kd": lam, "lr": lr}} for lr in lrs]],
                "two_se": 1.0}
    weight = {"run": "w1", "rounds": [[{"run": f"w{w}", "val_acc": {0: 50 + w},
                                        "method": {"name": "rkd", "lam_kd": w, "lr": 0.1}} for w in (1, 3)]]}
    fig = viz.validation_choices({"tuning": {"rkd weight": weight, "rkd": tries([0.05, 0.1], 3)}})
    assert [ax.get_title() for ax in fig.axes] == ["RKD: weight", "RKD: learning rate"]
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == ["weight 3, lr 0.05", "weight 3, lr 0.1"]
    plt.close(fig)
