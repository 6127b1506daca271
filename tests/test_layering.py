"""The shape of the house: fkdlib's modules import each other without a circle, and only downwards.

Every module of fkdlib is parsed with ``ast``; each ``import`` and ``from ... import`` names an edge to the fkdlib
module it loads (a submodule where the name is one, else the package's ``__init__``), wherever it stands: at the
top of the file or inside a function (an import deferred into a function to dodge a circle is still a circle).
Loading a submodule also runs its packages' ``__init__`` files, but Python has always started those first, so
that implied edge is not counted. Imports by string (``importlib.import_module`` in the grid runner) are not seen.

The layers, lowest first; a module may import its own layer and the layers below it, never one above:

    base          paths (where files live, the scales), device, stats, claims, the package's version
    parts         data, models, distill (and the aliases fkdlib.kernels, fkdlib.losses): the pipeline's pieces,
                  which know nothing of runs
    records       run records and summaries: written and read here (its cache reads files with
                  models.checkpoints' safe loader, so it sits above the parts)
    engine        the trainer and evaluation: data, models and a method in, a run record out
    theory        the multi-view simulation (its nets' training shows the engine's progress bar)
    experiments   sizes per scale, the grids, the catalog, the README report: they train through the engine and
                  run the theory's experiment
    viz           figures: they draw what the experiments and the theory wrote, and import only the parts
    entry         the command line (cli, __main__), which reaches everything
"""
from __future__ import annotations

import ast
from pathlib import Path

import fkdlib

PACKAGE = Path(fkdlib.__file__).parent

LAYERS = [
    ("base", {"fkdlib", "paths", "device", "stats", "claims"}),
    ("parts", {"data", "models", "distill", "kernels", "losses"}),
    ("records", {"records"}),
    ("engine", {"engine"}),
    ("theory", {"theory"}),
    ("experiments", {"experiments"}),
    ("viz", {"viz"}),
    ("entry", {"cli", "__main__"}),
]


def module_name(path: Path) -> str:
    """``fkdlib/experiments/config.py`` -> ``fkdlib.experiments.config``; a package's ``__init__`` is the package."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def targets(module: str, node: ast.Import | ast.ImportFrom) -> list[str]:
    """The fkdlib modules that the import statement ``node`` in ``module`` loads."""
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        if node.level:  # relative: from the module's package, up node.level - 1 packages
            package = module if MODULES[module].name == "__init__.py" else module.rpartition(".")[0]
            base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [node.module or ""])
            base = base.rstrip(".")
        else:
            base = node.module or ""
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names]
    out = []
    for name in names:
        while name and name not in MODULES:  # fkdlib.records.final -> fkdlib.records
            name = name.rpartition(".")[0]
        if name.startswith("fkdlib") and name != module:
            out.append(name)
    return out


def import_graph() -> dict[str, set[str]]:
    """``{module: {modules it imports}}`` over every fkdlib module, imports inside functions included."""
    graph = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                graph[module].update(targets(module, node))
    return graph


def layer(module: str) -> int:
    """The index in ``LAYERS`` of ``module`` (by its first name below fkdlib)."""
    top = module.split(".")[1] if "." in module else module
    found = [i for i, (_, members) in enumerate(LAYERS) if top in members]
    assert found, f"{module} is in no layer: add it to LAYERS in {__file__}"
    return found[0]


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph`` as a path that ends where it starts, or None (depth-first search)."""
    state, stack = {}, []

    def visit(m):
        state[m] = "open"
        stack.append(m)
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                return stack[stack.index(t):] + [t]
            if t not in state and (found := visit(t)):
                return found
        stack.pop()
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_the_graph_sees_every_kind_of_import():
    graph = import_graph()
    assert "fkdlib.experiments.catalog" in graph["fkdlib.cli"]            # inside a function
    assert "fkdlib.models.checkpoints" in graph["fkdlib.engine.train"]    # from ..models import checkpoints as _safe
    assert "fkdlib" in graph["fkdlib.records"]                            # from . import __version__
    assert "fkdlib.experiments.config" in graph["fkdlib.experiments.comparison"]   # from . import config
    assert {"fkdlib.data", "fkdlib.data.loader"} <= graph["fkdlib.engine.evaluate"]


def test_no_import_circle():
    found = cycle(import_graph())
    assert found is None, "import circle: " + " -> ".join(found)


def test_every_module_has_a_layer_and_imports_only_its_own_or_lower_layers():
    upward = [f"{m} ({LAYERS[layer(m)][0]}) imports {t} ({LAYERS[layer(t)][0]})"
              for m, ts in sorted(import_graph().items()) for t in sorted(ts) if layer(t) > layer(m)]
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_the_checks_catch_a_circle_and_an_upward_import():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": set()}) is None
    assert layer("fkdlib.theory.experiment") < layer("fkdlib.experiments.config")


def test_no_module_getattr():
    """A module ``__getattr__`` hides an import from this test (and from readers): names are imported plainly."""
    assert not [m for m, p in MODULES.items()
                if any(isinstance(n, ast.FunctionDef) and n.name == "__getattr__" for n in ast.parse(p.read_text()).body)]
