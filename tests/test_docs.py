"""The README and the documentation site name no path that does not exist, and the README stays short."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TOP = "data|contract|runtime|train|export|bench|tests|web|docs"
# A repository path in backticks (`runtime/sampling.py`) or a relative link target ([x](docs/api.md)).
PATH = re.compile(rf"`((?:{TOP})/[\w./-]*)`|\]\(((?:\.\./)?(?:{TOP}|[\w-]+\.md)[^)#\s]*)")
MADE_BY_COMMANDS = ("ort-web/node_modules", "docs/results.md")  # made by `make web`; a bench script's --out


def named_paths(page: Path) -> list[tuple[str, Path]]:
    """Each repository path the page names, with where it must exist."""
    found = []
    for match in PATH.finditer(page.read_text(encoding="utf-8")):
        code, link = match.groups()
        if code is not None:
            found.append((code, ROOT / code))
        else:
            found.append((link, (page.parent / link).resolve()))
    return found


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.name)
def test_every_named_path_exists(page: Path) -> None:
    missing = [name for name, path in named_paths(page) if not path.exists() and not name.startswith(MADE_BY_COMMANDS)]
    assert not missing, f"{page.name} names paths that do not exist: {missing}"


def test_the_readme_is_short() -> None:
    assert len((ROOT / "README.md").read_text(encoding="utf-8").splitlines()) <= 250
