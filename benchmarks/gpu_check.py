#!/usr/bin/env python
"""What a few minutes on a GPU measure: ``make gpu-check`` (at most ``--budget-s``, default 9 minutes).

Needs only torch, torchvision and tqdm (no jupyter, no ray: the GPU machine has neither) and the repository.

1. **The engine against the reference loop**: ``bench_engine.py --size gpu`` (bf16), written to
   ``results/benchmarks/cuda-<date>.json`` as BENCHMARKS.md's GPU table reads it.
2. **One paper-recipe run, timed**: a vgg13 -> vgg8 FKD student (``fkdlib.engine.train.train``, the paper's recipe:
   160 epochs, batch 128) on real CIFAR-10 images (the JPEG copy where it is carried, else CIFAR-10 in
   ``FKD_DATA_DIR``; synthetic at ``--size tiny``); the teacher is untrained (its weights do not change the time).
   First a few epochs; all 160 if the measured seconds per epoch say they fit the time left, else the seconds per
   epoch stand as the measurement.
3. **Runs at once on one device**: 1, 2, 4 and 8 resnet8 runs of the lite protocol's size (2,500 CIFAR-shaped
   synthetic images: the time does not depend on the pixels; batch 128) through the worker pool (``fkdlib.experiments.runner``,
   ``--workers K``), timed from submission to the last record, worker start-up included: runs an hour at each K.
4. **The estimate**: the full method comparison (a teacher and 30 students of 160 epochs) on this device, from 2's
   seconds per epoch and 3's best packing.

Everything lands in ``results/benchmarks/gpu-check-<device>-<date>.json`` with provenance (``--out`` to change).
``--size tiny`` runs the same path in about a minute on a CPU: what the tests run.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from fkdlib.experiments import runner  # noqa: E402
from fkdlib.data import load_train_test  # noqa: E402
from fkdlib.device import describe_device, get_device  # noqa: E402
from fkdlib.distill.methods import Method  # noqa: E402
from fkdlib.models import create_model  # noqa: E402
from fkdlib.experiments.config import recipe as get_recipe  # noqa: E402
from fkdlib.records import provenance  # noqa: E402
from fkdlib.models.teachers import Teacher  # noqa: E402
from fkdlib.engine.train import train  # noqa: E402

SIZES = {
    # a CPU in about a minute: synthetic images, a couple of epochs, packing 1 and 2
    "tiny": dict(bench="tiny", data="synthetic", n_per_class=8, probe_epochs=1, epochs=2, pack=[1, 2],
                 pack_images=64, pack_epochs=1),
    "gpu": dict(bench="gpu", data="real", probe_epochs=3, epochs=160, pack=[1, 2, 4, 8], pack_images=2500,
                pack_epochs=3),
}
FULL_COMPARISON_RUNS = 31  # the teacher and 30 students (docs/paper.md §3.1 at the full scale)


class PackingGrid:
    """K identical resnet8 runs of the lite protocol's size (K = the scale's number), for ``fkdlib.experiments.runner``."""

    experiment = "gpu_check_packing"

    def __init__(self, scale: str, out: Path):
        self.k, self.images, self.epochs = (int(v) for v in scale.split("x"))
        self.scale, self.out = scale, Path(out)

    def todo(self):
        return [runner.Run(f"run{i}", "time", None, i) for i in range(self.k) if not runner.finished(self.out / f"run{i}")]

    def execute(self, run, device=None, **_):
        train_d, test_d = load_train_test("synthetic", n_per_class=max(1, self.images // 10), num_classes=10,
                                          image_size=32)
        recipe = get_recipe("lite", epochs=self.epochs, batch_size=min(128, len(train_d)), milestones=(),
                            train_subset=0, test_subset=0, eval_last=1)
        train("resnet8", train_d, test_d, recipe, self.out / run.name, seed=run.seed, device=device, progress=False)

    def summarize(self):
        return {}


def paper_run(cfg: dict, device, out: Path, budget_left) -> dict:
    """Part 2: the vgg13 -> vgg8 FKD student at the paper's recipe, timed."""
    if cfg["data"] == "real":
        from fkdlib.data import load_real_images

        train_d, test_d = load_real_images("train", verbose=False), load_real_images("test", verbose=False)
    else:
        train_d, test_d = load_train_test("synthetic", n_per_class=cfg["n_per_class"], num_classes=10, image_size=32)
    torch.manual_seed(0)
    teacher = Teacher(create_model("vgg13", num_classes=10), "vgg13", train_d.name, list(train_d.classes))
    run_dir = out / "paper_run"

    def go(epochs):
        recipe = get_recipe("paper", epochs=epochs, batch_size=min(128, len(train_d)))
        t0 = time.perf_counter()
        rec = train("vgg8", train_d, test_d, recipe, run_dir, method=Method("fkd"), teachers=[teacher], seed=0,
                    device=device, resume=True, progress=False)
        return rec, time.perf_counter() - t0

    rec, wall = go(cfg["probe_epochs"])
    hist = rec["result"]["history"]
    per_epoch = [b["wall_time_s"] - a["wall_time_s"] for a, b in zip(hist, hist[1:])] or [hist[0]["wall_time_s"]]
    s_per_epoch = min(per_epoch)  # the first epoch pays for warm-up
    result = {"pair": "vgg13 -> vgg8", "method": "fkd", "data": getattr(train_d, "label", train_d.name),
              "images": len(train_d), "epochs_measured": cfg["probe_epochs"], "s_per_epoch": s_per_epoch,
              "first_call_wall_s": wall, "estimated_160_epochs_s": 160 * s_per_epoch}
    if cfg["epochs"] * s_per_epoch * 1.2 < budget_left():
        rec, wall2 = go(cfg["epochs"])
        result.update(all_epochs_run=cfg["epochs"], all_epochs_wall_s=wall + wall2,
                      test_acc=rec["result"]["final"].get("test_acc"))
    else:
        result["all_epochs_run"] = None
    return result


