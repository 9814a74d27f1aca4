"""`rstscope analyze A B --join` end to end: table, JSON, report and plot, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "samples"
A = str(SAMPLES / "proxy-buffering.client.pcap")
B = str(SAMPLES / "proxy-buffering.server.pcap")


def rstscope(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "rstscope", *args], capture_output=True,
                          text=True, timeout=120)


def test_join_table_tells_the_story_then_both_captures() -> None:
    p = rstscope("analyze", A, B, "--join")
    assert p.returncode == 0, p.stderr
    assert "[proxy-buffering]" in p.stdout and "A flow 1 <-> B flow 1" in p.stdout
    assert "== A" in p.stdout and "== B" in p.stdout


def test_join_json_document() -> None:
    p = rstscope("analyze", A, B, "--join", "--format", "json")
    doc = json.loads(p.stdout)
    assert set(doc) == {"schema_version", "join", "a", "b"}
    (pair,) = doc["join"]["pairs"]
    assert pair["how"] == "proxied" and pair["cause_id"] == "proxy-buffering"
    assert doc["a"]["resets"][0]["cause_id"]


def test_join_writes_report_and_stacked_timelines(tmp_path: Path) -> None:
    html = tmp_path / "story.html"
    assert rstscope("analyze", A, B, "--join", "--join-out", str(html)).returncode == 0
    text = html.read_text()
    assert "Two captures of one incident" in text and "data:image/png;base64," in text
    png = tmp_path / "pair.png"
    assert rstscope("analyze", A, B, "--join", "--join-out", str(png)).returncode == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_join_needs_exactly_two_files() -> None:
    p = rstscope("analyze", A, "--join")
    assert p.returncode == 2
    assert p.stderr.count("\n") == 1 and "exactly two" in p.stderr
    p = rstscope("analyze", A, B, "--join", "--join-out", "x.txt")
    assert p.returncode == 2 and "Traceback" not in p.stderr


def test_plot_join_stacks_both_timelines(tmp_path: Path) -> None:
    png = tmp_path / "pair.png"
    p = rstscope("plot", A, B, "--join", "-o", str(png))
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip() == str(png) and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # --flow picks the pair by A's flow id; an unpaired or unknown one is a usage error.
    assert rstscope("plot", A, B, "--join", "--flow", "1", "-o", str(png)).returncode == 0
    p = rstscope("plot", A, B, "--join", "--flow", "9", "-o", str(png))
    assert p.returncode == 2 and "no counterpart" in p.stderr


def test_plot_join_and_plain_plot_argument_counts() -> None:
    p = rstscope("plot", A, "--join")
    assert p.returncode == 2 and "exactly two" in p.stderr
    p = rstscope("plot", A, B)
    assert p.returncode == 2 and "two with --join" in p.stderr


def test_report_join_puts_the_story_on_top(tmp_path: Path) -> None:
    html = tmp_path / "r.html"
    p = rstscope("report", A, B, "--join", "-o", str(html))
    assert p.returncode == 0, p.stderr
    text = html.read_text()
    story = text.index("Two captures of one incident")
    assert story < text.index(Path(A).name, story + 1)
    assert "proxy-buffering" in text and "data:image/png;base64," in text
    p = rstscope("report", A, "--join", "-o", str(html))
    assert p.returncode == 2 and "exactly two" in p.stderr


def test_join_is_one_option_on_analyze_plot_and_report() -> None:
    helps = [rstscope(cmd, "--help").stdout for cmd in ("analyze", "plot", "report")]
    assert all("--join" in h and "two captures of one incident" in h for h in helps)
