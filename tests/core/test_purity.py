"""rstscope.core is sans-IO: importing it pulls in no I/O or heavy libraries."""

from __future__ import annotations

import json
import subprocess
import sys

FORBIDDEN = ("scapy", "pyshark", "matplotlib", "pandas", "socket")

_PROBE = """
import json, sys
before = set(sys.modules)
import rstscope.core
import rstscope.core.bulk, rstscope.core.classify, rstscope.core.states
print(json.dumps(sorted(set(sys.modules) - before)))
"""


def test_core_imports_nothing_forbidden():
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True,
                         check=True).stdout
    loaded = json.loads(out)
    assert "rstscope.core" in loaded  # the probe really imported it
    bad = [m for m in loaded if m.split(".")[0] in FORBIDDEN]
    assert bad == []


def test_core_source_has_no_clock_or_io_calls():
    from pathlib import Path

    import rstscope.core as core

    pkg = Path(core.__file__).parent
    for src in pkg.glob("*.py"):
        text = src.read_text()
        for needle in ("time.time(", "time.monotonic(", "datetime.now(", "open(", "import os"):
            assert needle not in text, f"{src.name}: {needle}"
