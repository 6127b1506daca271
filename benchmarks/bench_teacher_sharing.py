#!/usr/bin/env python
"""What a distilled student's step costs when its teachers' outputs on the batch are already known.

    .venv/bin/python benchmarks/bench_teacher_sharing.py            # the converged comparison's pair, one thread
    .venv/bin/python benchmarks/bench_teacher_sharing.py --size tiny  # seconds: what the tests run

The students of one seed see the same batches (the loader's draws depend on the seed only), so a worker that
trains several of them one after another can keep the teachers' outputs of the first (``TeacherCache``, keyed by
the batch's bytes) and skip the teachers' forward in the others. This measures, in one process and in alternating
rounds, the engine's step (``TrainStep`` through ``bench_engine.EngineLoop``) three ways on the same batches:
without a cache (the teachers run), with a cold cache (the teachers run and their outputs are stored: the first
student of a seed) and with a warm one (every batch a hit: the students after it). The fastest round of each
counts; the ratios are the uncached step's time over the others'. Writes
``results/benchmarks/teacher-sharing-<device>-<date>.json``.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_engine import EngineLoop, _models, _others_running, time_steps  # noqa: E402
from fkdlib.device import cpu_model, describe_device, get_device  # noqa: E402
from fkdlib.distill.methods import Method  # noqa: E402
from fkdlib.engine import amp  # noqa: E402
from fkdlib.engine.teacher_cache import TeacherCache  # noqa: E402
from fkdlib.records import provenance  # noqa: E402

# the converged method comparison's pair and batch (config: method_comparison_converged), on one thread as its grid
SIZES = {
    "tiny": dict(teacher="resnet8", student="resnet8", classes=10, batch=8, steps=2, rounds=1, threads=1,
                 methods=["fkd"]),
    "cpu": dict(teacher="resnet20", student="resnet8", classes=10, batch=128, steps=10, rounds=4, threads=1,
                methods=["fkd", "kd", "rkd"]),
}


def measure(method_name: str, cfg: dict, device, precision: str) -> dict:
    """Seconds per step without a cache, with a cold one and with a warm one (fastest of ``rounds`` each)."""
    g = torch.Generator().manual_seed(0)
    n = cfg["batch"] * cfg["steps"]  # one epoch: every round replays the same batches
    X = torch.randint(0, 256, (n, 3, 32, 32), dtype=torch.uint8, generator=g)
    y = torch.randint(0, cfg["classes"], (n,), generator=g)
    method = Method(method_name)

    _, teachers = _models(cfg["teacher"], cfg["student"], 1, cfg["classes"], seed=0)  # one teacher, as in a grid

    def loop(cache):
        student = _models(cfg["teacher"], cfg["student"], 0, cfg["classes"], seed=0)[0]
        return EngineLoop(student, teachers, method, X, y, cfg["batch"], device, precision, cache=cache)

    warmup = loop(None)
    for _ in range(2):
        warmup.step()
    times = {"uncached": [], "cold": [], "warm": []}
    hits = 0
    for _ in range(cfg["rounds"]):
        times["uncached"].append(time_steps(loop(None), cfg["steps"], device)[0])
        cache = TeacherCache()
        times["cold"].append(time_steps(loop(cache), cfg["steps"], device)[0])
        before = cache.hits
        times["warm"].append(time_steps(loop(cache), cfg["steps"], device)[0])
        hits = cache.hits - before
    best = {k: min(v) for k, v in times.items()}
    return {"method": method_name, "s_per_step_rounds": times, "s_per_step": best, "warm_hits": hits,
            "warm_speedup": best["uncached"] / best["warm"], "cold_speedup": best["uncached"] / best["cold"]}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="cpu")
    ap.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    ap.add_argument("--precision", default="auto", choices=amp.PRECISIONS)
    ap.add_argument("--out", default=None, help="JSON path (default: results/benchmarks/teacher-sharing-...)")
    args = ap.parse_args(argv)
    cfg = SIZES[args.size]
    device = get_device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(cfg["threads"])
    precision = amp.resolve_precision(args.precision, device)
    others_before = _others_running()
    rows = []
    for name in cfg["methods"]:
        row = measure(name, cfg, device, precision)
        rows.append(row)
        s = row["s_per_step"]
        print(f"{name:4s} {cfg['teacher']} -> {cfg['student']}: {1e3 * s['uncached']:.1f} ms/step without a cache, "
              f"{1e3 * s['cold']:.1f} cold ({row['cold_speedup']:.2f}x), {1e3 * s['warm']:.1f} warm "
              f"({row['warm_speedup']:.2f}x, {row['warm_hits']} hits)", flush=True)
    prov = provenance(config={"size": args.size, **cfg, "precision": precision}, device=device)
    record = {"benchmark": "teacher outputs shared by the students of one seed", "size": args.size,
              "device": describe_device(device), "cpu_model": cpu_model(), "precision": precision,
              "threads": torch.get_num_threads(), "settings": cfg,
              "other_training_processes": sorted(set(others_before) | set(_others_running())),
              "load_average_1min": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
              "methods": rows, "provenance": prov}
    out = Path(args.out) if args.out else (
        ROOT / "results" / "benchmarks" / f"teacher-sharing-{device.type}-{dt.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {out}")
    return record


if __name__ == "__main__":
    main()
