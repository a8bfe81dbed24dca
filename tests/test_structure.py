"""The package's import graph reads top-down like the method: no module imports one from a
higher layer, and there is no circle (imports inside functions count too)."""

import ast

from .conftest import ROOT

PACKAGE = ROOT / "src" / "smoothadv"
LAYERS = [  # lowest first; a unit may import units of its own layer or below
    {"errors", "constants", "registry"},
    {"stats", "sequences", "noise", "records", "distributed"},
    {"data"},
    {"models"},
    {"smoothing"},
    {"certification", "attacks", "compile", "evaluate", "soft_labels", "denoise"},
    {"methods", "analysis", "compare"},
    {"train"},
    {"demo", "recipes", "examples"},
    {"cli"},
]
FACADES = {"__init__", "__main__"}  # the package's front door may import anything


def _units() -> set[str]:
    return {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}


def import_graph() -> dict[str, set[str]]:
    """{unit: units it imports} over the top-level modules and subpackages."""
    units = _units()
    edges: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        package = parts[:-1]
        unit = parts[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = []
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - (node.level - 1)]
                if node.module:
                    targets = [base + node.module.split(".")]
                else:
                    targets = [base + [alias.name] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("smoothadv"):
                targets = [node.module.split(".")[1:]]
            elif isinstance(node, ast.Import):
                targets = [a.name.split(".")[1:] for a in node.names
                           if a.name.startswith("smoothadv.")]
            for target in targets:
                first = target[0] if target and target[0] in units else "__init__"
                if first != unit:
                    edges.setdefault(unit, set()).add(first)
    return edges


def test_every_unit_has_a_layer():
    assert _units() - FACADES - {"__main__"} == set().union(*LAYERS)


def test_no_import_runs_back_up():
    layer = {u: i for i, group in enumerate(LAYERS) for u in group}
    wrong = [(a, b) for a, targets in import_graph().items() if a not in FACADES
             for b in targets if b not in FACADES and layer[b] > layer[a]]
    # cli may read the version from the package's front door; nothing else may
    assert wrong == [], wrong
    assert all("__init__" not in t for a, t in import_graph().items() if a not in ("cli",)
               and a not in FACADES)


def test_no_circle():
    graph = {a: {b for b in t if b not in FACADES} for a, t in import_graph().items()
             if a not in FACADES}
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                raise AssertionError(f"import circle: {' → '.join(path + [nxt])}")
            if nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [node])


def test_no_module_below_cli_imports_it():
    assert all("cli" not in targets for unit, targets in import_graph().items()
               if unit not in ("cli", "__main__"))
