"""Captures shared by the plot tests: the lab's real samples, merged (no root needed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.samplemix import SampleMix, mixed_capture


@pytest.fixture(scope="session")
def abort_capture(tmp_path_factory: pytest.TempPathFactory) -> SampleMix:
    """A server abort after 3 s idle, a client read-timeout abort after 3 s, and a
    gracefully closed flow, ending in that order."""
    return mixed_capture(tmp_path_factory.mktemp("mix") / "mix.pcap")


@pytest.fixture(scope="session")
def abort_analysis(abort_capture: SampleMix):
    from rstscope.api import analyze

    return analyze(abort_capture.path)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
