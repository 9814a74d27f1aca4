"""``rstscope watch --flow/--start/--end`` (issue 14): the same option names and
meaning as ``analyze``, on real traffic in namespaces."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.live.conftest import LiveProc, needs_root
from tests.live.netlab import Net
from tests.live.test_watch import _client_port, _events, _wait_reset

pytestmark = [pytest.mark.root, needs_root]


def test_watch_flow_keeps_that_flow_as_analyze_numbers_it(net: Net, open_dir: Path) -> None:
    from rstscope.api import analyze

    net.start_server()
    live = LiveProc(net, ["watch", "--json", "-i", "eth0", "-w", "w.pcapng", "--flow", "2"],
                    cwd=open_dir)
    live.wait_listening()
    ports = []
    for _ in range(3):  # three connections, each aborted by the server: flows 1, 2, 3
        cli = net.client("abort")
        ports.append(_client_port(net, cli))
        out, err = cli.communicate(timeout=20)
        assert "RESET" in out, err
    _, rst = _wait_reset(live, ports[1])
    time.sleep(1.0)  # the other two verdicts would have settled by now
    assert live.interrupt() == 0, live.err.text
    printed = [d for _, d in _events(live, "reset")]
    assert [d["flow_id"] for d in printed] == [2], printed
    summary = [d for _, d in _events(live, "summary")][0]
    assert summary["resets_by_origin"] == {"server": 1}
    # The id is the one analyze gives that flow in the written capture.
    offline = [r for r in analyze(open_dir / "w.pcapng").reset_records() if r["flow_id"] == 2]
    assert [r["frame"] for r in offline] == [rst["frame"]]
    assert ports[1] in (offline[0]["sport"], offline[0]["dport"])


def test_watch_end_stops_and_start_skips_earlier_packets(net: Net, open_dir: Path) -> None:
    net.start_server()
    end = time.time() + 6
    start = end - 1  # the connection below is over by then: nothing to analyse
    t0 = time.monotonic()
    live = LiveProc(net, ["watch", "--json", "-i", "eth0", "--start", f"{start:.3f}",
                          "--end", f"{end:.3f}"], cwd=open_dir)
    live.wait_listening()
    cli = net.client("abort")
    out, err = cli.communicate(timeout=20)
    assert "RESET" in out, err
    rc = live.proc.wait(timeout=20)  # --end stops it, like --duration
    assert rc == 0, live.err.text
    assert time.monotonic() - t0 < 15
    docs = [json.loads(line) for _, line in list(live.out.items)]
    assert [d["event"] for d in docs if d["event"] == "reset"] == []
    assert docs[-1]["event"] == "summary" and docs[-1]["captured"] > 0


def test_watch_end_in_the_past_is_a_usage_error(net: Net, open_dir: Path) -> None:
    live = LiveProc(net, ["watch", "-i", "eth0", "--end", "2020-01-01T00:00:00"], cwd=open_dir)
    rc = live.proc.wait(timeout=20)
    deadline = time.monotonic() + 5
    while "is in the past" not in live.err.text and time.monotonic() < deadline:
        time.sleep(0.05)  # the reader thread may still be taking the last line
    assert rc == 2, live.err.text
    assert "is in the past" in live.err.text and "Traceback" not in live.err.text
