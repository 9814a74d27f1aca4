"""Captures for report tests: the lab's real samples, merged (no root needed)."""

from __future__ import annotations

import pytest

from tests.samplemix import SampleMix, mixed_capture


@pytest.fixture(scope="session")
def report_capture(tmp_path_factory: pytest.TempPathFactory) -> SampleMix:
    return mixed_capture(tmp_path_factory.mktemp("rep") / "mix.pcap")


@pytest.fixture(scope="session")
def report_analysis(report_capture: SampleMix):
    from rstscope.api import analyze

    return analyze(report_capture.path)
