"""The package layout: one installed name (`focusclip`), layers with a table of allowed edges, no import
cycle, typer only in the commands.

The import graph is read with `ast` from the source files, so it sees imports inside functions too
(the lazy ones that keep `--help` fast) and needs nothing imported.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO

# Top-level folder → installed package (pyproject.toml's package-dir).
FOLDERS = {"focusclip": "focusclip", "converters": "focusclip.converters", "data": "focusclip.data",
           "eval": "focusclip.eval", "pipeline": "focusclip.pipeline", "prompts": "focusclip.prompts",
           "training": "focusclip.training"}
BARE = tuple(f for f in FOLDERS if f != "focusclip")
TYPER_ALLOWED = ("focusclip.cli", "focusclip.pipeline.cli", "focusclip.pipeline.commands", "focusclip.training.cli",
                 "focusclip.eval.cli")


# The layers (docs/design.md §2): package → the packages it may import. The root (`__version__` only)
# may be imported by every package; a command module may import its own package and what is below it.
LAYERS = {
    "focusclip": set(),
    "focusclip.core": {"focusclip"},
    "focusclip.data": {"focusclip", "focusclip.core"},
    "focusclip.converters": {"focusclip", "focusclip.core", "focusclip.data"},
    "focusclip.prompts": {"focusclip", "focusclip.core", "focusclip.data"},
    "focusclip.pipeline": {"focusclip", "focusclip.core", "focusclip.data", "focusclip.converters",
                           "focusclip.prompts"},
    "focusclip.training": {"focusclip", "focusclip.core", "focusclip.data"},
    "focusclip.eval": {"focusclip", "focusclip.core", "focusclip.data", "focusclip.converters",
                       "focusclip.training.checkpoint"},
}
COMMANDS = {"focusclip.cli": "focusclip", "focusclip.pipeline.cli": "focusclip.pipeline",
            "focusclip.pipeline.commands": "focusclip.pipeline", "focusclip.training.cli": "focusclip.training",
            "focusclip.eval.cli": "focusclip.eval"}


def package_modules() -> dict[str, Path]:
    """Every module of the installed namespace, by dotted name."""
    modules: dict[str, Path] = {}
    for folder, package in FOLDERS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            rel = path.relative_to(REPO / folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"]
            modules[".".join([package, *parts])] = path
    return modules


def imported_names(path: Path, module: str, modules: dict[str, Path] | None = None) -> set[str]:
    """Dotted names this file imports, anywhere in it. `from X import y` gives `X.y` when that is a
    module of `modules`, else `X` (and both when `modules` is not given)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: resolve against this module's package
                pkg = module.split(".") if is_package else module.split(".")[:-1]
                pkg = pkg[:len(pkg) - node.level + 1]
                base = ".".join(pkg + ([base] if base else []))
            for a in node.names:
                sub = f"{base}.{a.name}"
                if modules is None:
                    names.update((base, sub))
                else:
                    names.add(sub if sub in modules else base)
    return names


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    return {m: {n for n in imported_names(p, m, modules) if n in modules and n != m} for m, p in modules.items()}


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; returns the components with more than one module (the cycles)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(max(10_000, sys.getrecursionlimit()))
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_cycle_finder_finds_a_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert strongly_connected(graph) == [["a", "b", "c"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles():
    cycles = strongly_connected(import_graph())
    assert not cycles, "import cycles: " + "; ".join(" ↔ ".join(c) for c in cycles)


def layer_of(module: str) -> str:
    """The layer a module belongs to: a command (its dotted prefix in COMMANDS) or the longest package
    of LAYERS that contains it."""
    for command in COMMANDS:
        if module == command or module.startswith(command + "."):
            return command
    return max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)


def allowed(importer: str, imported: str) -> bool:
    src, dst = layer_of(importer), layer_of(imported)
    if src == dst:
        return True
    if src in COMMANDS:   # a command: its own package and everything below that
        own = COMMANDS[src]
        if dst in COMMANDS:   # the app and its commands, and the options all three scripts share
            return COMMANDS[dst] == own or dst == "focusclip.cli"
        return dst == own or dst in LAYERS[own] or allowed(own + ".x", imported)
    # a layer by its name, or one module of another layer named in full (eval → training.checkpoint)
    return any(dst == a if a in LAYERS else imported == a for a in LAYERS[src])


def layer_breaks(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{m} → {d}" for m, deps in graph.items() for d in deps if not allowed(m, d))


def test_layer_table_catches_the_breaks_it_names():
    """The two breaks this table was written against: the demo importing eval, the root importing training."""
    graph = {"focusclip.pipeline.demo.report": {"focusclip.eval.metrics", "focusclip.core.io"},
             "focusclip._auto": {"focusclip.training.model"},
             "focusclip.eval.model": {"focusclip.training.checkpoint", "focusclip.training.trainer"},
             "focusclip.training.cli": {"focusclip.training.trainer", "focusclip.cli", "focusclip.core.errors"},
             "focusclip.pipeline.commands.demo": {"focusclip.pipeline.demo", "focusclip.eval.cli"}}
    assert layer_breaks(graph) == ["focusclip._auto → focusclip.training.model",
                                   "focusclip.eval.model → focusclip.training.trainer",
                                   "focusclip.pipeline.commands.demo → focusclip.eval.cli",
                                   "focusclip.pipeline.demo.report → focusclip.eval.metrics"]


def test_imports_follow_the_layers():
    breaks = layer_breaks(import_graph())
    assert not breaks, "imports across the layers of docs/design.md §2:\n" + "\n".join(breaks)


def test_typer_only_in_command_modules():
    offenders = [m for m, p in package_modules().items()
                 if "typer" in {n.split(".")[0] for n in imported_names(p, m)}
                 and not m.startswith(TYPER_ALLOWED)]
    assert not offenders, f"typer imported outside the command modules: {offenders}"


def test_nothing_imports_the_bare_folder_names():
    offenders = []
    for path in sorted(REPO.rglob("*.py")):
        if {".venv", ".venv-openclip", "build"} & set(path.parts):
            continue
        module = "tests" if "tests" in path.parts else "x"
        for name in imported_names(path, module):
            if name.split(".")[0] in BARE:
                offenders.append(f"{path.relative_to(REPO)}: {name}")
    assert not offenders, "\n".join(offenders)


def test_every_package_is_listed_in_pyproject():
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    on_disk = {m for m, p in package_modules().items() if p.name == "__init__.py"}
    assert on_disk == listed, f"on disk, not listed: {sorted(on_disk - listed)}; listed, absent: {sorted(listed - on_disk)}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    # Built from a copy, so the build leaves nothing in the checkout (build/, *.egg-info).
    shutil.copytree(REPO, build / "src", ignore=shutil.ignore_patterns(
        ".git", ".venv*", "build", "runs", "out", "*.egg-info", "__pycache__", "tests", "benchmarks"))
    r = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                        "-w", str(out), str(build / "src")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    (whl,) = out.glob("focusclip-*.whl")
    return whl


def test_wheel_holds_only_the_namespace(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert tops == {"focusclip", next(t for t in tops if t.endswith(".dist-info"))}, tops
    packages = {str(Path(n).parent).replace("/", ".") for n in names if n.endswith("/__init__.py")}
    assert packages == {m for m, p in package_modules().items() if p.name == "__init__.py"}
    # package data travels: the prompt templates and the task files
    assert any(n.startswith("focusclip/prompts/templates/") and n.endswith(".txt") for n in names)
    assert any(n.startswith("focusclip/eval/tasks/") and n.endswith(".json") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "focus-data = focusclip.pipeline.cli:main" in text


def test_installed_wheel_claims_no_generic_name(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    code = ("import importlib.util, focusclip.training, focusclip.eval.tasks as t\n"
            f"assert focusclip.training.__file__.startswith({str(target)!r}), focusclip.training.__file__\n"
            "assert t.TASKS_DIR.is_dir() and any(t.TASKS_DIR.glob('*.json'))\n"
            "print([n for n in " + repr(BARE) + " if importlib.util.find_spec(n) is not None])\n")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    r = subprocess.run([sys.executable, "-c", code], cwd=outside, capture_output=True, text=True,
                       env={"PYTHONPATH": str(target), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]", f"generic top-level names importable: {r.stdout}"
