"""The package's import graph reads top-down like the method: no module imports one from a
higher layer, and there is no circle, between top-level units nor between files (inside
packages too; imports inside functions count)."""

import ast
import importlib
import re
import warnings

from .conftest import ROOT

PACKAGE = ROOT / "src" / "smoothadv"
ARCHITECTURE = ROOT / "docs" / "architecture.md"


def documented_layers() -> list[set[str]]:
    """The layers of docs/architecture.md's table, lowest first."""
    rows = re.findall(r"^\| (\d+) \| `(\w+)` \|", ARCHITECTURE.read_text(encoding="utf-8"),
                      flags=re.M)
    layers: list[set[str]] = [set() for _ in range(max(int(n) for n, _ in rows) + 1)]
    for n, name in rows:
        layers[int(n)].add(name)
    return layers


LAYERS = documented_layers()  # lowest first; a unit may import units of its own layer or below
FACADES = {"__init__", "__main__", "_moved"}  # the package's front door may import anything


def _units() -> set[str]:
    return {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
            if (p.suffix == ".py" or (p.is_dir() and (p / "__init__.py").exists()))}


def _files() -> dict[str, object]:
    """{dotted module name below the package ('train.loop', 'models.__init__'): path}."""
    return {".".join(p.relative_to(PACKAGE).with_suffix("").parts): p
            for p in PACKAGE.rglob("*.py")}


def _targets(module: str, tree: ast.AST) -> list[list[str]]:
    """Every name an import in ``tree`` reaches, as parts below the package (``from .x
    import y`` gives x.y, which may be a module or a name in x)."""
    package = module.split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            base = base + node.module.split(".") if node.module else base
            out += [base + [a.name] for a in node.names]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("smoothadv"):
            base = node.module.split(".")[1:]
            out += [base + [a.name] for a in node.names]
        elif isinstance(node, ast.Import):
            out += [a.name.split(".")[1:] for a in node.names if a.name.startswith("smoothadv.")]
    return out


def file_graph() -> dict[str, set[str]]:
    """{file: files it imports}: a target names a module file, else a package's
    ``__init__``, else a name inside the longest module prefix."""
    files = _files()

    def resolve(parts: list[str]) -> str:
        while parts:
            name = ".".join(parts)
            if name in files:
                return name
            if name + ".__init__" in files:
                return name + ".__init__"
            parts = parts[:-1]
        return "__init__"

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        for target in _targets(module, ast.parse(path.read_text(encoding="utf-8"))):
            found = resolve(list(target))
            if found != module:
                graph.setdefault(module, set()).add(found)
    return graph


def import_graph() -> dict[str, set[str]]:
    """{unit: units it imports} over the top-level modules and subpackages."""
    units = _units()
    edges: dict[str, set[str]] = {}
    for module, targets in file_graph().items():
        unit = module.split(".")[0]
        for target in targets:
            first = target.split(".")[0]
            first = first if first in units else "__init__"
            if first != unit:
                edges.setdefault(unit, set()).add(first)
    return edges


def find_circle(graph: dict[str, set[str]]) -> list[str] | None:
    """A circle of ``graph`` as a path that ends where it starts, or None."""
    state: dict[str, int] = {}

    def visit(node, path):
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path + [nxt]
            if nxt not in state:
                found = visit(nxt, path + [nxt])
                if found:
                    return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            found = visit(node, [node])
            if found:
                return found
    return None


def test_every_unit_has_a_layer():
    assert _units() - FACADES - {"__main__"} == set().union(*LAYERS)


def test_no_import_runs_back_up():
    layer = {u: i for i, group in enumerate(LAYERS) for u in group}
    wrong = [(a, b) for a, targets in import_graph().items() if a not in FACADES
             for b in targets if b not in FACADES and layer[b] > layer[a]]
    assert wrong == [], wrong
    # only the command line may read the version from the package's front door
    assert all("__init__" not in t for a, t in import_graph().items() if a not in ("cli",)
               and a not in FACADES)


def test_no_circle_between_units():
    graph = {a: {b for b in t if b not in FACADES} for a, t in import_graph().items()
             if a not in FACADES}
    assert find_circle(graph) is None, " → ".join(find_circle(graph))


def test_no_circle_between_files():
    graph = {a: {b for b in t if b not in ("__init__", "__main__")}
             for a, t in file_graph().items() if a not in ("__init__", "__main__")}
    circle = find_circle(graph)
    assert circle is None, "import circle: " + " → ".join(circle)


def test_the_circle_finder_finds_circles():
    assert find_circle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_circle({"a": {"b"}, "b": {"c"}}) is None


def test_no_module_below_cli_imports_it():
    assert all("cli" not in targets for unit, targets in import_graph().items()
               if unit not in ("cli", "__main__"))


def test_at_most_eight_modules_stand_at_the_top():
    top = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert len(top) <= 8, top
    assert set(top) == FACADES | {"errors", "registry", "configs"}


def test_every_package_says_what_it_owns_and_may_import():
    for group in LAYERS:
        for unit in group:
            path = PACKAGE / unit / "__init__.py"
            path = path if path.exists() else PACKAGE / f"{unit}.py"
            doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8")))
            assert doc and len(doc) > 40, f"{unit} has no docstring that says what it owns"


def _resolve(dotted: str):
    """The object a dotted name below the package names (modules, then attributes)."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module("smoothadv." + ".".join(parts[:i]))
        except ImportError:
            continue
        for name in parts[i:]:
            obj = getattr(obj, name)
        return obj
    raise ImportError(dotted)


def test_the_architecture_page_names_only_what_exists():
    text = ARCHITECTURE.read_text(encoding="utf-8")
    units = set().union(*LAYERS)
    cited = set(re.findall(r"`((\w+)\.[\w.]+)`", text))
    assert len(cited) >= 8
    for dotted, head in cited:
        if head in units and not dotted.endswith((".py", ".md", ".toml")):
            assert _resolve(dotted) is not None, dotted
    assert _resolve("smoothing.Smooth.soft_forward")
    for path in set(re.findall(r"`(\w+/\w+\.py)`", text)):
        assert (PACKAGE / path).exists() or (ROOT / path).exists(), path
    for file in re.findall(r"`(\w+\.py)`", text):
        assert (PACKAGE / file).exists(), file


def test_the_moved_paths_still_import_as_the_new_modules():
    from smoothadv._moved import CERTIFICATION, MOVED

    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    for old, new in MOVED.items():
        assert f"smoothadv.{old}" in changelog or f".{old.split('.')[-1]}" in changelog, old
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            module = importlib.import_module(f"smoothadv.{old}")
        assert module is importlib.import_module(f"smoothadv.{new}")
        assert not caught or issubclass(caught[0].category, DeprecationWarning)
    cert = importlib.import_module("smoothadv.certification")
    for name, where in CERTIFICATION.items():
        assert getattr(cert, name) is getattr(importlib.import_module(f"smoothadv.{where}"), name)
    # the packages that replaced modules of the same name still give those modules' names
    from smoothadv.analysis import summarize
    from smoothadv.attacks import create_attack
    from smoothadv.data import create_dataset
    from smoothadv.records import check_record_target
    from smoothadv.smoothing import Smooth, make_generator

    assert all(callable(f) for f in (summarize, create_attack, create_dataset, check_record_target,
                                     Smooth, make_generator))
