"""The engine benchmark runs at its tiny size, so the script cannot rot; no timing is asserted."""
import importlib.util
import json
import math
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "bench_engine.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_engine", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def record(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "tiny.json"
    returned = bench.main(["--size", "tiny", "--out", str(out)])
    on_disk = json.loads(out.read_text())
    assert on_disk == json.loads(json.dumps(returned))
    return on_disk


def test_the_json_names_where_and_what_was_measured(record):
    for key in ("device", "device_type", "cpu_model", "gpu_model", "torch_version", "torchvision_version",
                "date_utc", "git_commit", "threads", "settings", "cases", "ensemble_ratios",
                "other_training_processes"):
        assert key in record
    assert record["size"] == "tiny" and record["settings"]["batch"] == 8
    assert {c["method"] for c in record["cases"]} == {"none", "fkd"}


def test_ratios_are_computed_from_the_timings_in_the_json(record):
    s = record["settings"]
    steps_per_epoch = math.ceil(s["epoch_images"] / s["batch"])
    for case in record["cases"]:
        for side in ("reference", "engine"):
            t = case[side]
            assert len(t["s_per_step_rounds"]) == s["rounds"] and t["s_per_step"] == min(t["s_per_step_rounds"])
            assert t["s_per_epoch"] == pytest.approx(t["s_per_step"] * steps_per_epoch)
            assert t["images_per_s"] == pytest.approx(s["batch"] / t["s_per_step"])
        assert case["speedup"] == pytest.approx(case["reference"]["s_per_epoch"] / case["engine"]["s_per_epoch"])
        r, e = case["reference"], case["engine"]
        if r["cpu_s_per_step"] and e["cpu_s_per_step"]:
            assert case["cpu_time_ratio"] == pytest.approx(r["cpu_s_per_step"] / e["cpu_s_per_step"])
    by_E = {c["E"]: c for c in record["cases"] if c["method"] == "fkd"}
    ratio = record["ensemble_ratios"]["resnet8 -> resnet8"]["2"]
    assert ratio["engine"] == pytest.approx(by_E[2]["engine"]["s_per_epoch"] / by_E[1]["engine"]["s_per_epoch"])
    assert ratio["reference"] == pytest.approx(by_E[2]["reference"]["s_per_epoch"] /
                                               by_E[1]["reference"]["s_per_epoch"])


def test_the_reference_transform_is_repdistillers(bench):
    names = [type(t).__name__ for t in bench.reference_transform().transforms]
    assert names == ["RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    crop = bench.reference_transform().transforms[0]
    assert crop.size == (32, 32) and crop.padding == 4


def test_the_teacher_sharing_benchmark_runs_and_its_warm_cache_hits_every_batch(tmp_path):
    """benchmarks/bench_teacher_sharing.py at its tiny size: the warm round reads every batch from the cache, and
    the ratios are the uncached step's time over the others' as recorded."""
    spec = importlib.util.spec_from_file_location("bench_teacher_sharing", SCRIPT.parent / "bench_teacher_sharing.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "sharing.json"
    record = json.loads(json.dumps(mod.main(["--size", "tiny", "--out", str(out)])))
    assert json.loads(out.read_text()) == record
    for row in record["methods"]:
        assert row["warm_hits"] == record["settings"]["steps"]
        s = row["s_per_step"]
        assert row["warm_speedup"] == pytest.approx(s["uncached"] / s["warm"])
        assert s["warm"] == min(row["s_per_step_rounds"]["warm"])
