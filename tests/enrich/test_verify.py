"""``rstscope verify``: rstscope's fields against tshark's, on real captures.

The doctored cases give tshark a different file than rstscope reads (a copy
rewritten by editcap), so the check has real differences to find, with a
known size: a time shift, and a snaplen cut.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from rstscope.enrich.verify import COMPARED, verify_capture
from rstscope.errors import EXIT_FAIL_ON, EXIT_NOINPUT
from rstscope.ingest import read_packets
from tests.conftest import SAMPLES


def _samples() -> list[Path]:
    return sorted(SAMPLES.glob("*.pcap"))


def _rstscope(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rstscope", *args], capture_output=True,
                          text=True, env=env, check=False)


@pytest.mark.parametrize("pcap", _samples(), ids=lambda p: p.name)
def test_verify_lab_samples(pcap, tshark):
    report = verify_capture(pcap)
    assert report.ok, "\n".join(report.lines())
    assert report.packets > 0 or report.flows == 0
    assert report.fields == COMPARED


def test_verify_bench_capture(recording, tshark):
    report = verify_capture(recording.pcap)
    assert report.ok, "\n".join(report.lines())
    assert report.flows == 6  # one per bench scenario, each has a RST


@pytest.mark.slow
def test_verify_shared_captures(shared_captures, tshark):
    failures = []
    checked = 0
    for cap in shared_captures:
        report = verify_capture(cap)
        checked += report.packets
        if not report.ok:
            failures.append("\n".join(report.lines(5)))
    assert not failures, "\n\n".join(failures)
    assert checked > 5000


def test_time_shift_is_found(recording, tmp_path, tshark):
    shifted = tmp_path / "shifted.pcap"
    subprocess.run(["editcap", "-t", "0.25", str(recording.pcap), str(shifted)], check=True,
                   capture_output=True)
    report = verify_capture(recording.pcap, against=shifted)
    assert not report.ok
    assert set(report.by_field) == {"ts_ns"}
    assert report.by_field["ts_ns"] == report.packets
    assert {d.tshark - d.rstscope for d in report.diffs} == {250_000_000}  # type: ignore


def test_snaplen_cut_is_found(recording, tmp_path, tshark):
    """tshark on a copy cut to 54 bytes (Ethernet+IP+TCP without options) loses options."""
    cut = tmp_path / "cut.pcap"
    subprocess.run(["editcap", "-s", "54", str(recording.pcap), str(cut)], check=True,
                   capture_output=True)
    report = verify_capture(recording.pcap, against=cut)
    assert not report.ok
    # Every bench packet with TCP timestamps (Linux default) loses them in the cut.
    # Not every packet: a RST the kernel sends for a segment that reaches an already
    # closed socket carries no options (seen when a loaded machine delays a segment).
    with_ts = int((read_packets(recording.pcap)["tsval"] >= 0).sum())
    assert with_ts >= report.packets - 2
    assert report.by_field["tsval"] == with_ts
    assert "ts_ns" not in report.by_field and "seq" not in report.by_field


def test_cli_exit_codes(recording, tmp_path, tshark):
    ok = _rstscope("verify", str(recording.pcap))
    assert ok.returncode == 0, ok.stderr
    assert "OK: every compared field matches tshark" in ok.stdout
    shifted = tmp_path / "shifted.pcap"
    subprocess.run(["editcap", "-t", "-1", str(recording.pcap), str(shifted)], check=True,
                   capture_output=True)
    bad = _rstscope("verify", str(recording.pcap), "--against", str(shifted), "--format", "json")
    assert bad.returncode == EXIT_FAIL_ON
    assert '"ok": false' in bad.stdout
    missing = _rstscope("verify", str(tmp_path / "nope.pcap"))
    assert missing.returncode == EXIT_NOINPUT
    assert "Traceback" not in missing.stderr and missing.stderr.strip().count("\n") == 0


def test_without_tshark_one_line_and_exit_69(recording, tmp_path):
    """PATH without tshark: verify names the Debian package; analyze keeps working."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = dict(os.environ, PATH=str(bindir))
    res = _rstscope("verify", str(recording.pcap), env=env)
    assert res.returncode == 69
    assert "apt-get install tshark" in res.stderr
    assert "Traceback" not in res.stderr and res.stderr.strip().count("\n") == 0
    analyzed = _rstscope("analyze", str(recording.pcap), "--format", "json", env=env)
    assert analyzed.returncode == 0, analyzed.stderr
