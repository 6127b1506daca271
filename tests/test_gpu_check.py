"""``make gpu-check`` runs at its tiny size on the CPU, so the GPU's few minutes go to measuring, not debugging."""
import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "benchmarks" / "gpu_check.py"


def test_the_gpu_check_measures_every_part_and_writes_one_json(tmp_path):
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path / "check.json"
    record = mod.main(["--size", "tiny", "--device", "cpu", "--out", str(out), "--work-dir", str(tmp_path / "work")])
    on_disk = json.loads(out.read_text())
    assert on_disk == json.loads(json.dumps(record))
    parts = on_disk["parts"]
    assert parts["engine"]["cases"] and Path(parts["engine"]["json"]).exists()
    run = parts["paper_run"]
    assert run["pair"] == "vgg13 -> vgg8" and run["s_per_epoch"] > 0 and run["all_epochs_run"] == 2
    pack = parts["packing"]
    assert set(pack) == {"1", "2"} and all(r["failures"] == {} and r["runs_per_hour"] > 0 for r in pack.values())
    for k in ("1", "2"):  # every packed run finished and wrote its record
        done = list((tmp_path / "work" / f"pack{k}").glob("run*/result.json"))
        assert len(done) == int(k)
    assert on_disk["estimate"]["full_method_comparison_s"] > 0 and on_disk["provenance"]["git_commit"]
