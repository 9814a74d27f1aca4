"""Captures for report tests (real tcpdump on loopback), built once per session."""

from __future__ import annotations

import pytest

from tests.plot.loopback import Exchange, idle_then_abort


@pytest.fixture(scope="session")
def report_capture(tmp_path_factory: pytest.TempPathFactory) -> Exchange:
    return idle_then_abort(tmp_path_factory.mktemp("rep") / "abort.pcap", idle_s=1.2, flows=2,
                           chunks=10)


@pytest.fixture(scope="session")
def report_analysis(report_capture: Exchange):
    from rstscope.api import analyze

    return analyze(report_capture.path)
