"""Fixtures for the redaction tests: real loopback captures (tcpdump) and helpers."""

from __future__ import annotations

import importlib.util
import shutil
import sys
from pathlib import Path
from types import ModuleType

import pytest


def _load_corpus() -> ModuleType:
    # The capture builders live beside the robustness tests; load them by path so
    # the two test directories need no package structure.
    path = Path(__file__).resolve().parents[1] / "robustness" / "corpus.py"
    name = "rstscope_test_corpus"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


corpus = _load_corpus()


@pytest.fixture(scope="session")
def loopback_pcap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    why = corpus.can_capture()
    if why:
        pytest.skip(why)
    return corpus.loopback_capture(tmp_path_factory.mktemp("lo") / "lo.pcap")


@pytest.fixture(scope="session")
def tshark() -> str:
    exe = shutil.which("tshark")
    if exe is None:
        pytest.skip("tshark is not installed")
    return exe
