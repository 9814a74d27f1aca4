"""Stall rows beside the resets in the analyze table (rstscope.findings)."""

from __future__ import annotations

from pathlib import Path

from rstscope.api import analyze
from rstscope.cli import RESET_TABLE, reset_row
from rstscope.findings import finding_rows, stall_row, stalls_summary

SAMPLES = Path(__file__).resolve().parents[1] / "samples"


def test_stall_rows_sit_between_resets_in_time_order() -> None:
    doc = analyze(SAMPLES / "accept-overflow.client.pcap").to_document()
    rows = finding_rows(doc, reset_row)
    assert len(rows) == len(doc["resets"]) + len(doc["stalls"]) == 6
    assert all(len(r) == len(RESET_TABLE) for r in rows)
    origins = [r[6] for r in rows]
    assert origins.count("stall") == 3
    stall = stall_row(doc["stalls"][0])
    assert stall[8].startswith("[accept-overflow] ")
    assert stalls_summary(doc) == "stalls: 3 (accept-overflow 3)"


def test_no_stalls_no_rows_and_no_summary() -> None:
    doc = analyze(SAMPLES / "server-abort.client.pcap").to_document()
    assert len(finding_rows(doc, reset_row)) == len(doc["resets"])
    assert stalls_summary(doc) == ""


def test_report_shows_stalls_beside_the_resets(tmp_path: Path) -> None:
    a = analyze(SAMPLES / "worker-timeout.client.pcap")
    out = a.report(tmp_path / "r.html")
    text = out.read_text()
    assert "Stalls (no RST explains them)" in text and "[total-timeout]" in text
    plain = analyze(SAMPLES / "server-abort.client.pcap").report(tmp_path / "p.html").read_text()
    assert "Stalls (no RST" not in plain
