"""The import graph of rstscope has no cycles, counting imports inside functions.

The graph is read from the source with ``ast`` (nothing is imported), so an
import hidden in a function body counts as much as one at the top: a cycle
broken only by deferring an import is still a cycle in the design.  Imports
under ``if TYPE_CHECKING:`` never run and are left out.  Importing a module of
another package runs that package's ``__init__`` first, so it counts as an
import of the package too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import rstscope

PKG_DIR = Path(rstscope.__file__).resolve().parent


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG_DIR.rglob("*.py")):
        rel = path.relative_to(PKG_DIR.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def _imports(tree: ast.AST) -> list[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement, with whether it sits inside a function."""
    found: list[tuple[ast.Import | ast.ImportFrom, bool]] = []

    def walk(node: ast.AST, in_func: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    walk(sub, in_func)
                continue
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                found.append((child, in_func))
            walk(child, in_func or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)))

    walk(tree, False)
    return found


def import_graph() -> tuple[dict[str, set[str]], list[tuple[str, str, int]]]:
    """(module -> rstscope modules it imports, [(module, target, line) of function-level imports])."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    deferred: list[tuple[str, str, int]] = []
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, in_func in _imports(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                for a in node.names:
                    sub = f"{base}.{a.name}"
                    targets.append(sub if sub in mods else base)
            for t in targets:
                while t and t not in mods:
                    t = t.rpartition(".")[0]
                if not t or t == mod:
                    continue
                # The target's packages that the importer is not already inside.
                own = mod if is_pkg else mod.rpartition(".")[0]
                pkg = t.rpartition(".")[0]
                while pkg and not (own == pkg or own.startswith(pkg + ".")):
                    graph[mod].add(pkg)
                    pkg = pkg.rpartition(".")[0]
                graph[mod].add(t)
                if in_func:
                    deferred.append((mod, t, node.lineno))
    return graph, deferred


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return out


def test_no_import_cycles() -> None:
    graph, _ = import_graph()
    assert find_cycles(graph) == []


def test_the_checker_sees_a_cycle() -> None:
    # The checker itself must be able to fail.
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c"]]


def test_function_level_imports_say_why() -> None:
    """An import inside a function is there only to keep an optional or heavy
    dependency from loading early, and a ``# lazy:`` comment says which."""
    missing = []
    for mod, path in _modules().items():
        lines = path.read_text(encoding="utf-8").splitlines()
        for node, in_func in _imports(ast.parse("\n".join(lines))):
            if not in_func:
                continue
            # The comment sits on the import or heads its group of imports.
            k = node.lineno - 1
            while k > 0 and lines[k - 1].strip().startswith(("import ", "from ")):
                k -= 1
            here = lines[node.lineno - 1]
            above = lines[k - 1].strip() if k > 0 else ""
            if "# lazy:" not in here and not above.startswith("# lazy:"):
                missing.append(f"{mod}:{node.lineno}: {here.strip()}")
    assert missing == []


def _package_of(module: str) -> str:
    """``rstscope.core.flow`` -> ``rstscope.core``; a top-level module is its own package."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else module


def private_imports() -> list[str]:
    """``from rstscope.x.y import _name`` where the importer sits in another package."""
    out = []
    for module, path in _modules().items():
        for node, _lazy in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom) or not (node.module or "").startswith("rstscope"):
                continue
            source = str(node.module)
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                # ``from rstscope.pkg import _mod`` names a private module of pkg.
                if private and _package_of(f"{source}.{alias.name}") != _package_of(module) \
                        and _package_of(source) != _package_of(module):
                    out.append(f"{module}:{node.lineno} imports {source}.{alias.name}")
    return out


def test_no_module_imports_another_packages_private_names() -> None:
    # Within a package, modules may share private helpers; across packages a
    # private name is an implementation detail that must not become an interface
    # (issue 15: scale.sharded imported batch's _base_row, _error_row, _stat).
    assert private_imports() == []
