"""Stalls beside the resets: the analyze table's block and the report (rstscope.findings)."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema

from rstscope.api import analyze
from rstscope.findings import render_stalls, stalls_summary
from rstscope.table import render
from tests.conftest import ANALYZE_SCHEMA, SAMPLES


def _table(name: str, width: int = 80) -> str:
    out = io.StringIO()
    render(analyze(SAMPLES / name).to_document(), out, width=width)
    return out.getvalue()


def test_table_shows_stalls_after_the_resets() -> None:
    # A wide terminal has room for the full sentences...
    text = _table("accept-overflow.client.pcap", width=300)
    resets_at, stalls_at = text.index("Overload at accept: the handshake"), text.index("stalls: 3")
    assert resets_at < stalls_at
    assert text.count("[accept-overflow] (request-unanswered, end: fin)") == 3
    # ...80 columns says them in a few words (with the silence), never cut; a reset's
    # cause gives way to the fewest words so what is sure and its alternative fit.
    text = _table("accept-overflow.client.pcap")
    resets_at = text.index("overload: accept queue full [sure: the server's side] "
                           "[or: load-balancer]")
    stalls_at = text.index("stalls: 3")
    assert resets_at < stalls_at
    assert text.count("[accept-overflow] no app answered for 2.0 s") == 3
    assert all(len(line) <= 80 and not line.endswith("...") for line in text.splitlines())


def test_table_shows_stalls_without_any_reset() -> None:
    text = _table("worker-timeout.client.pcap")
    assert "resets: 0" in text and "stalls: 1 (total-timeout 1)" in text
    assert "-> raise the total-time limit" in text


def test_no_stalls_no_block() -> None:
    doc = analyze(SAMPLES / "server-abort.client.pcap").to_document()
    out = io.StringIO()
    render_stalls(doc, out, limit=80)
    assert out.getvalue() == "" and stalls_summary(doc) == ""
    assert "stalls" not in _table("server-abort.client.pcap")


def test_wide_stall_line_is_one_uncut_line() -> None:
    doc = analyze(SAMPLES / "worker-timeout.client.pcap").to_document()
    out = io.StringIO()
    render_stalls(doc, out, limit=80, wide=True)
    (line,) = [x for x in out.getvalue().splitlines() if "stall" in x and "|" in x]
    assert "[total-timeout]" in line and "-> raise" in line


def test_report_shows_stalls_beside_the_resets(tmp_path: Path) -> None:
    a = analyze(SAMPLES / "worker-timeout.client.pcap")
    out = a.report(tmp_path / "r.html")
    text = out.read_text()
    assert "Stalls (no RST explains them)" in text and "[total-timeout]" in text
    plain = analyze(SAMPLES / "server-abort.client.pcap").report(tmp_path / "p.html").read_text()
    assert "Stalls (no RST" not in plain


def _validated_json(*names: str) -> dict[str, Any]:
    """``rstscope analyze --format json`` of these samples (its own process, as a user
    runs it), checked against the shipped schema."""
    out = subprocess.run([sys.executable, "-m", "rstscope", "analyze", "--format", "json",
                          *(str(SAMPLES / n) for n in names)],
                         capture_output=True, text=True, check=True).stdout
    doc: dict[str, Any] = json.loads(out)
    jsonschema.validate(doc, ANALYZE_SCHEMA)
    return doc


def test_json_envelope_with_stalls_validates_against_the_shipped_schema() -> None:
    doc = _validated_json("accept-overflow.client.pcap", "worker-timeout.client.pcap")
    assert len(doc["stalls"]) == 4 and {s["file"] for s in doc["stalls"]} == {
        str(SAMPLES / "accept-overflow.client.pcap"), str(SAMPLES / "worker-timeout.client.pcap")}
    assert all(r["cause_id"] == "accept-overflow" for r in doc["resets"])


def test_new_stall_kind_and_cause_alternatives_validate_against_the_schema() -> None:
    # Issue 17: the receiver's view of a black hole (kind data-hole) and a verdict that
    # names the cause it cannot rule out (cause_alternatives) are in the schema.
    doc = _validated_json("pmtu-blackhole.client.pcap", "proxy-buffering.client.pcap")
    assert [s["kind"] for s in doc["stalls"]] == ["data-hole"]
    alts = {r["cause_id"]: r["cause_alternatives"] for r in doc["resets"]}
    assert alts == {"pmtu-blackhole": [], "proxy-buffering": ["idle-timeout"]}
