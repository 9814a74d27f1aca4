"""Marks shared by the lab's root tests: they build network namespaces."""

from __future__ import annotations

import os
import sys

import pytest

#: A test module that runs real lab scenarios: root only, Linux only, and slow.
LAB_ROOT_MARKS = [
    pytest.mark.root,
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="lab needs Linux namespaces"),
    pytest.mark.skipif(os.geteuid() != 0 if hasattr(os, "geteuid") else True,
                       reason="lab needs root (network namespaces)"),
]
