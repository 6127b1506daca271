"""Numbers in a notebook's prose must come from its outputs: ``unsourced(nb)`` lists those that do not.

A measured number that markdown states (a decimal such as ``0.42`` or a percentage such as ``66%``) must be shown by
a code cell above it: in its source (a setting the cell passes) or in its outputs (printed, or rendered from the
results files), possibly with more digits (``73.84`` shows ``73.8``). Numbers in a sentence that names the paper
(``paper``, ``He & Ozay``, ``published``) are the paper's and are exempt; so are a confidence level (``95% interval``)
and numbers inside maths (``$...$``) and code spans, which state formulas and settings rather than results. The title
cell's durations (how long the notebook takes, summed from its runs' records before any cell runs) are exempt too. From the shell::

    python tools/prose_numbers.py notebooks/*.ipynb     # one line per unsourced number; exits 1 if there is one

A development tool (it needs nbformat, from the dev extra), so it lives outside the runtime package.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import nbformat

NUMBER = re.compile(r"(?<![\w.,])[-−+]?(\d+(?:,\d{3})*(?:\.\d+)?)(%|\b)(?![.,]?\d)")
PAPER = re.compile(r"\bpaper|He (?:&|and) Ozay|\bpublished\b", re.IGNORECASE)
CONVENTION = re.compile(r"\s*(?:confidence|interval|CI)\b")  # "95% interval": a convention, not a result
DURATION = re.compile(r"\s*(?:s|seconds?|min|minutes?|h|hours?)\b")
_MATH_OR_CODE = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$|```.*?```|`[^`\n]+`|\]\([^)]*\)|<[^>\n]+>", re.DOTALL)
_SENTENCE_END = re.compile(r"(?<=[.!?:;])\s+(?=[A-Z(*\"'])|\n\s*\n|\n(?=\s*(?:[-*]|\d+\.|#|\|))")
_SHOWN_NUMBER = re.compile(r"\d+(?:,\d{3})*(?:\.\d+)?(?:e[-+]?\d+)?", re.IGNORECASE)


def _claims(text: str, durations: bool = True) -> list[tuple[str, str]]:
    """(number as written, its sentence) for each decimal or percentage in prose outside maths, code and links
    (without durations such as ``2.3 hours`` if not ``durations``)."""
    prose = _MATH_OR_CODE.sub(" ", text)
    found = []
    for sentence in _SENTENCE_END.split(prose):
        if PAPER.search(sentence):
            continue
        for m in NUMBER.finditer(sentence):
            digits, percent = m.groups()
            if not durations and DURATION.match(sentence, m.end()):
                continue
            if ("." in digits or percent) and not CONVENTION.match(sentence, m.end()):
                found.append((digits + percent, " ".join(sentence.split())))
    return found


def _shown_text(cell) -> str:
    texts = [cell.source]
    for out in cell.get("outputs", []):
        if "text" in out:
            texts.append("".join(out["text"]))
        for mime, value in out.get("data", {}).items():
            if mime.startswith("text/"):
                texts.append("".join(value))
    return "\n".join(texts)


def _decimals(s: str) -> int:
    return len(s.partition(".")[2])


def _shows(shown: set[str], claim: str) -> bool:
    """Whether ``claim`` (``73.8``, ``66%``, ``2,500``) is among the shown numbers, up to rounding."""
    digits = claim.rstrip("%").replace(",", "")
    want, places = float(digits), _decimals(digits)
    for s in shown:
        try:
            value = float(s.replace(",", ""))
        except ValueError:
            continue
        if round(value, places) == want or (places == 0 and round(value) == want):
            return True
        if claim.endswith("%") and round(100 * value, places) == want:  # a fraction printed, a percentage stated
            return True
    return False


def unsourced(nb: nbformat.NotebookNode) -> list[tuple[int, str, str]]:
    """(cell index, number, sentence) for each number in markdown that no code cell above shows."""
    shown: set[str] = set()
    missing = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            shown.update(_SHOWN_NUMBER.findall(_shown_text(cell)))
        elif cell.cell_type == "markdown":
            missing += [(i, number, sentence) for number, sentence in _claims(cell.source, durations=i > 0)
                        if not _shows(shown, number)]
    return missing


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="+", type=Path)
    args = parser.parse_args(argv)
    bad = 0
    for path in args.notebooks:
        for i, number, sentence in unsourced(nbformat.read(path, 4)):
            bad += 1
            print(f"{path.name} cell {i}: {number} — {sentence[:160]}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
