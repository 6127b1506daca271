#!/usr/bin/env python
"""fkdlib's training engine beside the RepDistiller-style loop, side by side in one process on one device.

    .venv/bin/python benchmarks/bench_engine.py --size cpu      # the committed CPU table (BENCHMARKS.md)
    .venv/bin/python benchmarks/bench_engine.py --size gpu      # the same on a GPU
    .venv/bin/python benchmarks/bench_engine.py --size tiny     # seconds: what the tests run

**The reference loop** is what users compare us with, RepDistiller's ``train_distill``: a torchvision
``DataLoader`` (shuffled, ``--workers`` worker processes) over PIL images with ``RandomCrop(32, padding=4)``,
``RandomHorizontalFlip()``, ``ToTensor()``, ``Normalize(mean, std)``; float32, eager, NCHW; the teachers in
eval mode under ``torch.no_grad``; per step ``loss.item()`` and top-1 accuracy into running averages, as
RepDistiller's meters do. **The engine** is what ``fkdlib.engine.train.train`` runs: ``DeviceLoader`` (uint8 data
on the device, the same per-image crop and flip drawn in torch), ``TrainStep`` (channels_last, folded
teachers under inference mode, autocast in the device's fast precision) and ``EpochStats`` (metrics summed on
the device). Both compute their losses with ``fkdlib.distill.methods.loss_terms``: only the pipeline differs.

Every case runs the same model pair, batch and number of steps after warm-up: first the reference (warm-up,
then ``--rounds`` rounds of ``--steps`` steps), then, once the reference's loader workers are stopped (so
they neither compete with the engine nor prepare the reference's next batches meanwhile), the engine the same
way. A round's time per step is its wall time over its steps, and the fastest round counts (the least
disturbed by anything else on the machine). Seconds per epoch are
that times the steps of one 50,000-image CIFAR epoch at the batch size; the speedup is the reference's
seconds per epoch over the engine's. Each round also records the CPU time spent by the loop's process and
its loader workers (``cpu_time_ratio``: the reference's over the engine's, fastest rounds); PyTorch's
OpenMP threads spin while they wait, so on a busy machine it grows with the wall time. The data are synthetic CIFAR-shaped uint8 images (the speed does not
depend on what the pixels show). Writes ``results/benchmarks/<device>-<date>.json`` (``--out`` to change).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torchvision
import torchvision.transforms as T
from PIL import Image
from torch.utils.data import DataLoader, Dataset

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from fkdlib.engine import amp  # noqa: E402
from fkdlib.distill.checks import finite_checks  # noqa: E402
from fkdlib.device import cpu_model, describe_device, get_device  # noqa: E402
from fkdlib.data.loader import DeviceLoader  # noqa: E402
from fkdlib.distill.methods import Method, loss_terms  # noqa: E402
from fkdlib.models import create_model  # noqa: E402
from fkdlib.records import provenance  # noqa: E402
from fkdlib.models.teachers import Teacher  # noqa: E402
from fkdlib.engine.step import EpochStats, TrainStep  # noqa: E402

MEAN, STD = (0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)  # CIFAR-100, as RepDistiller
EPOCH_IMAGES = 50_000  # one CIFAR training epoch

# (name, method, teacher arch, student arch, number of teachers)
_PAIRS = {"vgg": ("vgg13", "vgg8"), "lite": ("resnet20", "resnet8"), "ens": ("resnet8", "resnet8")}
SIZES = {
    "tiny": dict(batch=8, image=32, classes=10, steps=2, warmup=1, rounds=1, workers=0, threads=None,
                 cases=[("plain resnet8", "none", None, "resnet8", 0), ("FKD resnet8 -> resnet8", "fkd", "resnet8", "resnet8", 1),
                        ("FKD resnet8 x2 -> resnet8", "fkd", "resnet8", "resnet8", 2)]),
    "cpu": dict(batch=128, image=32, classes=100, steps=6, warmup=3, rounds=5, workers=2, threads=2,
                cases=[("plain vgg8", "none", None, "vgg8", 0),
                       ("plain resnet8", "none", None, "resnet8", 0),
                       ("FKD vgg13 -> vgg8", "fkd", "vgg13", "vgg8", 1),
                       ("FKD resnet20 -> resnet8 (lite pair)", "fkd", "resnet20", "resnet8", 1),
                       *[(f"FKD resnet8 x{E} -> resnet8", "fkd", "resnet8", "resnet8", E) for E in (1, 2, 4, 8)]]),
    "gpu": dict(batch=128, image=32, classes=100, steps=100, warmup=20, rounds=3, workers=4, threads=None,
                cases=[("plain vgg8", "none", None, "vgg8", 0),
                       ("FKD vgg13 -> vgg8", "fkd", "vgg13", "vgg8", 1),
                       ("FKD resnet20 -> resnet8 (lite pair)", "fkd", "resnet20", "resnet8", 1),
                       *[(f"FKD vgg8 x{E} -> vgg8", "fkd", "vgg8", "vgg8", E) for E in (1, 2, 4, 8)]]),
}


# ---------------------------------------------------------------------------- the reference loop
class PILImages(Dataset):
    """CIFAR-style dataset: uint8 HWC images held in numpy, each returned as a PIL image through ``transform``
    (what ``torchvision.datasets.CIFAR100.__getitem__`` does)."""

    def __init__(self, X: np.ndarray, y: np.ndarray, transform):
        self.X, self.y, self.transform = X, y, transform

    def __len__(self):
        return len(self.X)

    def __getitem__(self, i):
        return self.transform(Image.fromarray(self.X[i])), int(self.y[i])


def reference_transform():
    """RepDistiller's CIFAR training transform."""
    return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])


