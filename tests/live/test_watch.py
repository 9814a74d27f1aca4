"""``rstscope watch`` on real traffic: live verdicts, the file it writes, idle warnings."""

from __future__ import annotations

import json
import math
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.live.conftest import LiveProc, needs_root
from tests.live.netlab import CLIENT, CLIENT6, SERVER, SERVER6, Net

pytestmark = [pytest.mark.root, needs_root]


def _events(live: LiveProc, kind: str) -> list[tuple[float, dict[str, Any]]]:
    out = []
    for arrived, line in list(live.out.items):
        doc = json.loads(line)
        if doc["event"] == kind:
            out.append((arrived, doc))
    return out


def _wait_reset(live: LiveProc, client_port: int, timeout_s: float = 10) -> tuple[float, dict]:
    def is_ours(line: str) -> bool:
        doc = json.loads(line)
        return doc["event"] == "reset" and client_port in (doc["sport"], doc["dport"])
    arrived, line = live.wait_out(is_ours, timeout_s)
    return arrived, json.loads(line)


def _norm(value: Any) -> Any:
    """JSON round trip with NaN as None, so live (printed) and offline records compare."""
    def fix(v: Any) -> Any:
        if isinstance(v, float) and math.isnan(v):
            return None
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        if isinstance(v, list):
            return [fix(x) for x in v]
        return v
    return fix(json.loads(json.dumps(value, default=str)))


