"""Fixtures for the redaction tests: real loopback captures (tcpdump) and helpers."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.robustness import corpus


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