class ReferenceLoop:
    """RepDistiller's ``train_distill`` (and ``train_vanilla`` when there is no teacher), one step per batch."""

    def __init__(self, student, teachers, method, X_hwc, y, batch, workers, device, lr=0.05):
        self.student, self.teachers, self.method, self.device = student, teachers, method, device
        self.opt = torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        ds = PILImages(X_hwc, y, reference_transform())
        self.loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                 pin_memory=device.type == "cuda")
        self.it = iter(self.loader)
        self.loss_sum = self.acc_sum = 0.0
        self.n = 0

    def _next(self):
        try:
            return next(self.it)
        except StopIteration:
            self.it = iter(self.loader)
            return next(self.it)

    def worker_pids(self) -> list[int]:
        return [w.pid for w in getattr(self.it, "_workers", [])]

    def step(self):
        x, y = self._next()
        x, y = x.float().to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        self.student.train()
        feats_s, logits = self.student(x, is_feat=True)
        with torch.no_grad():
            t_out = [t(x, is_feat=True) for t in self.teachers]
            t_out = [([f.detach() for f in ft], lt) for ft, lt in t_out]
        loss = sum(loss_terms(self.method, feats_s, logits, y, t_out).values())
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.loss_sum += loss.item() * len(y)  # RepDistiller's AverageMeter: a host sync every step
        self.acc_sum += (logits.argmax(1) == y).float().sum().item()
        self.n += len(y)

    def close(self):
        """Stop the loader's worker processes."""
        shutdown = getattr(self.it, "_shutdown_workers", None)
        if shutdown is not None:
            shutdown()
        self.it = None