def _client_port(net: Net, cli: subprocess.Popen[str]) -> int:
    """The client's ephemeral port of its (only) connection to the server."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        r = net.run("client", ["ss", "-Htn", "dst", SERVER])
        for line in r.stdout.splitlines():
            local = line.split()[3]
            if local.startswith(CLIENT + ":"):
                return int(local.rsplit(":", 1)[1])
        time.sleep(0.02)
    raise AssertionError("client connection not found")


def test_watch_verdicts_live_and_file_analyses_identically(net: Net, open_dir: Path) -> None:
    from rstscope.api import analyze

    net.start_server()
    live = LiveProc(net, ["watch", "--json", "-i", "eth0", "-w", "watch.pcapng"], cwd=open_dir)
    live.wait_listening()

    # 1. The server aborts (SO_LINGER 0): the RST comes from the server's own stack.
    cli = net.client("abort")
    port_abort = _client_port(net, cli)
    out, err = cli.communicate(timeout=20)
    assert "RESET" in out, err
    arrived, rst = _wait_reset(live, port_abort)
    assert (rst["src"], rst["sport"]) == (SERVER, 443)
    assert rst["origin"] == "server" and rst["sender"] == "server-endpoint", rst
    assert arrived - rst["ts"] < 1.0, f"verdict {arrived - rst['ts']:.3f} s after the RST"

    # 2. The firewall in between forges a RST in the server's name (netfilter REJECT).
    cli = net.client("hold")
    assert cli.stdout is not None and cli.stdin is not None
    assert "READY" in cli.stdout.readline()
    port_fw = _client_port(net, cli)
    net.fw_reject(port_fw)
    cli.stdin.write("go\n")
    cli.stdin.flush()
    out, err = cli.communicate(timeout=20)
    assert "RESET" in out, err
    arrived, rst = _wait_reset(live, port_fw)
    assert (rst["src"], rst["dst"], rst["dport"]) == (SERVER, CLIENT, port_fw)
    assert rst["origin"] == "firewall" and rst["sender"] == "middlebox", rst
    assert rst["ttl"] == 128  # the fw's own initial TTL, zero hops from the client
    assert arrived - rst["ts"] < 1.0, f"verdict {arrived - rst['ts']:.3f} s after the RST"

    # Ctrl-C: summary, exit 0, and a capture file tshark reads.
    assert live.interrupt() == 0, live.err.text
    summary = [d for _, d in _events(live, "summary")]
    assert len(summary) == 1 and summary[0]["resets_by_origin"] == {"server": 1, "firewall": 1}
    path = open_dir / "watch.pcapng"
    r = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.flags.reset==1", "-T", "fields",
                        "-e", "frame.number"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    live_resets = sorted((d for _, d in _events(live, "reset")), key=lambda d: d["frame"])
    assert [str(d["frame"]) for d in live_resets] == r.stdout.split()
    assert summary[0]["written"] == summary[0]["captured"]

    # The file analyses offline to exactly the verdicts printed live.
    offline = [_norm(rec.to_dict()) for rec in analyze(path).tracker.resets()]
    printed = [_norm({k: v for k, v in d.items() if k not in ("event", "reported_ts")})
               for d in live_resets]
    assert printed == sorted(offline, key=lambda d: d["frame"])


def test_idle_warning_from_a_site_timeout(net: Net, open_dir: Path) -> None:
    table = open_dir / "site-timeouts.csv"
    table.write_text(
        "product,category,setting,default_s,expiry_behaviour,full_proxy,source\n"
        "Site edge firewall,firewall,tcp idle timeout,3,rst-next-packet,no,ops wiki\n")
    net.start_server()
    live = LiveProc(net, ["watch", "--json", "-i", "eth0", "--timeouts", str(table),
                          "--idle-warn-min", "2"], cwd=open_dir)
    live.wait_listening()
    cli = net.client("hold")
    assert cli.stdout is not None
    assert "READY" in cli.stdout.readline()
    quiet_since = time.time()
    # No packets flow now: only the wall-clock tick can notice the silence.
    arrived, line = live.wait_out(lambda s: json.loads(s)["event"] == "idle-warning")
    warning = json.loads(line)
    assert any("Site edge firewall" in c for c in warning["candidates"]), warning
    # 90 % of 3 s, plus at most a tick and the report: early, before the timeout hits.
    assert 2.0 <= warning["idle_s"] < 3.0
    assert arrived - quiet_since < 3.0
    assert live.interrupt() == 0


def test_watch_flow_state_bounded(net: Net, open_dir: Path) -> None:
    net.start_server()
    live = LiveProc(net, ["watch", "--json", "-i", "eth0", "--max-flows", "2"], cwd=open_dir)
    live.wait_listening()
    for _ in range(5):
        out, _ = net.client("chatter 2").communicate(timeout=20)
        assert "EOF" in out
    time.sleep(0.5)
    assert live.interrupt() == 0, live.err.text
    evicted = _events(live, "flow-evicted")
    summary = _events(live, "summary")[0][1]
    # Five flows seen, at most two kept in memory: the rest were evicted (and counted).
    assert summary["flows"] == 5
    assert len(evicted) >= 3, live.out.text


def test_watch_rotating_files_analyse_like_live(net: Net, open_dir: Path) -> None:
    from rstscope.api import analyze

    net.start_server()
    live = LiveProc(net, ["watch", "--json", "-i", "eth0", "-w", "rw.pcap", "--format", "pcap",
                          "-C", "3k"], cwd=open_dir)
    live.wait_listening()
    out, _ = net.client("chatter 20").communicate(timeout=20)
    assert "EOF" in out
    out, _ = net.client("abort").communicate(timeout=20)
    assert "RESET" in out
    live.wait_out(lambda s: json.loads(s)["event"] == "reset")
    assert live.interrupt() == 0, live.err.text
    summary = _events(live, "summary")[0][1]
    files = [Path(open_dir, f) for f in summary["files"]]
    assert len(files) >= 3
    printed = [_norm({k: v for k, v in d.items() if k not in ("event", "reported_ts")})
               for _, d in _events(live, "reset")]
    assert len(printed) == 1 and printed[0]["file_id"] > 0  # the RST is in a later file
    # Read as one stream, the rotated files give the verdicts printed live, with the
    # same (file_id, frame) coordinates.
    offline = [_norm(r.to_dict()) for r in analyze(files).tracker.resets()]
    assert printed == offline


def test_watch_ipv6_server_abort(net: Net, open_dir: Path) -> None:
    net.start_server()
    live = LiveProc(net, ["watch", "--json", "-i", "eth0"], cwd=open_dir)
    live.wait_listening()
    out, err = net.client("abort", server=SERVER6).communicate(timeout=20)
    assert "RESET" in out, err
    arrived, line = live.wait_out(lambda s: json.loads(s)["event"] == "reset")
    rst = json.loads(line)
    assert (rst["src"], rst["sport"], rst["dst"]) == (SERVER6, 443, CLIENT6)
    assert rst["origin"] == "server" and rst["sender"] == "server-endpoint", rst
    assert rst["ttl"] == 63  # hop limit 64, one router (fw) on the way
    assert arrived - rst["ts"] < 1.0
    assert live.interrupt() == 0
