"""The console never opens a write transaction itself (issue #12, item 7): every
operator action is a core service that owns its transaction; screens only read."""

from __future__ import annotations

import ast
from pathlib import Path

import console


def _session_scopes(path: Path) -> list[tuple[int, bool]]:
    """(line, write) for every ``session_scope(...)`` call in a module."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "session_scope":
            write = not any(
                kw.arg == "write" and isinstance(kw.value, ast.Constant) and kw.value.value is False
                for kw in node.keywords
            )
            found.append((node.lineno, write))
    return found


def test_the_console_opens_only_read_transactions():
    root = Path(console.__file__).parent
    modules = sorted(root.rglob("*.py"))
    assert modules
    writes = [
        f"{path.relative_to(root.parent)}:{line}"
        for path in modules
        for line, write in _session_scopes(path)
        if write
    ]
    assert writes == []
