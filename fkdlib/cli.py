"""``python -m fkdlib``: train a teacher, distil a student, evaluate a saved model.

    python -m fkdlib train-teacher --model vgg13 --dataset cifar100 --preset paper --out runs/vgg13
    python -m fkdlib distill --model vgg8 --teacher runs/vgg13/model.pt --method fkd --dataset cifar100 --out runs/fkd
    python -m fkdlib evaluate --checkpoint runs/fkd/model.pt --dataset cifar100
    python -m fkdlib experiment method_comparison --scale lite
    python -m fkdlib resave runs/old/model.pt

Every run writes ``<out>/result.json`` (metrics and provenance) after each epoch, ``<out>/checkpoints/last.pt``
(``--resume`` continues from it) and ``<out>/model.pt`` at the end. Errors come back as one line.
Model files are read with ``weights_only=True`` (``fkdlib.models.checkpoints``): a file that could run code is refused
unless ``--trust-checkpoint`` is given; ``resave`` rewrites one you trust as plain data, once.
"""
from __future__ import annotations

import argparse
import json
import sys

from .distill.crd import NEGATIVES
from .distill.methods import METHODS, Method
from .engine.amp import PRECISIONS
from .engine.recipes import PRESETS
from .experiments.config import RECIPES, recipe as get_recipe
from .models import list_models
from .records import final_metrics, to_json


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="python -m fkdlib", description="Feature Kernel Distillation: train, distil, evaluate.")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    teacher = sub.add_parser("train-teacher", help="train a network with cross-entropy (a teacher or a plain student)")
    _add_common(teacher)

    distill = sub.add_parser("distill", help="distil a student from one or more frozen teachers")
    _add_common(distill)
    distill.add_argument("--teacher", action="append", required=True, metavar="PATH",
                         help="a teacher's model file (ours or a RepDistiller checkpoint); repeat for an ensemble")
    distill.add_argument("--teacher-arch", help="architecture of RepDistiller checkpoints (default: from the folder name)")
    distill.add_argument("--teacher-dataset", help="dataset the teachers were trained on, for RepDistiller checkpoints "
                                                    "(default cifar100)")
    distill.add_argument("--method", choices=METHODS, default="fkd", help="distillation method (default fkd)")
    defaults = ", ".join(f"{s.label} {s.lam_kd:g}" for s in METHODS.values() if s.needs_teacher)
    distill.add_argument("--lam-kd", type=float, help=f"weight of the distillation term (default per method: "
                                                      f"{defaults})")
    distill.add_argument("--lam-fr", type=float, default=0.01, help="FKD's feature-regulariser weight (default 0.01)")
    distill.add_argument("--negatives", type=int, default=NEGATIVES,
                         help=f"CRD's negatives per example, drawn among other classes (default {NEGATIVES})")
    distill.add_argument("--kd-data", help="dataset for the distillation term's own batches (e.g. stl10)")
    distill.add_argument("--kd-split", default="train", help="split of --kd-data (e.g. unlabeled; default train)")
    distill.add_argument("--kd-batch-size", type=int, help="batch size of the distillation term (STL-10 recipe: 512)")
    _add_trust(distill, "the --teacher files")

    ev = sub.add_parser("evaluate", help="test accuracy of a saved model")
    ev.add_argument("--checkpoint", required=True, metavar="PATH", help="a model file (ours or RepDistiller's)")
    ev.add_argument("--arch", help="architecture, for RepDistiller checkpoints")
    _add_data(ev)
    ev.add_argument("--split", default="test", help="split to evaluate on (default test)")
    ev.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    _add_trust(ev, "the --checkpoint file")
    exp = sub.add_parser("experiment", help="run (or resume) one of the paper's experiments as a grid of runs")
    from .experiments.catalog import EXPERIMENTS
    exp.add_argument("name", choices=list(EXPERIMENTS), help="which experiment")
    exp.add_argument("--scale", choices=["smoke", "lite", "full"], help="size (default $FKD_SCALE, else lite)")
    exp.add_argument("--data-dir", help="where the dataset lives (default $FKD_DATA_DIR or ./data)")
    exp.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    exp.add_argument("--quiet", action="store_true", help="no progress bars")
    exp.add_argument("--precision", choices=PRECISIONS, default="auto",
                     help="the networks' arithmetic (default auto: bf16 where native; fp32 is faster on CPUs whose bf16 "
                          "convolutions are slow)")
    exp.add_argument("--workers", type=int, metavar="N",
                     help="train N runs at once in local worker processes, sharing the cores or one GPU (default: one "
                          "after another in this process)")
    exp.add_argument("--ray", metavar="ADDRESS",
                     help="run each run as a Ray task: 'auto' starts or joins a local Ray, else a cluster's address "
                          "(pip install 'fkdlib[cluster]'; the results folder must be shared storage)")
    exp.add_argument("--runs-per-gpu", type=int, metavar="K",
                     help="with --ray on GPUs: pack K runs on each GPU (each asks for 1/K of one)")
    exp.add_argument("--set", action="append", default=[], metavar="SIZE=VALUE", dest="overrides",
                     help="override one of the experiment's sizes, VALUE as JSON (--set 'E=[1, 2]' --set seeds=[0]); "
                          "the runs go to a folder of their own, results/NAME/SCALE-<hash>/")
    resave = sub.add_parser("resave", help="rewrite model files as plain data that loads with weights_only=True")
    resave.add_argument("paths", nargs="+", metavar="PATH", help="model files or checkpoints, rewritten in place")
    _add_trust(resave, "these files")
    return p


