"""The README's results section, generated from the committed summary files (never typed by hand)."""
from __future__ import annotations

import re
from pathlib import Path

from ..distill.methods import label as _label, weights_label
from ..paths import REPO_ROOT
from ..records import experiment_dir, load_result
from ..stats import interval
from . import paper


START, END = "<!-- results:start -->", "<!-- results:end -->"


def results_markdown(scale: str = "lite") -> str:
    """A markdown table per experiment whose summary exists at ``scale``, with the paper's numbers as reference."""
    parts = [table(load_result(path), path) for name, table in
             [("method_comparison", _method_comparison), ("ensemble_size", _ensemble_size),
              ("cross_dataset", _cross_dataset)]
             if (path := experiment_dir(name, scale) / "summary.json").exists()]
    if not parts:
        return "_No committed results yet: run `python -m fkdlib experiment method_comparison --scale lite`._"
    return "\n\n".join(parts)


def _cell(r: dict) -> str:
    ci = "n/a" if r["ci95"] is None else f"{r['ci95']:.2f}"   # one seed: no interval (null in the file)
    return f"{r['mean']:.2f} ± {ci} (n={r['n']})"


def _source(path: Path, prov: dict) -> str:
    return (f"From `{path.relative_to(REPO_ROOT)}` (commit {prov['git_commit'][:8]}, {prov['device']}, "
            f"{prov['time_utc']}).")


def _method_comparison(rec: dict, path: Path) -> str:
    s = rec["result"]
    col = paper.METHOD_COMPARISON["pairs"].index("vgg13 -> vgg8")
    rows = [f"| method | weights chosen on validation | ours: {s['teacher']} -> {s['student']}, {s['data']} | "
            f"paper (reference only): vgg13 -> vgg8, CIFAR-100 |", "|---|---|---|---|",
            f"| teacher | | {s['teacher_test_acc']:.2f} | {paper.METHOD_COMPARISON['rows']['teacher*'][col]:.2f} |"]
    order = s.get("order", {})
    for m in order.get("methods", s["methods"]):
        r = s["methods"][m]
        key = m if m in paper.METHOD_COMPARISON["rows"] else f"{m}*"
        ref = paper.METHOD_COMPARISON["rows"].get(key, [None] * 4)[col]
        weights = weights_label(r["method"]) if "method" in r else ""
        rows.append(f"| {_label(m)} | {weights} | {_cell(r)} | {'' if ref is None else f'{ref:.2f}'} |")
    text = ("### Method comparison (notebook 04)\n\n" + "\n".join(rows) + "\n\n"
            "Test accuracy (%), mean ± 95% CI (Student t) over seeds. " + _source(path, rec["provenance"]))
    if s.get("paired"):
        text += ("\n\nSeed s gives every method the same initial weights and batches, so methods are compared within "
                 "a seed:\n\n" + _paired_table(s))
    return text


def _paired_table(s: dict) -> str:
    """The summary's paired differences (``"a - b"``), in its order, with what each interval shows."""
    diffs = ["| paired difference | mean [95% CI], points | what it shows |", "|---|---|---|"]
    for name in s.get("order", {}).get("paired", s["paired"]):
        d = s["paired"][name]
        a, b = name.split(" - ")
        lo, hi = interval(d)
        call = "better" if lo > 0 else "worse" if hi < 0 else "no difference shown"
        diffs.append(f"| {_label(a)} − {_label(b)} | {d['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}] (n={d['n']}) | {call} |")
    return "\n".join(diffs)


def _ensemble_size(rec: dict, path: Path) -> str:
    s, ref = rec["result"], paper.ENSEMBLE_SIZE
    rows = ["| E | ours: teacher ensemble | ours: KD | ours: FKD (mean of kernels) | ours: FKD (concat, ours) | "
            "paper (reference only): teacher ensemble | paper: KD | paper: FKD |", "|---|---|---|---|---|---|---|---|"]
    for i, E in enumerate(s["E"]):
        j = ref["E"].index(E) if E in ref["E"] else None
        paper_cols = " | ".join("" if j is None else f"{ref[k][j]:.2f}" for k in ("teacher_ensemble", "kd", "fkd"))
        ours = " | ".join(_cell(s["rows"][k]) if k in s["rows"] else "" for k in
                          (f"kd E={E}", f"fkd E={E}", f"fkd-concat E={E}"))
        ens = s["teacher_ensemble"][i] if s.get("teacher_ensemble") else float("nan")
        rows.append(f"| {E} | {ens:.2f} | {ours} | {paper_cols} |")
    none = _cell(s["rows"]["none"]) if "none" in s["rows"] else "pending"
    text = (f"### Ensemble size (notebook 05)\n\nOurs: {s['arch']} teachers and students, {s.get('data', '')}, every "
            f"teacher trained like the students on their {s['num_train']:,} images; the paper: vgg8, CIFAR-100 "
            f"(values read off its figure). No distillation: ours {none}, the paper {ref['none']:.2f}.\n\n"
            + "\n".join(rows) + "\n\nTest accuracy (%), mean ± 95% CI over seeds. " + _source(path, rec["provenance"]))
    if s.get("paired"):
        text += "\n\n" + _paired_table(s)
    return text


