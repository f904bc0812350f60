"""The package's layering, checked from its source: the rules speak no SQL and import no adapter,
no module is too long to read, and no two modules import each other (directly or in a cycle)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "memory_mcp"
RULES = PACKAGE / "memory"
FORBIDDEN_IN_RULES = ("aiosqlite", "sqlite3", "usearch", "asyncpg", "psycopg", "memory_mcp.adapters",
                      "memory_mcp.compose")
# SQL as a store would run it: a statement keyword followed by what makes it a statement.
SQL = re.compile(r"\b(SELECT\s+.+\s+FROM|INSERT\s+INTO|UPDATE\s+\w+\s+SET|DELETE\s+FROM|CREATE\s+TABLE)\b")


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[str]:
    """Modules this file imports, as absolute names (relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            found.append(base)
            found += [f"{base}.{alias.name}" for alias in node.names]  # `from . import engine`
    return found


def _sources() -> dict[str, Path]:
    return {_module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_the_rules_import_no_adapter_driver_or_composition_root() -> None:
    offending = []
    for path in RULES.glob("*.py"):
        for name in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_RULES):
                if path.name == "engine.py" and name.startswith("memory_mcp.compose"):
                    continue  # create() asks the composition root for its default parts
                offending.append(f"{path.name} imports {name}")
    assert offending == []


def test_the_rules_contain_no_sql() -> None:
    offending = [
        f"{path.name}:{number}: {line.strip()}"
        for path in RULES.glob("*.py")
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if SQL.search(line)
    ]
    assert offending == []


def test_the_browser_is_a_thin_layer_without_sql_or_adapters() -> None:
    """The memory browser (ui/) reads and writes through HierarchicalMemory only."""
    offending = []
    for path in (PACKAGE / "ui").glob("*.py"):
        offending += [f"{path.name} imports {name}" for name in _imports(path)
                      if any(name == f or name.startswith(f + ".") for f in FORBIDDEN_IN_RULES)]
        offending += [f"{path.name}:{n}: {line.strip()}"
                      for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1) if SQL.search(line)]
    assert offending == []


def test_no_module_of_the_rules_exceeds_500_lines() -> None:
    long = {p.name: n for p in RULES.glob("*.py") if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500}
    assert long == {}


def _cycles(graph: dict[str, set[str]]) -> list[str]:
    """Every cycle a depth-first walk meets, as 'a -> b -> a'."""
    cycles: list[str] = []
    state: dict[str, int] = {}  # 1 while on the walk's path, 2 once done

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, [*stack, nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return cycles


def test_no_import_cycles() -> None:
    """Between modules (a package's ``__init__`` re-exporting its modules is not an edge back)."""
    sources = _sources()
    graph: dict[str, set[str]] = {}
    for name, path in sources.items():
        if path.name == "__init__.py":
            continue
        targets = set()
        for imported in _imports(path):
            while imported and imported not in sources:
                imported = imported.rpartition(".")[0]
            if imported and imported != name and sources[imported].name != "__init__.py":
                targets.add(imported)
        graph[name] = targets
    cycles = _cycles(graph)
    assert cycles == []


def test_the_layer_checks_see_a_cycle_sql_and_an_import_when_there_is_one() -> None:
    """The checks above can fail: a finder that finds nothing would pass forever."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a -> b -> c -> a"]
    assert _cycles({"a": {"b"}, "b": set()}) == []
    assert SQL.search('cursor = await db.execute("SELECT key FROM memories WHERE id = ?")')
    assert SQL.search("UPDATE memories SET valid_until = ?")
    assert not SQL.search("Select the memories visible from a position")
    assert "memory_mcp.memory.duplicates" in _imports(RULES / "writing.py")  # relative imports resolved
