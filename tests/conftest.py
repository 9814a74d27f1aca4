"""Shared test helpers.

``../shared`` (reference notes, public captures) exists on dev machines and in
CI but not in a user's clone; tests that need it use the ``shared_dir`` fixture,
which skips cleanly when it is missing.  Override the location with
``RSTSCOPE_SHARED``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_path() -> Path:
    return Path(os.environ.get("RSTSCOPE_SHARED", REPO_ROOT.parent / "shared"))


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    p = shared_path()
    if not p.is_dir():
        pytest.skip(f"shared reference data not found (set RSTSCOPE_SHARED): {p}")
    return p