def _cross_dataset(rec: dict, path: Path) -> str:
    s = rec["result"]
    rows = ["| method | chosen on validation: weights, lr | ours: test accuracy |", "|---|---|---|"]
    for m in s.get("order", {}).get("methods", s["methods"]):
        r = s["methods"][m]
        rows.append(f"| {_label(m)} | {weights_label(r['method'])} | {_cell(r)} |")
    text = (f"### Cross-dataset transfer (notebook 06)\n\nOurs: a {s['teacher']} teacher on "
            f"{', '.join(map(str, s['teacher_classes']))} ({s['teacher_test_acc']:.2f}%), {s['student']} students on "
            f"{', '.join(map(str, s['student_classes']))}, {s['data']}; weights and learning rate chosen on "
            f"{s['val_size']:,} validation images. The paper (vgg13 on CIFAR-100 -> vgg8 on CIFAR-10 / STL-10 / "
            "Tiny-ImageNet) published no numbers we know of.\n\n" + "\n".join(rows) + "\n\n"
            "Test accuracy (%) of the students' classes, mean ± 95% CI over seeds. " + _source(path, rec["provenance"]))
    if s.get("paired"):
        text += "\n\n" + _paired_table(s)
    return text


def demo_summary(root: str | Path, scale: str = "lite") -> str:
    """What ``make demo`` showed, in a few lines, from the results it wrote under ``root/results`` (notebook 00's
    quickstart and notebook 02's multi-view theory), and where its figures and executed notebooks are."""
    root = Path(root)
    lines = [f"make demo ({scale} scale, built-in synthetic data):"]
    quick = root / "results" / "quickstart" / f"{scale}.json"
    if quick.exists():
        q = load_result(quick)["result"]
        st = q["students"]
        lines.append(f"- notebook 00, FKD in one page: teacher {100 * q['teacher_test_accuracy']:.1f}% test; kernel alignment "
                     f"with the teacher from {st['plain']['alignment_start']:.2f} at the start to "
                     f"{st['plain']['alignment_end']:.2f} for the plain student and {st['FKD']['alignment_end']:.2f} for the "
                     f"FKD student; test accuracy plain {100 * st['plain']['test_accuracy']:.1f}%, "
                     f"FKD {100 * st['FKD']['test_accuracy']:.1f}%.")
    theory = root / "results" / "theory" / f"{scale}.json"
    if theory.exists():
        t = load_result(theory)["result"]["fkd_vs_E"]
        es = [k for k in t if k.startswith("E=")]
        accs = ", ".join(f"{k} {100 * t[k]['mean']:.1f}%" for k in es)
        lines.append(f"- notebook 02, the multi-view theory: single-view test accuracy of students distilled from E "
                     f"teachers: {accs} (the theorem's ideal: " + ", ".join(f"{100 * t[k]['theorem']:.1f}%" for k in es)
                     + (f"; a student trained alone {100 * t['plain']['mean']:.1f}%" if "plain" in t else "") + ").")
    figures = sorted((root / "figures").glob("*.png"))
    lines.append(f"- {len(figures)} figures in {root / 'figures'}, the executed notebooks in {root}, their records "
                 f"in {root / 'results'}.")
    return "\n".join(lines)


def update_readme(readme: Path = REPO_ROOT / "README.md", scale: str = "lite") -> Path:
    """Rewrite the text between the results markers of ``readme``; the rest of the file is left alone."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} block to fill")
    block = f"{START}\n{results_markdown(scale)}\n{END}"
    readme.write_text(re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S))
    return readme
