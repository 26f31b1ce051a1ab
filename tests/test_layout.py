"""The layering holds: bench is a client of the package and never of the tests."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST_MODULES = {path.stem for path in (ROOT / "tests").glob("*.py")}


def imported_modules(path: Path) -> set[str]:
    """The top-level module of every import in `path`."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def test_bench_never_imports_the_tests() -> None:
    for path in sorted((ROOT / "bench").glob("*.py")):
        text = path.read_text(encoding="utf-8")
        assert '"tests"' not in text and "'tests'" not in text, f"{path.name} puts tests/ on its path"
        shared = imported_modules(path) & (TEST_MODULES - {path.stem})
        assert not shared, f"{path.name} imports test modules {sorted(shared)}"


def test_every_test_named_slow_exists() -> None:
    """conftest's SLOW_TESTS and SLOW_MODULES name tests and modules that exist (a renamed test would silently
    run in make check's fast loop again)."""
    import conftest

    tests = Path(__file__).parent
    for module in conftest.SLOW_MODULES:
        assert (tests / f"{module}.py").is_file(), module
    for name in conftest.SLOW_TESTS:
        module, function = name.split("::")
        assert f"def {function}(" in (tests / f"{module}.py").read_text(encoding="utf-8"), name