# ---------------------------------------------------------------------------- the engine
class EngineLoop:
    """What ``fkdlib.engine.train.train`` does per step: a DeviceLoader batch, ``TrainStep``, ``EpochStats.add``."""

    def __init__(self, student, teachers, method, X, y, batch, device, precision="auto", fold=True,
                 compile=False, lr=0.05, cache=None):
        student = student.to(device, memory_format=torch.channels_last)
        opt = torch.optim.SGD(student.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
        tt = [Teacher(t.to(device, memory_format=torch.channels_last), "t", "synthetic") for t in teachers]
        self.precision = amp.resolve_precision(precision, device)
        self.step_fn = TrainStep(student, tt, method, opt, device, self.precision, fold_teachers=fold,
                                 compile=compile, cache=cache)
        self.loader = DeviceLoader(X, y, batch, train=True, mean=MEAN, std=STD, device=device, seed=0)
        self.device = device
        self.epoch, self.k = 0, 0
        self.batches = iter(self.loader)
        self.stats = EpochStats(device)

    def step(self):
        try:
            xb, yb = next(self.batches)
        except StopIteration:
            self.epoch += 1
            self.loader.set_epoch(self.epoch)
            self.batches, self.stats, self.k = iter(self.loader), EpochStats(self.device), 0
            xb, yb = next(self.batches)
        with finite_checks(False):
            self.stats.add(self.k, yb, *self.step_fn(xb, yb, None))
        self.k += 1


# ---------------------------------------------------------------------------- timing
def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(loop, steps: int, device) -> tuple[float, float | None]:
    """``(wall, cpu)`` seconds per step of ``steps`` consecutive steps of ``loop``.

    ``wall``: wall time, device synchronised. ``cpu``: the CPU time the loop's process and its loader
    workers spent (Linux; None elsewhere).
    """
    workers = loop.worker_pids() if hasattr(loop, "worker_pids") else []
    _sync(device)
    t0, c0, w0 = time.perf_counter(), time.process_time(), _cpu_seconds(workers)
    for _ in range(steps):
        loop.step()
    _sync(device)
    wall, cpu, w1 = time.perf_counter() - t0, time.process_time() - c0, _cpu_seconds(workers)
    return wall / steps, (cpu + w1 - w0) / steps if w0 is not None and w1 is not None else None


def _cpu_seconds(pids: list[int]) -> float | None:
    """User + system CPU seconds of processes ``pids`` so far, from /proc (None where it cannot be read)."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


def _models(teacher, student, E, classes, seed):
    torch.manual_seed(seed)
    s = create_model(student, num_classes=classes)
    ts = []
    for e in range(E):
        t = create_model(teacher, num_classes=classes)
        _perturb_batchnorm(t, seed + e)  # a trained teacher's BatchNorm is not the identity
        ts.append(t.eval().requires_grad_(False))
    return s, ts


def _perturb_batchnorm(model, seed):
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(0.1 * torch.randn(n, generator=g))
            m.running_var.copy_(0.5 + torch.rand(n, generator=g))
            m.weight.data.copy_(0.5 + torch.rand(n, generator=g))
            m.bias.data.copy_(0.1 * torch.randn(n, generator=g))


def _summary(rounds: list[tuple[float, float | None]], batch: int) -> dict:
    per_step = [w for w, _ in rounds]
    best = min(per_step)
    steps_per_epoch = math.ceil(EPOCH_IMAGES / batch)
    cpu = [c for _, c in rounds]
    return {"s_per_step_rounds": per_step, "s_per_step": best, "s_per_epoch": best * steps_per_epoch,
            "images_per_s": batch / best, "cpu_s_per_step_rounds": cpu,
            "cpu_s_per_step": min(cpu) if None not in cpu else None}


def run_case(name, method_name, teacher, student, E, cfg, data, device, precision, fold, compile):
    method = Method(method_name)
    X, y = data
    X_hwc = X.permute(0, 2, 3, 1).contiguous().numpy()
    s_ref, t_ref = _models(teacher, student, E, cfg["classes"], seed=0)
    s_eng, t_eng = _models(teacher, student, E, cfg["classes"], seed=0)
    rounds, compile_s = {}, None
    ref = ReferenceLoop(s_ref.to(device), [t.to(device) for t in t_ref], method, X_hwc, y.numpy(),
                        cfg["batch"], cfg["workers"], device)
    for _ in range(cfg["warmup"]):
        ref.step()
    rounds["reference"] = [time_steps(ref, cfg["steps"], device) for _ in range(cfg["rounds"])]
    ref.close()
    t0 = time.perf_counter()
    eng = EngineLoop(s_eng, t_eng, method, X, y, cfg["batch"], device, precision, fold, compile)
    for _ in range(cfg["warmup"]):
        eng.step()
    _sync(device)
    if compile:
        compile_s = time.perf_counter() - t0
    rounds["engine"] = [time_steps(eng, cfg["steps"], device) for _ in range(cfg["rounds"])]
    r, e = _summary(rounds["reference"], cfg["batch"]), _summary(rounds["engine"], cfg["batch"])
    row = {"name": name, "method": method_name, "teacher": teacher, "student": student, "E": E,
           "reference": r, "engine": e, "speedup": r["s_per_epoch"] / e["s_per_epoch"],
           "cpu_time_ratio": (r["cpu_s_per_step"] / e["cpu_s_per_step"]) if r["cpu_s_per_step"] and e["cpu_s_per_step"]
           else None,
           "engine_precision": eng.precision}
    if compile:
        row["engine_warmup_with_compile_s"] = compile_s
    return row


def ensemble_ratios(cases: list[dict]) -> dict:
    """For each pair with FKD cases at E = 1 and E > 1: every E's seconds per epoch over E = 1's (engine, reference)."""
    series: dict[str, dict[int, dict]] = {}
    for c in cases:
        if c["method"] != "none":
            series.setdefault(f"{c['teacher']} -> {c['student']}", {})[c["E"]] = c
    out = {}
    for pair, by_E in series.items():
        if 1 not in by_E or len(by_E) < 2:
            continue
        base = by_E[1]
        out[pair] = {str(E): {side: c[side]["s_per_epoch"] / base[side]["s_per_epoch"]
                              for side in ("engine", "reference")} for E, c in sorted(by_E.items())}
    return out


def teacher_sharing(cases: list[dict]) -> dict:
    """What computing the teachers once per batch for a whole ensemble-size grid would save, from the engine's
    timings: per series with E = 1 and E = 8, a teacher costs ``c_t = (s_8 - s_1) / 7`` per epoch and the rest
    of a step ``c_s = s_1 - c_t``. One seed of the grid (a KD and an FKD student at E = 1, 2, 4, 8, all on
    that seed's batches) costs ``8 c_s + 30 c_t`` with a teacher pass per student, ``8 c_s + 8 c_t`` with
    each teacher's outputs computed once and shared."""
    out = {}
    for pair, by_E in ensemble_ratios(cases).items():
        if "8" not in by_E:
            continue
        s1 = next(c["engine"]["s_per_epoch"] for c in cases if c["E"] == 1 and f"{c['teacher']} -> {c['student']}" == pair)
        c_t = (by_E["8"]["engine"] - 1) * s1 / 7
        c_s = s1 - c_t
        separate, shared = 8 * c_s + 30 * c_t, 8 * c_s + 8 * c_t
        out[pair] = {"teacher_s_per_epoch": c_t, "rest_s_per_epoch": c_s, "grid_seed_separate_s_per_epoch": separate,
                     "grid_seed_shared_s_per_epoch": shared, "saving_fraction": 1 - shared / separate}
    return out


def markdown_table(record: dict) -> str:
    """The record's cases as the table BENCHMARKS.md shows."""
    lines = ["| case | reference s/epoch | reference img/s | engine s/epoch | engine img/s | speedup |",
             "|---|---:|---:|---:|---:|---:|"]
    for c in record["cases"]:
        r, e = c["reference"], c["engine"]
        lines.append(f"| {c['name']} | {r['s_per_epoch']:.1f} | {r['images_per_s']:.0f} | {e['s_per_epoch']:.1f} | "
                     f"{e['images_per_s']:.0f} | {c['speedup']:.2f}x |")
    for pair, by_E in record["ensemble_ratios"].items():
        lines.append("")
        lines.append(f"Ensemble {pair}, seconds per epoch relative to E = 1: " + ", ".join(
            f"E = {E}: engine {v['engine']:.2f}x, reference {v['reference']:.2f}x" for E, v in by_E.items()))
    return "\n".join(lines)


def _cmdline(pid) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def _others_running() -> list[str]:
    """Other heavy Python processes on this machine (timings taken beside them are distorted): fkdlib's training
    commands and the worker processes they spawned (whose own command line names only ``multiprocessing``)."""
    found = []
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        cmd = _cmdline(pid)
        if "multiprocessing.spawn" in cmd:
            try:
                parent = next(line.split()[1] for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                              if line.startswith("PPid:"))
            except (OSError, StopIteration):
                continue
            if any(k in _cmdline(parent) for k in ("fkdlib experiment", "fkdlib train", "fkdlib distill")):
                found.append(f"{cmd} (worker of {_cmdline(parent)})")
        elif "fkdlib experiment" in cmd or "fkdlib train" in cmd or "fkdlib distill" in cmd:
            found.append(cmd)
    return found


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", choices=sorted(SIZES), default="cpu")
    ap.add_argument("--device", default=None, help="cuda, mps or cpu (default: the best available)")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: the size's, cpu: 2)")
    ap.add_argument("--steps", type=int, default=None, help="timed steps per round (default: the size's)")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--precision", default="auto", choices=amp.PRECISIONS, help="the engine's (default: auto)")
    ap.add_argument("--no-fold", action="store_true", help="run the engine's teachers unfolded")
    ap.add_argument("--compile", action="store_true", help="torch.compile the engine's networks (opt-in)")
    ap.add_argument("--only", default=None, help="run only the cases whose name contains this text")
    ap.add_argument("--out", default=None, help="JSON path (default: results/benchmarks/<device>-<date>.json)")
    ap.add_argument("--table", metavar="JSON", help="print the table of a benchmark JSON and exit")
    args = ap.parse_args(argv)
    if args.table:
        record = json.loads(Path(args.table).read_text())
        print(markdown_table(record))
        return record

    cfg = dict(SIZES[args.size])
    for k in ("threads", "steps", "rounds"):
        if getattr(args, k) is not None:
            cfg[k] = getattr(args, k)
    device = get_device(args.device)
    if cfg["threads"] and device.type == "cpu":
        torch.set_num_threads(cfg["threads"])
    g = torch.Generator().manual_seed(0)
    n = cfg["batch"] * (cfg["warmup"] + cfg["rounds"] * cfg["steps"] + 2)  # no epoch boundary while timing
    X = torch.randint(0, 256, (n, 3, cfg["image"], cfg["image"]), dtype=torch.uint8, generator=g)
    y = torch.randint(0, cfg["classes"], (n,), generator=g)
    others_before = _others_running()

    cases = []
    for name, method, teacher, student, E in cfg["cases"]:
        if args.only and args.only not in name:
            continue
        row = run_case(name, method, teacher, student, E, cfg, (X, y), device, args.precision,
                       not args.no_fold, args.compile)
        cases.append(row)
        print(f"{name:38s} reference {row['reference']['s_per_epoch']:8.1f} s/epoch "
              f"{row['reference']['images_per_s']:8.0f} img/s | engine {row['engine']['s_per_epoch']:8.1f} s/epoch "
              f"{row['engine']['images_per_s']:8.0f} img/s | {row['speedup']:.2f}x", flush=True)
    ratios = ensemble_ratios(cases)
    for pair, by_E in ratios.items():
        print(f"ensemble {pair}: " + ", ".join(f"E={E} {v['engine']:.2f}x E=1 (reference {v['reference']:.2f}x)"
                                               for E, v in by_E.items()))
    others = sorted(set(others_before) | set(_others_running()))
    prov = provenance(config={"size": args.size, **{k: v for k, v in cfg.items() if k != "cases"}}, device=device)
    record = {
        "benchmark": "engine vs RepDistiller-style loop",
        "size": args.size,
        "device_type": device.type,
        "device": describe_device(device),
        "cpu_model": cpu_model(),
        "gpu_model": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "threads": torch.get_num_threads(),
        "torch_version": torch.__version__,
        "torchvision_version": torchvision.__version__,
        "python_version": platform.python_version(),
        "date_utc": prov["time_utc"],
        "git_commit": prov["git_commit"],
        "git_dirty": prov["git_dirty"],
        "settings": {"batch": cfg["batch"], "image": cfg["image"], "classes": cfg["classes"], "steps": cfg["steps"],
                     "warmup": cfg["warmup"], "rounds": cfg["rounds"], "reference_workers": cfg["workers"],
                     "epoch_images": EPOCH_IMAGES, "engine_precision": args.precision,
                     "engine_fold_teachers": not args.no_fold, "engine_compile": args.compile},
        "other_training_processes": others,
        "cases": cases,
        "ensemble_ratios": ratios,
        "teacher_sharing_estimate": teacher_sharing(cases),
    }
    out = Path(args.out) if args.out else (
        ROOT / "results" / "benchmarks" / f"{device.type}-{dt.date.today().isoformat()}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1) + "\n")
    print(markdown_table(record))
    print(f"wrote {out}")
    return record


if __name__ == "__main__":
    main()