def packing(cfg: dict, device, out: Path, budget_left) -> dict:
    """Part 3: K runs at once through the worker pool; runs an hour at each K."""
    rows = {}
    for k in cfg["pack"]:
        if budget_left() < 30:
            break
        scale = f"{k}x{cfg['pack_images']}x{cfg['pack_epochs']}"
        folder = out / f"pack{k}"
        t0 = time.perf_counter()
        failures = runner.run_grid(PackingGrid(scale, folder), runner.GridRef("gpu_check:PackingGrid", scale, str(folder),
                                                                              (("device", str(device)),)),
                                   workers=k if k > 1 else None, progress=False)
        wall = time.perf_counter() - t0
        rows[k] = {"wall_s": wall, "runs_per_hour": k * 3600 / wall, "failures": failures,
                   "epochs_each": cfg["pack_epochs"], "images_each": cfg["pack_images"]}
        print(f"{k} run(s) at once: {wall:.1f} s, {rows[k]['runs_per_hour']:.0f} runs an hour", flush=True)
    return rows


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="gpu")
    ap.add_argument("--budget-s", type=float, default=540.0, help="stop starting new parts past this (default 9 min)")
    ap.add_argument("--device", default=None)
    ap.add_argument("--out", default=None, help="JSON path (default results/benchmarks/gpu-check-<device>-<date>.json)")
    ap.add_argument("--work-dir", default=None, help="where the timed runs write (default build/gpu-check)")
    args = ap.parse_args(argv)
    cfg, device, start = SIZES[args.size], get_device(args.device), time.perf_counter()

    def budget_left():
        return args.budget_s - (time.perf_counter() - start)

    date = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d")
    work = Path(args.work_dir or ROOT / "build" / "gpu-check")
    record = {"check": "gpu-check", "size": args.size, "device": describe_device(device),
              "gpu_model": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "parts": {}}
    spec = importlib.util.spec_from_file_location("bench_engine", ROOT / "benchmarks" / "bench_engine.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    bench_out = (Path(args.out).with_name(f"{Path(args.out).stem}-engine.json") if args.out else
                 ROOT / "results" / "benchmarks" / f"{device.type}-{date}.json")
    engine = bench.main(["--size", cfg["bench"], "--out", str(bench_out),
                         *(["--precision", "bf16"] if device.type == "cuda" else []), *(["--device", str(device)])])
    record["parts"]["engine"] = {"json": str(bench_out), "cases": {c["name"]: c["speedup"] for c in engine["cases"]},
                                 "ensemble_ratios": engine.get("ensemble_ratios")}
    if budget_left() > 60:
        record["parts"]["paper_run"] = paper_run(cfg, device, work, budget_left)
    record["parts"]["packing"] = packing(cfg, device, work, budget_left)
    pack = record["parts"]["packing"]
    run = record["parts"].get("paper_run")
    if pack and run:
        best = max(pack.values(), key=lambda r: r["runs_per_hour"])
        gain = best["runs_per_hour"] / pack[min(pack)]["runs_per_hour"]
        total = FULL_COMPARISON_RUNS * 160 * run["s_per_epoch"] / gain
        record["estimate"] = {"full_method_comparison_s": total, "packing_gain": gain,
                              "how": f"{FULL_COMPARISON_RUNS} runs x 160 epochs x {run['s_per_epoch']:.2f} s/epoch "
                                     f"/ {gain:.2f} (runs an hour at the best K over K = 1)"}
        print(f"estimate: the full method comparison in {total / 60:.1f} min on this device", flush=True)
    record["wall_s"] = time.perf_counter() - start
    record["provenance"] = provenance(config={"size": args.size, **cfg}, device=device)
    out = Path(args.out or ROOT / "results" / "benchmarks" / f"gpu-check-{device.type}-{date}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1, sort_keys=True) + "\n")
    print(f"wrote {out} ({record['wall_s']:.0f} s)")
    return record


if __name__ == "__main__":
    main()
