"""Shared test fixtures: the shared captures directory and external tools.

``../shared`` (public captures and reference notes) exists on dev machines and
in CI but not in a user's clone; tests that need it skip cleanly without it.
Point ``RSTSCOPE_SHARED`` elsewhere to override the location.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
# The lab's labelled captures, committed with the repository (samples/README.md).
SAMPLES = REPO_ROOT / "samples"
#: The shipped JSON Schema of ``analyze --format json``, read once for every test that
#: validates against it.
ANALYZE_SCHEMA: dict[str, Any] = json.loads(
    (REPO_ROOT / "rstscope" / "data" / "analyze.schema.json").read_text())


def make_capture(out: Path, packets: int, *, seed: int = 443, fmt: str = "pcap") -> Path:
    """A deterministic generated capture (benchmarks/make_capture.py, run as its CLI;
    ``seed`` and ``fmt`` default as the CLI does)."""
    path = REPO_ROOT / "benchmarks" / "make_capture.py"
    if not path.exists():
        pytest.fail("benchmarks/make_capture.py (the ingestion engineer's generator) is missing")
    cmd = [sys.executable, str(path), str(packets), str(out), "--seed", str(seed),
           "--format", fmt]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if proc.returncode != 0:
        pytest.fail(f"make_capture failed: {' '.join(cmd)}\n{proc.stderr}")
    return out


def sample_labels(pcap: Path) -> list[dict[str, Any]]:
    """The lab's truth for one sample capture: one entry per RST it injected or caused."""
    labels: list[dict[str, Any]] = json.loads(pcap.with_suffix(".labels.json").read_text())
    return labels


def sample_captures() -> list[Path]:
    """Every labelled sample capture, sorted."""
    return sorted(p for p in SAMPLES.glob("*.pcap") if p.with_suffix(".labels.json").is_file())


def shared_path() -> Path:
    return Path(os.environ.get("RSTSCOPE_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    p = shared_path()
    if not p.is_dir():
        pytest.skip(f"shared reference directory not present ({p.name}); set RSTSCOPE_SHARED")
    return p


@pytest.fixture(scope="session")
def shared_captures(shared_dir: Path) -> list[Path]:
    caps = sorted(p for p in (shared_dir / "captures").rglob("*")
                  if p.is_file() and (p.suffix in (".pcap", ".pcapng") or p.name.endswith(".gz")))
    if not caps:
        pytest.skip("no captures under shared/captures")
    return caps


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        if os.environ.get("CI"):
            # CI installs every tool the tests drive (scripts/test.sh); a missing one
            # there is a broken setup, not a reason to skip.
            pytest.fail(f"{name} is not installed, but CI must provide it")
        pytest.skip(f"{name} is not installed")
    return path


@pytest.fixture(scope="session")
def tshark() -> str:
    """Path of tshark; skips if absent (CI installs it, so these tests run there)."""
    return _tool("tshark")
