"""Docs: the generated catalog page is current, and mkdocs builds with --strict."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_catalog_page_is_generated_from_package_data() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_catalog_doc.py"), "--check"])
    assert proc.returncode == 0, "docs/catalog.md is stale: run python scripts/gen_catalog_doc.py"


def test_mkdocs_builds_strict(tmp_path: Path) -> None:
    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).parent / "mkdocs")
    proc = subprocess.run([mkdocs, "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=REPO, capture_output=True, text=True)
    # Not -q: mkdocs only counts the warnings it logs, so --strict with -q never fails.
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "WARNING" not in proc.stderr, proc.stderr
    assert (tmp_path / "site" / "index.html").exists()


def test_readme_first_screen_has_the_two_commands() -> None:
    head = "\n".join((REPO / "README.md").read_text().splitlines()[:30])
    assert "rstscope analyze samples/" in head
    assert "bash scripts/test.sh" in head
    # The verdict itself, in its three lines (row, detail with what is sure and the
    # alternative, action), each whole at 80 columns; test_cli_table checks that it is
    # the real output.
    lines = head.splitlines()
    action = next(i for i, ln in enumerate(lines) if ln.startswith("    -> "))
    row, detail = lines[action - 2], lines[action - 1]
    assert re.match(r"\d\d:\d\d:\d\d\.\d{3}  ", row), row
    assert "[sure: " in detail and "[or: " in detail, detail
    assert all(len(ln) <= 80 and not ln.endswith("...") for ln in lines), lines
    ci = (REPO / ".ci" / "run").read_text()
    assert "scripts/test.sh" in ci


def test_verdicts_page_tables_are_generated_from_the_rules() -> None:
    proc = subprocess.run([sys.executable, str(REPO / "scripts" / "gen_verdicts_doc.py"),
                           "--check"])
    assert proc.returncode == 0, ("docs/verdicts.md is stale: run python "
                                  "scripts/gen_verdicts_doc.py")
