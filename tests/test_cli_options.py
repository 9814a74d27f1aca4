"""One CLI layer (issue 14): ``report --flow``, ``plot --start/--end`` windowing the
packets drawn, and the one progress bar that ``analyze`` and ``batch`` share.

Real CLI, real samples; the progress bar is checked on a real pseudo-terminal.
"""

from __future__ import annotations

import os
import pty
import re
import select
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SAMPLES
from tests.test_cli import run

MAXCONN = SAMPLES / "haproxy-maxconn.client.pcap"  # 5 flows: resets on 1-3, stalls on 2-5
LLM = SAMPLES / "llm-stream-60s.client.pcap"


def _report(tmp_path: Path, capsys, *args: str) -> tuple[int, str, str]:
    out = tmp_path / "r.html"
    code, stdout, err = run(["report", "-o", str(out), *args], capsys)
    return code, (out.read_text() if out.exists() else ""), err


def test_report_flow_keeps_those_flows(tmp_path, capsys):
    code, page, err = _report(tmp_path, capsys, str(MAXCONN), "--flow", "1")
    assert code == 0, err
    assert "Resets (1)" in page and "Stalls" not in page
    code, page, err = _report(tmp_path, capsys, str(MAXCONN), "--flow", "4", "--flow", "5")
    assert code == 0, err
    assert "Resets (0)" in page
    # The stall table lists flows 4 and 5 only (start, flow, kind, ...).
    flows = re.findall(r"<tr><td>[0-9:.]+</td><td>(\d+)</td>", page)
    assert sorted(flows) == ["4", "5"], flows


def test_report_flow_that_does_not_exist_names_the_flows(tmp_path, capsys):
    code, page, err = _report(tmp_path, capsys, str(MAXCONN), "--flow", "7")
    assert code == 2 and not page
    assert err.strip().splitlines() == [
        f"rstscope: no flow 7 in {MAXCONN}; flows: 1, 2, 3, 4, 5"]


def test_plot_window_draws_only_the_packets_inside_it(tmp_path):
    """--start/--end narrow the packets the timeline draws, not only the verdicts."""
    from rstscope.api import analyze
    from rstscope.plot.select import packets_of_flow

    whole = analyze(LLM)
    first = whole.typed_flows()[0].first_ts_ns
    start = first + 30_000_000_000  # inside the 60 s silence: only the end remains
    windowed = analyze(LLM, start_ns=start)
    pk = packets_of_flow(windowed, windowed.typed_flows()[0].flow_id)
    full = packets_of_flow(whole, 1)
    assert 0 < len(pk) < len(full)
    assert int(pk["ts_ns"].min()) >= start
    # The CLI draws that window (the only reset in it is chosen by default).
    out = tmp_path / "w.svg"
    code = subprocess.run([sys.executable, "-m", "rstscope", "plot", str(LLM), "--start",
                           f"{start / 1e9:.6f}", "-o", str(out)], capture_output=True,
                          text=True, timeout=120)
    assert code.returncode == 0, code.stderr
    assert out.stat().st_size > 1000


def _on_a_terminal(argv: list[str], timeout_s: float = 120) -> tuple[int, str]:
    """Run argv with stderr on a pseudo-terminal (stdout discarded); (exit code, what
    the terminal showed)."""
    master, slave = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=slave, env=env)
    os.close(slave)
    shown = b""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    os.close(master)
    return proc.wait(timeout=30), shown.decode("utf-8", "replace")


def test_analyze_shows_percentage_and_eta_on_a_terminal(shared_dir):
    llc = shared_dir / "captures" / "zeek" / "Traces" / "llc.pcap"
    if not llc.exists():
        pytest.skip("llc.pcap not in shared captures")
    code, shown = _on_a_terminal([sys.executable, "-m", "rstscope", "analyze", str(llc)])
    assert code == 0
    assert re.search(r"\d+%", shown) and "ETA" in shown, shown[-500:]


def test_batch_uses_the_same_progress_bar(tmp_path):
    pytest.importorskip("dask.distributed")
    inputs = tmp_path / "in"
    inputs.mkdir()
    for p in sorted(SAMPLES.glob("*.client.pcap"))[:3]:
        shutil.copy(p, inputs / p.name)
    code, shown = _on_a_terminal([sys.executable, "-m", "rstscope", "batch", str(inputs),
                                  "-o", str(tmp_path / "out"), "--workers", "1"], 300)
    assert code == 0, shown[-1000:]
    # The bar of analyze: description, percentage, "ETA" and the time left.
    assert "inputs" in shown and re.search(r"\d+%", shown) and "ETA" in shown, shown[-800:]
