"""The package layout holds: installed names under ``callsense.``, dependencies pointing one
way (connectors -> pipeline -> rules -> core), no import cycle."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("core", "rules", "pipeline", "connectors", "configs")
# what each package may import of callsense (besides itself)
ALLOWED = {
    "core": set(),
    "rules": {"core"},
    "pipeline": {"core", "rules", "configs"},
    "connectors": {"core", "rules", "pipeline", "configs"},
    "configs": set(),
}


def _modules() -> dict[str, Path]:
    """Dotted ``callsense.*`` module name -> file, for every module of the product."""
    out = {}
    for top in PACKAGES:
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(["callsense", *parts])] = path
    return out


def _imports(path: Path, *, module_level: bool) -> list[tuple[str, int]]:
    """Absolute names imported by ``path`` (only at module level when asked), with lines."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    nodes = tree.body if module_level else list(ast.walk(tree))
    found = []
    for node in nodes:
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
    return found


def test_pyproject_installs_every_package_under_callsense() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    listed = set(config["setuptools"]["packages"])
    on_disk = {
        "callsense." + ".".join(p.parent.relative_to(ROOT).parts)
        for top in PACKAGES
        for p in (ROOT / top).rglob("__init__.py")
    }
    assert listed == on_disk
    assert config["setuptools"]["package-dir"] == {f"callsense.{t}": t for t in PACKAGES}


def test_no_code_imports_the_folders_by_their_bare_names() -> None:
    """``import pipeline`` would load a second copy of the modules beside callsense.pipeline."""
    bad = []
    for path in sorted(ROOT.rglob("*.py")):
        if ".git" in path.parts or "build" in path.parts:
            continue
        for name, line in _imports(path, module_level=False):
            if name.split(".")[0] in PACKAGES:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert not bad


def test_dependencies_point_one_way() -> None:
    bad = []
    for module, path in _modules().items():
        own = module.split(".")[1]
        for name, line in _imports(path, module_level=False):
            parts = name.split(".")
            foreign = parts[0] == "callsense" and len(parts) > 1 and parts[1] != own
            if foreign and parts[1] not in ALLOWED[own]:
                bad.append(f"{path.relative_to(ROOT)}:{line}: {own} imports {name}")
    assert not bad


def test_no_import_cycle_at_module_level() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        deps = set()
        for name, _ in _imports(path, module_level=True):
            # "from a.b import c" may name a module a.b.c or a member c of a.b
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name and name != module:
                deps.add(name)
        graph[module] = deps
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    # a package's __init__ re-exporting its submodules is not a cycle of behaviour
    real = [
        c for c in cycles if not any(c[i + 1].startswith(c[i] + ".") for i in range(len(c) - 1))
    ]
    assert not real


def test_no_module_is_above_500_lines() -> None:
    """One concept per module: a file past 500 lines holds more than one."""
    folders = (*PACKAGES, "tools", "bench", "tests")
    long = [
        f"{path.relative_to(ROOT)}: {n} lines"
        for folder in folders
        for path in sorted((ROOT / folder).rglob("*.py"))
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > 500
    ]
    assert not long
