"""Keep committed notebooks clean: their outputs stay (figures show on GitHub), volatile metadata goes.

``clean(nb)`` normalises one notebook; ``problems(path)`` says what keeps a committed one from being clean.
From the shell (``make clean-notebooks``; ``--check`` changes nothing and exits 1 on a problem)::

    python tools/notebook_hygiene.py [--check] [notebooks/NN_name.ipynb ...]

A development tool (it needs nbformat, from the dev extra), so it lives outside the runtime package.

Clean means: notebook metadata holds only the ``python3`` kernelspec and the language's name (no widget
state, no versions from someone's machine); cells keep only their ``tags``; live widgets are replaced by one
line of text (their state is not saved); no absolute path in an output; execution counts 1, 2, 3, ... from
one top-to-bottom run (or none at all); no error or stderr output; at most ``MAX_BYTES``; the Colab badge
points at the notebook's own path and the first code cell is ``COLAB_CELL``. Re-executing is never done here.
"""
from __future__ import annotations

import argparse
import copy
import re
import sys
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parent.parent

REPO, REF = "fkd-project/fkd", "main"   # where the repository is published: the badges and the Colab cell use it
MAX_BYTES = 2_000_000
KERNELSPEC = {"display_name": "Python 3", "language": "python", "name": "python3"}
WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = "(An interactive widget: it appears when the notebook runs with a live kernel; its state is not saved.)"
COLAB_CELL = f"""\
# On Colab: fetch the repository at the badge's branch and install fkdlib (Colab already has torch, matplotlib,
# seaborn, ipywidgets and tqdm), then report the GPU (fkdlib picks CUDA when there is one). Elsewhere: nothing.
# SAVE_TO_DRIVE keeps results/ (every run, its checkpoints, the committed runs copied once) on your Google Drive,
# so a grid cut off by a disconnect resumes where it stopped when you run the notebook again.
SAVE_TO_DRIVE = False  # @param {{type:"boolean"}}
import os, subprocess, sys
if "google.colab" in sys.modules:
    REPO_DIR = "/content/fkd"
    def sh(cmd, what):  # run cmd; if it fails, stop with git's or pip's own message, not just an exit status
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{{what}} failed (exit status {{done.returncode}}): {{' '.join(cmd)}}\\n"
                               f"{{(done.stderr or done.stdout).strip()}}")
    if not os.path.isdir(REPO_DIR):
        sh(["git", "clone", "--depth", "1", "--branch", "{REF}", "https://github.com/{REPO}", REPO_DIR],
           "fetching the repository")
    sh([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "-e", REPO_DIR], "installing fkdlib")
    sys.path.insert(0, REPO_DIR)
    os.chdir(os.path.join(REPO_DIR, "notebooks"))
    if SAVE_TO_DRIVE:
        import shutil
        from google.colab import drive
        drive.mount("/content/drive")
        os.environ["FKD_RESULTS_DIR"] = "/content/drive/MyDrive/fkd-results"
        shutil.copytree(os.path.join(REPO_DIR, "results"), os.environ["FKD_RESULTS_DIR"], dirs_exist_ok=True,
                        copy_function=lambda src, dst: os.path.exists(dst) or shutil.copy2(src, dst))
        print("results go to", os.environ["FKD_RESULTS_DIR"])
    import torch
    print("GPU:", torch.cuda.get_device_name(0) if torch.cuda.is_available()
          else "none (for the full scale: Runtime > Change runtime type > GPU)")"""
BADGE_URL = re.compile(r"https://colab\.research\.google\.com/github/[^)\s\"']+")
# an absolute path: /a/b... not preceded by a word, a dot, a colon (URLs) or another slash; or C:\...
ABS_PATH = re.compile(r"(?<![\w.~:/\\-])/(?:[\w.-]+/)+[\w.-]*|\b[A-Za-z]:\\\\?[\w.-]+")


def badge_url(path: str | Path) -> str:
    """The Open-in-Colab link of the notebook at ``path`` (repository-relative, e.g. ``notebooks/00_quickstart.ipynb``)."""
    return f"https://colab.research.google.com/github/{REPO}/blob/{REF}/{Path(path).as_posix()}"


def _repo_path(path: Path) -> Path:
    """``path`` relative to the repository; a notebook elsewhere (a test's copy) as if it were in notebooks/."""
    path = path.resolve()
    return path.relative_to(REPO_ROOT) if path.is_relative_to(REPO_ROOT) else Path("notebooks", path.name)


def _relative_paths(text: str) -> str:
    """Absolute paths of this machine made relative: the repository's to itself, its neighbours' to ``../``."""
    for prefix, short in ((REPO_ROOT, ""), (REPO_ROOT.parent, "../"), (Path.home(), "~/")):
        if prefix != Path(prefix.anchor):                      # never rewrite "/" itself
            text = text.replace(f"{prefix}/", short)
    return text


