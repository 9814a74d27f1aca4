"""Packaging: every install hint the import guards print names a real extra."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_guard_extras_exist() -> None:
    extras = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
                 ["optional-dependencies"])
    named = set()
    for path in (ROOT / "rstscope").rglob("*.py"):
        named.update(re.findall(r'extra="([^"]+)"', path.read_text()))
    assert named, "the import guards name their extras with extra=\"...\""
    assert named <= extras, f"hints name extras that do not exist: {sorted(named - extras)}"


def test_console_script_and_module_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["scripts"]["rstscope"] == "rstscope.cli:main"
    assert (ROOT / "rstscope" / "__main__.py").read_text().count("main()") == 1
