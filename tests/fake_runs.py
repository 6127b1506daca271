"""A finished run's record written by hand, for tests of the grids' choices (no training)."""
import json
from pathlib import Path


def fake_run(run_dir: Path, val: float, **final) -> None:
    """Write a done record in ``run_dir`` whose final validation accuracy is ``val`` percent (and ``final``'s
    other metrics)."""
    run_dir.mkdir(parents=True)
    final = {"val_acc": val / 100, "test_acc": 0.5, "train_acc": 0.6, **final}
    (run_dir / "result.json").write_text(json.dumps({"result": {"status": "done", "final": final,
                                                                "history": [final]}, "provenance": {}}))
