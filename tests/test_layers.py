"""The package's layers: the import graph of unet_zoo has no cycle, and lazy imports say why they are lazy.

The graph is read from the source with `ast` (every ``unet_zoo/**/*.py``, relative imports resolved), so it
covers module-level imports and imports inside functions alike, whether or not they have run.
Imports under ``if TYPE_CHECKING:`` are left out: they never run.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = "unet_zoo"
ROOT = Path(__file__).resolve().parent.parent / PACKAGE

# Function-local imports of the package's own modules that another piece of work still has to mark or move.
# Each entry is (importing module, imported module); keep this list short and empty it when you can.
PENDING_LAZY: set[tuple[str, str]] = set()

# The packages from the bottom up: a package imports packages of its own layer or below, never above.
LAYERS: list[set[str]] = [
    {"_version", "paper", "utils"},  # the version, the paper's facts, utilities
    {"runtime"},  # how models run fast here: precision, channels_last, compile, threads, the measured "auto"
    {"models"},
    {"hub"},  # checkpoint folders, a training run's resume file, cards, the Hugging Face Hub
    {"data"},  # image files, named data sources, the held-out split, weight maps, augmentation
    {"inference"},  # overlap-tile prediction (the trainer predicts held-out slices with it)
    {"training"},
    {"evaluation", "segmentation", "volumes", "exporters"},
    {"pipeline"},  # Predictor: image -> probabilities and cells, the one pipeline every front-end runs
    {"experiments", "finetuning"},  # workflows: the paper's ISBI 2012 experiment, fine-tuning on your data
    {"benchmark"},  # the benchmark suite (`unet-zoo benchmark`), which also times a reproduction
    {"cli", "napari"},  # the command line and the napari plugin: presentation, imported by nothing in the package
    {"__init__", "__main__"},  # the package's public names and `python -m unet_zoo`
]


@dataclass(frozen=True)
class Import:
    """One import of a package module: who imports what, where, and whether it runs inside a function."""

    importer: str
    imported: str
    line: int
    local: bool
    marked: bool


def module_names(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package (packages by their __init__.py)."""
    names = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names[".".join(parts)] = path
    return names


def _targets(node: ast.Import | ast.ImportFrom, importer: str, is_package: bool, modules: dict[str, Path]) -> list[str]:
    """The package modules an import statement loads (``from . import x`` names module x when it is one)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names if alias.name.split(".")[0] == PACKAGE]
    if node.level:
        base = importer.split(".") if is_package else importer.split(".")[:-1]
        base = base[: len(base) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
    else:
        target = node.module or ""
    if target.split(".")[0] != PACKAGE:
        return []
    found = []
    for alias in node.names:
        sub = f"{target}.{alias.name}"
        found.append(sub if sub in modules else target)
    return found


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return isinstance(test, (ast.Name, ast.Attribute)) and ast.unparse(test).endswith("TYPE_CHECKING")


def _catches_import_error(node: ast.Try) -> bool:
    """A ``try: import ... except ImportError`` says itself why the import is lazy: it may be missing."""
    for handler in node.handlers:
        names = [handler.type] if not isinstance(handler.type, ast.Tuple) else list(handler.type.elts)
        if any(isinstance(n, ast.Name) and n.id in ("ImportError", "ModuleNotFoundError") for n in names):
            return True
    return False


def _has_comment(lines: list[str], node: ast.stmt, block_start: int) -> bool:
    """A comment on the import's own lines, on the line above it, or above the run of imports it belongs to."""
    own = lines[node.lineno - 1 : (node.end_lineno or node.lineno)]
    above = [lines[i - 2] for i in {node.lineno, block_start} if i >= 2]
    comments = [line.split("#", 1)[1] for line in own if "#" in line]
    comments += [line.strip()[1:] for line in above if line.strip().startswith("#")]
    return any(c.strip() and not c.strip().lower().startswith("noqa") for c in comments)


def package_imports(root: Path = ROOT) -> list[Import]:
    """Every import of a unet_zoo module by a unet_zoo module."""
    modules = module_names(root)
    found: list[Import] = []
    for importer, path in modules.items():
        source = path.read_text(encoding="utf-8")
        lines = source.splitlines()
        is_package = path.name == "__init__.py"

        def visit(
            node: ast.AST,
            local: bool,
            guarded: bool,
            importer: str = importer,
            is_package: bool = is_package,
            lines: list[str] = lines,
        ) -> None:
            body_lists = [
                getattr(node, f) for f in ("body", "orelse", "finalbody", "handlers") if isinstance(getattr(node, f, None), list)
            ]
            for body in body_lists:
                block_start = None
                for child in body:
                    if isinstance(child, (ast.Import, ast.ImportFrom)):
                        block_start = block_start or child.lineno
                        for imported in _targets(child, importer, is_package, modules):
                            marked = guarded or _has_comment(lines, child, block_start)
                            found.append(Import(importer, imported, child.lineno, local, marked))
                        continue
                    block_start = None
                    if isinstance(child, ast.If) and _is_type_checking(child):
                        continue
                    inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
                    visit(child, inner, guarded or (isinstance(child, ast.Try) and _catches_import_error(child)))

        visit(ast.parse(source, filename=str(path)), False, False)
    return found


