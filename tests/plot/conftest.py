"""Captures shared by the plot tests (real tcpdump on loopback), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.plot.loopback import Exchange, idle_then_abort


@pytest.fixture(scope="session")
def abort_capture(tmp_path_factory: pytest.TempPathFactory) -> Exchange:
    """Two streamed flows that go idle 1.6 s and are aborted by the client, plus one
    gracefully closed flow."""
    return idle_then_abort(tmp_path_factory.mktemp("loop") / "abort.pcap", idle_s=1.6, flows=2)


@pytest.fixture(scope="session")
def abort_analysis(abort_capture: Exchange):
    from rstscope.api import analyze

    return analyze(abort_capture.path)


def repo_root() -> Path:
    return Path(__file__).resolve().parents[2]
