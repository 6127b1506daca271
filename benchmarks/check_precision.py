#!/usr/bin/env python
"""Does the engine's bf16 path learn as well as float32? FKD students of notebook 04's lite setting, both ways.

    FKD_DATA_DIR=/path/to/data .venv/bin/python benchmarks/check_precision.py

Trains, for each seed, a resnet8 FKD student of the method comparison's lite resnet20 teacher
(``results/method_comparison/lite/teacher_resnet20/model.pt``) on CIFAR-10 (JPEG q75 copy) with notebook 04's
lite student recipe, once with ``precision="fp32"`` and once with ``"bf16"``, and writes the final test
accuracy and kernel alignment of each to ``results/benchmarks/precision-lite.json`` with provenance. Both runs of
a seed see the same batches; only the arithmetic differs.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fkdlib.experiments.config import sizes  # noqa: E402
from fkdlib.data import load_train_test  # noqa: E402
from fkdlib.distill.methods import Method  # noqa: E402
from fkdlib.experiments.config import recipe as get_recipe  # noqa: E402
from fkdlib.records import provenance, write_record  # noqa: E402
from fkdlib.models.teachers import load_teacher  # noqa: E402
from fkdlib.engine.train import train  # noqa: E402


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--out", default=str(ROOT / "results" / "benchmarks" / "precision-lite.json"))
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    cfg = sizes("method_comparison", "lite")
    train_d, test_d = load_train_test(cfg["dataset"], args.data_dir)
    teacher = load_teacher(ROOT / "results" / "method_comparison" / "lite" / f"teacher_{cfg['teacher']}" / "model.pt")
    recipe = get_recipe(cfg["preset"], **cfg["student_recipe"])
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for precision in ("fp32", "bf16"):
                rec = train(cfg["student"], train_d, test_d, recipe, Path(tmp) / f"{precision}_{seed}",
                            method=Method("fkd"), teachers=[teacher], seed=seed, progress=False, precision=precision)
                final = rec["result"]["final"]
                runs.append({"seed": seed, "precision": precision, "test_acc": final["test_acc"],
                             "kernel_alignment": final.get("kernel_alignment"), "train_loss": final["train_loss"],
                             "wall_time_s": rec["result"]["wall_time_s"]})
                print(runs[-1], flush=True)
    mean = {p: sum(r["test_acc"] for r in runs if r["precision"] == p) / len(args.seeds) for p in ("fp32", "bf16")}
    result = {"runs": runs, "mean_test_acc": mean,
              "setting": f"FKD {cfg['teacher']} -> {cfg['student']}, {train_d.label}, notebook 04's lite student recipe"}
    write_record(args.out, result, provenance(config={"sizes": cfg, "threads": args.threads}, device="cpu"))
    print(f"mean test accuracy: {mean}; wrote {args.out}")
    return result


if __name__ == "__main__":
    main()