def _clean_output(out: dict) -> dict:
    if WIDGET_MIME in out.get("data", {}):
        out["data"] = {"text/plain": WIDGET_NOTE}
    if out["output_type"] == "stream":
        out["text"] = _relative_paths(out["text"])
    for mime, value in out.get("data", {}).items():
        if mime.startswith("text/") and isinstance(value, str):
            out["data"][mime] = _relative_paths(value)
    return out


def clean(nb: nbformat.NotebookNode, path: str | Path | None = None) -> nbformat.NotebookNode:
    """A normalised copy of ``nb``; with ``path`` (repository-relative) its Colab badge is pointed at that path."""
    nb = copy.deepcopy(nb)
    nb.metadata = nbformat.from_dict({"kernelspec": dict(KERNELSPEC), "language_info": {"name": "python"}})
    for cell in nb.cells:
        tags = cell.metadata.get("tags")
        cell.metadata = nbformat.from_dict({"tags": tags} if tags else {})
        if cell.cell_type == "code":
            cell.outputs = [_clean_output(out) for out in cell.outputs]
    if path is not None and nb.cells and nb.cells[0].cell_type == "markdown":
        nb.cells[0].source = BADGE_URL.sub(badge_url(path), nb.cells[0].source)
    code = [c for c in nb.cells if c.cell_type == "code"]
    if code and "google.colab" in code[0].source:
        code[0].source = COLAB_CELL
    return nb


def _differences(nb: nbformat.NotebookNode, cleaned: nbformat.NotebookNode) -> list[str]:
    """Which parts cleaning changes, in words: 'notebook metadata', 'metadata of cells 1, 3', ..."""
    found = ["notebook metadata"] if nb.metadata != cleaned.metadata else []
    for part in ("metadata", "source", "outputs"):
        cells = [str(i) for i, (a, b) in enumerate(zip(nb.cells, cleaned.cells)) if a.get(part) != b.get(part)]
        found += [f"{part} of cell{'s' if len(cells) > 1 else ''} {', '.join(cells)}"] if cells else []
    return found or ["the file's layout"]


def _text_of(out: dict) -> str:
    if out["output_type"] == "stream":
        return out["text"]
    if out["output_type"] == "error":
        return "\n".join(out["traceback"])
    return "\n".join(v for k, v in out.get("data", {}).items() if k.startswith("text/") and isinstance(v, str))


def problems(path: str | Path) -> list[str]:
    """What keeps the committed notebook at ``path`` from being clean (an empty list: it is clean)."""
    raw = Path(path).read_text(encoding="utf-8")
    nb = nbformat.reads(raw, as_version=4)
    rel = _repo_path(Path(path))
    found = []
    if len(raw.encode()) > MAX_BYTES:
        found.append(f"{len(raw.encode()) / 1e6:.2f} MB, more than {MAX_BYTES / 1e6:.0f} MB")
    if nbformat.writes(clean(nb, rel)) + "\n" != raw:
        found.append(f"not normalised ({', '.join(_differences(nb, clean(nb, rel)))}): run `make clean-notebooks`")
    code = [c for c in nb.cells if c.cell_type == "code"]
    counts = [c.execution_count for c in code]
    if any(counts) and counts != list(range(1, len(code) + 1)):
        found.append(f"execution counts {counts} are not one top-to-bottom run: re-execute it (`make notebooks`)")
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []):
            if out["output_type"] == "error" or out.get("name") == "stderr":
                found.append(f"cell {i} shows {out.get('ename') or 'output on stderr'}: {_text_of(out)[:200]!r}")
            for hit in ABS_PATH.findall(_text_of(out)):
                found.append(f"cell {i}: absolute path {hit!r} in an output")
    badges = BADGE_URL.findall(nb.cells[0].source) if nb.cells else []
    if badges != [badge_url(rel)]:
        found.append(f"the first cell needs one Colab badge linking to {badge_url(rel)}, not {badges}")
    if not code or code[0].source != COLAB_CELL:
        found.append("the first code cell is not tools/notebook_hygiene.py's COLAB_CELL")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if a notebook is not clean")
    args = parser.parse_args(argv)
    paths = args.paths or sorted((REPO_ROOT / "notebooks").glob("*.ipynb"))
    status = 0
    for path in paths:
        if not args.check:
            raw = path.read_text(encoding="utf-8")
            text = nbformat.writes(clean(nbformat.reads(raw, as_version=4), _repo_path(path))) + "\n"
            if text != raw:
                path.write_text(text, encoding="utf-8")
                print(f"cleaned {path}")
        for problem in problems(path):
            print(f"{path}: {problem}", file=sys.stderr)
            status = 1
    return status


if __name__ == "__main__":
    sys.exit(main())