def _overrides(pairs: list[str]) -> dict:
    """``["E=[1, 2]", "seeds=[0]"]`` -> ``{"E": [1, 2], "seeds": [0]}`` (a value that is not JSON stays a string)."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set wants SIZE=VALUE, got {pair!r}")
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out


def _add_trust(p, what):
    p.add_argument("--trust-checkpoint", action="store_true",
                   help=f"load {what} even if unpickling them could run code (only for files you trust; "
                        f"by default such a file is refused)")


def _add_data(p):
    p.add_argument("--dataset", required=True, help="cifar10, cifar100, stl10, tiny-imagenet, cifar10-jpeg or synthetic")
    p.add_argument("--data-dir", help="where the dataset lives (default $FKD_DATA_DIR or ./data)")
    p.add_argument("--download", action="store_true", help="download the dataset if it is missing (needs internet)")
    p.add_argument("--classes", help="train on these classes only, comma-separated names or indices")


def _add_common(p):
    p.add_argument("--model", required=True, choices=list_models(), metavar="MODEL",
                   help=f"architecture, one of: {', '.join(list_models())}")
    _add_data(p)
    p.add_argument("--out", required=True, help="run folder: result.json, checkpoints/, model.pt")
    p.add_argument("--preset", choices=[*PRESETS, *RECIPES], default="paper", help="training recipe (default paper)")
    p.add_argument("--epochs", type=int, help="override the preset's number of epochs")
    p.add_argument("--batch-size", type=int, help="override the preset's batch size")
    p.add_argument("--lr", type=float, help="override the preset's learning rate")
    p.add_argument("--milestones", type=lambda s: tuple(int(v) for v in s.split(",")),
                   help="override the epochs at which lr is decayed, e.g. 80,120")
    p.add_argument("--weight-decay", type=float, help="override the preset's weight decay")
    p.add_argument("--train-subset", type=int, help="train on N examples of a fixed shuffle (0: all)")
    p.add_argument("--test-subset", type=int, help="test each epoch on N examples of a fixed shuffle (0: all)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    p.add_argument("--overwrite", action="store_true", help="start again even if --out holds a run")
    p.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    p.add_argument("--precision", choices=PRECISIONS, default="auto",
                   help="the networks' arithmetic (default auto: bf16 where the device has it; see fkdlib.engine.amp)")
    p.add_argument("--compile", action="store_true", help="torch.compile the networks (opt-in; falls back to eager)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        summary = _run(args)
    except (ValueError, FileNotFoundError, FileExistsError, FloatingPointError, RuntimeError) as err:
        print(f"fkdlib {args.command}: error: {err}", file=sys.stderr)
        return 1
    print(to_json(summary, indent=1))
    return 0


def _run(args) -> dict:
    if args.command == "resave":
        from .models.checkpoints import resave
        return {"resaved": [resave(p, trust=args.trust_checkpoint) for p in args.paths]}
    from .data import load_train_test
    from .device import get_device
    from .models.teachers import load_teacher
    from .engine.evaluate import evaluate_accuracy
    from .engine.train import train

    device = get_device(args.device)
    if args.command == "experiment":
        from .experiments.catalog import EXPERIMENTS
        extra = {"precision": args.precision} if args.precision != "auto" else {}
        if args.workers:
            extra["workers"] = args.workers
        if args.ray:
            extra["ray"] = args.ray
            if args.runs_per_gpu:
                extra["resources"] = {"num_cpus": 1, "num_gpus": 1 / args.runs_per_gpu}
        extra.update(_overrides(args.overrides))
        return EXPERIMENTS[args.name](args.scale, data_root=args.data_dir, device=device,
                                      progress=False if args.quiet else None, **extra)
    classes = [int(c) if c.strip().isdigit() else c.strip() for c in args.classes.split(",")] if args.classes else None
    if args.command == "evaluate":
        from .data.loader import DeviceLoader
        t = load_teacher(args.checkpoint, arch=args.arch, num_classes=None, device=device, trust=args.trust_checkpoint)
        _, test = load_train_test(args.dataset, args.data_dir, args.download, classes=classes, test_split=args.split)
        loader = DeviceLoader(test.X, test.y, 512, train=False, mean=test.mean, std=test.std, device=device)
        return {"checkpoint": args.checkpoint, "dataset": test.label, "split": args.split,
                "accuracy": evaluate_accuracy(t.model, loader)}

    recipe = get_recipe(args.preset, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                        milestones=args.milestones, weight_decay=args.weight_decay, train_subset=args.train_subset,
                        test_subset=args.test_subset,
                        kd_batch_size=getattr(args, "kd_batch_size", None))
    method, teachers, kd_data = Method("none"), [], None
    if args.command == "distill":  # the teachers first: a file that is refused stops the run before any data load
        method = Method(args.method, lam_kd=args.lam_kd, lam_fr=args.lam_fr, negatives=args.negatives)
        teachers = [load_teacher(p, arch=args.teacher_arch, dataset=args.teacher_dataset, device=device,
                                 trust=args.trust_checkpoint) for p in args.teacher]
    train_d, test_d = load_train_test(args.dataset, args.data_dir, args.download, classes=classes)
    if getattr(args, "kd_data", None):
        from .data import load_dataset
        kd_data = load_dataset(args.kd_data, args.data_dir, split=args.kd_split, download=args.download)
    record = train(args.model, train_d, test_d, recipe, args.out, method=method, teachers=teachers, seed=args.seed,
                   resume=args.resume, overwrite=args.overwrite, kd_data=kd_data, device=device,
                   progress=False if args.quiet else None, precision=args.precision, compile=args.compile)
    return {"out": args.out, **{k: final_metrics(record).get(k) for k in ("epoch", "train_acc", "test_acc")}}
