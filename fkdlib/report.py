"""The README's results section, generated from the committed summary files (never typed by hand)."""
from __future__ import annotations

import re
from pathlib import Path

from . import paper
from .experiments import experiment_dir
from .paths import REPO_ROOT
from .results import load_result
from .viz import METHOD_LABELS

START, END = "<!-- results:start -->", "<!-- results:end -->"


def results_markdown(scale: str = "lite") -> str:
    """A markdown table per experiment whose summary exists at ``scale``, with the paper's numbers as reference."""
    parts = []
    path = experiment_dir("method_comparison", scale) / "summary.json"
    if path.exists():
        rec = load_result(path)
        s, prov = rec["result"], rec["provenance"]
        col = paper.METHOD_COMPARISON["pairs"].index("vgg13 -> vgg8")
        rows = [f"| method | ours: {s['teacher']} -> {s['student']}, {s['data']} ({scale}) | "
                f"paper (reference only): vgg13 -> vgg8, CIFAR-100 |", "|---|---|---|",
                f"| teacher | {s['teacher_test_acc']:.2f} | {paper.METHOD_COMPARISON['rows']['teacher*'][col]:.2f} |"]
        for m, r in s["methods"].items():
            key = m if m in paper.METHOD_COMPARISON["rows"] else f"{m}*"
            ref = paper.METHOD_COMPARISON["rows"].get(key, [None] * 4)[col]
            rows.append(f"| {METHOD_LABELS.get(m, m)} | {r['mean']:.2f} ± {r['ci95']:.2f} (n={r['n']}) | "
                        f"{'' if ref is None else f'{ref:.2f}'} |")
        parts.append("### Method comparison (notebook 04)\n\n" + "\n".join(rows) + "\n\n"
                     f"Test accuracy (%), mean ± 95% CI over seeds. From `{path.relative_to(REPO_ROOT)}` "
                     f"(commit {prov['git_commit'][:8]}, {prov['device']}, {prov['time_utc']}).")
    if not parts:
        return "_No committed results yet: run `python -m fkdlib experiment method_comparison --scale lite`._"
    return "\n\n".join(parts)


def update_readme(readme: Path = REPO_ROOT / "README.md", scale: str = "lite") -> Path:
    """Rewrite the text between the results markers of ``readme``; the rest of the file is left alone."""
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme} has no {START} ... {END} block to fill")
    block = f"{START}\n{results_markdown(scale)}\n{END}"
    readme.write_text(re.sub(re.escape(START) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S))
    return readme
