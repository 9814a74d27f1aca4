"""Rewrite the ``$ COLUMNS=80 rstscope analyze ...`` examples in README.md and docs/
with real output (tests/test_cli_table.py checks them byte for byte).

Run from anywhere: ``python scripts/regen_doc_examples.py`` (``--check`` only reports).
A block whose output starts with ``...`` keeps that elision and shows the table from
its column header on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BLOCK = re.compile(r"(```console\n\$ (COLUMNS=80 rstscope analyze [^\n]+)\n)(.*?)(```)", re.S)


def real_output(cmd: str) -> str:
    args = cmd.split()[2:]
    env = {**os.environ, "COLUMNS": "80"}
    run = subprocess.run([sys.executable, "-m", "rstscope", *args], cwd=REPO, env=env,
                         capture_output=True, text=True, check=True)
    return run.stdout


def regenerate(text: str) -> str:
    def one(m: re.Match[str]) -> str:
        out = real_output(m.group(2))
        if m.group(3).startswith("...\n"):
            out = "...\n" + out[out.index("time "):]
        return m.group(1) + out + m.group(4)

    return BLOCK.sub(one, text)


def main() -> int:
    check = "--check" in sys.argv[1:]
    stale = []
    for path in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = path.read_text()
        new = regenerate(text)
        if new != text:
            stale.append(path.relative_to(REPO))
            if not check:
                path.write_text(new)
    for p in stale:
        print(f"{'stale' if check else 'rewrote'}: {p}")
    return 1 if check and stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