def import_cycles(imports: list[Import]) -> list[list[str]]:
    """The strongly connected components (Tarjan) with more than one module, or a module importing itself."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.importer, set()).add(imp.imported)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return cycles


def _edges_within(imports: list[Import], component: list[str]) -> list[str]:
    members = set(component)
    return sorted(
        {
            f"{i.importer} -> {i.imported} (line {i.line}{', in a function' if i.local else ''})"
            for i in imports
            if i.importer in members and i.imported in members
        }
    )


def package_of(module: str) -> str:
    """The package a module belongs to: ``unet_zoo.hub.card`` -> "hub", ``unet_zoo.paper`` -> "paper"."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def layer_of(package: str) -> int:
    for rank, members in enumerate(LAYERS):
        if package in members:
            return rank
    raise AssertionError(f"package {package!r} is in no layer of tests/test_layers.py: add it to LAYERS (and CONTRIBUTING.md)")


def test_packages_import_only_their_own_layer_or_below():
    upward = sorted(
        {
            f"{i.importer} (line {i.line}) imports {i.imported}: {package_of(i.importer)} may not depend on "
            f"{package_of(i.imported)}"
            for i in package_imports()
            if layer_of(package_of(i.imported)) > layer_of(package_of(i.importer))
        }
    )
    assert not upward, "imports must point down the layers of LAYERS:\n" + "\n".join(upward)


def test_the_import_graph_has_no_cycle():
    imports = package_imports()
    assert len({i.importer for i in imports}) > 20, "the scan found too few modules: is ROOT right?"
    cycles = import_cycles(imports)
    report = "\n\n".join(f"cycle through {', '.join(c)}:\n  " + "\n  ".join(_edges_within(imports, c)) for c in cycles)
    assert not cycles, f"unet_zoo's imports must point one way (downwards); found:\n{report}"


def test_lazy_imports_of_own_modules_say_why():
    unmarked = sorted(
        {
            f"{i.importer} (line {i.line}) imports {i.imported} inside a function without a comment saying why"
            for i in package_imports()
            if i.local and not i.marked and (i.importer, i.imported) not in PENDING_LAZY
        }
    )
    assert not unmarked, (
        "import the package's own modules at the top of the module; keep an import inside a function only to "
        "avoid a heavy optional dependency or a real start-up cost, and say which in a comment:\n" + "\n".join(unmarked)
    )


def test_the_checks_catch_a_cycle_and_an_unmarked_lazy_import(tmp_path):
    package = tmp_path / PACKAGE
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "low.py").write_text("def f():\n    from .high import g\n    return g\n")
    (package / "high.py").write_text(
        "from . import low\n\n\ndef g():\n    # lazy: needs an optional extra\n    from .low import f\n"
    )
    imports = package_imports(package)
    assert import_cycles(imports) == [["unet_zoo.high", "unet_zoo.low"]]
    unmarked = {(i.importer, i.imported) for i in imports if i.local and not i.marked}
    assert unmarked == {("unet_zoo.low", "unet_zoo.high")}


def test_pending_lazy_imports_still_exist():
    """An entry of PENDING_LAZY that was fixed must leave the list, so it cannot hide a new lazy import."""
    unmarked = {(i.importer, i.imported) for i in package_imports() if i.local and not i.marked}
    fixed = sorted(PENDING_LAZY - unmarked)
    assert not fixed, f"{fixed} are no longer unmarked lazy imports: remove them from PENDING_LAZY"


def reachable(imports: list[Import], start: str) -> set[str]:
    """The modules `start` imports, directly or through others (a package's modules count as the package's)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        graph.setdefault(imp.importer, set()).add(imp.imported)
    seen: set[str] = set()
    todo = [m for m in graph if m == start or m.startswith(start + ".")]
    while todo:
        for imported in graph.get(todo.pop(), ()):
            if imported not in seen:
                seen.add(imported)
                todo.append(imported)
    return seen


def test_finetuning_needs_nothing_of_the_papers_experiment():
    """Fine-tuning on your own data reads, trains, scores and publishes without the ISBI 2012 experiment."""
    imports = package_imports()
    found = sorted(m for m in reachable(imports, "unet_zoo.finetuning") if package_of(m) == "experiments")
    assert reachable(imports, "unet_zoo.finetuning") >= {"unet_zoo.hub.publish", "unet_zoo.training.trainer"}
    assert not found, "unet_zoo.finetuning reaches the experiment through: " + ", ".join(found)


GUI_MODULES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "magicgui", "vispy")


@pytest.mark.slow
def test_importing_unet_zoo_loads_no_gui():
    """`import unet_zoo` (and the plugin package itself) stays free of napari and Qt: only the modules napari
    loads from the manifest import them."""
    import subprocess
    import sys

    probe = (
        f"import sys, unet_zoo, unet_zoo.napari; print(sorted({{m.split('.')[0] for m in sys.modules}} & set({GUI_MODULES!r})))"
    )
    run = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == "[]"


def test_only_the_plugin_imports_napari_and_qt():
    found = set()
    for path in sorted(ROOT.rglob("*.py")):
        if path.is_relative_to(ROOT / "napari"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            found |= {f"{path.relative_to(ROOT)}: {n}" for n in names if n.split(".")[0] in GUI_MODULES}
    assert not found, "napari and Qt belong in unet_zoo/napari/ only:\n" + "\n".join(sorted(found))
