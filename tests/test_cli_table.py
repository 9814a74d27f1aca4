"""The verdict a person reads (issue 14): the 80-column table, the action line,
one JSON shape, and the README example.

Every check runs the real CLI on real captures (the committed lab samples and
the shared public captures); nothing is mocked.
"""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from tests.conftest import ANALYZE_SCHEMA, SAMPLES
from tests.test_cli import run

REPO = Path(__file__).resolve().parent.parent
SAMPLE_PCAPS = sorted(SAMPLES.glob("*.pcap"))
LLM = SAMPLES / "llm-stream-60s.client.pcap"
L4LB = SAMPLES / "l4lb-idle-expiry.client.pcap"
POLICY = SAMPLES / "fw-policy-reject.client.pcap"


def _long_lines(out: str, width: int) -> list[str]:
    return [ln for ln in out.splitlines() if len(ln) > width]


def _cut_findings(out: str) -> list[str]:
    """Detail and action lines (indented) that were cut: they end in an ellipsis."""
    return [ln for ln in out.splitlines()
            if ln.startswith("    ") and ln.rstrip().endswith(("...", "\u2026"))]


def _findings(out: str) -> list[tuple[str, str, str]]:
    """(row, detail, action) of every reset and stall in a table at 80 columns."""
    lines = out.splitlines()
    return [(lines[i - 2], lines[i - 1], ln) for i, ln in enumerate(lines)
            if ln.startswith("    -> ")]


def test_every_sample_fits_80_columns_in_three_lines_per_reset(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    for cap in SAMPLE_PCAPS:
        code, out, err = run(["analyze", str(cap)], capsys)
        assert code == 0, (cap.name, err)
        assert not _long_lines(out, 80), (cap.name, _long_lines(out, 80))
        n = json.loads(run(["analyze", "--format", "json", str(cap)], capsys)[1])["summary"]["resets"]
        # The stall block (issue 17) follows the resets; these checks are about resets.
        table = out.split("\n\nstalls: ", 1)[0].split("\ntimes: ", 1)
        if n:
            # header line + column header + 3 lines per reset, nothing else.
            assert len(table[1].splitlines()) == 2 + 3 * n, (cap.name, table[1])


def test_every_shared_capture_fits_80_columns(shared_captures, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    checked = 0
    for cap in shared_captures:
        code, out, err = run(["analyze", str(cap)], capsys)
        if code in (65, 66):  # not a capture rstscope reads (said in one line)
            assert len(err.strip().splitlines()) == 1, (cap.name, err)
            continue
        assert code == 0, (cap.name, err)
        assert not _long_lines(out, 80), (cap.name, _long_lines(out, 80)[:3])
        # The cause and the action are said whole, never cut with an ellipsis.
        assert not _cut_findings(out), (cap.name, _cut_findings(out)[:3])
        checked += 1
    assert checked >= 100


def test_every_sample_action_and_cause_line_is_whole_at_80_columns(capsys, monkeypatch):
    """At 80 columns every reset and stall has an action line that is not cut, and a
    cause line that is not cut and, for a timeout, still gives the silence."""
    monkeypatch.setenv("COLUMNS", "80")
    for cap in SAMPLE_PCAPS:
        _, out, _ = run(["analyze", str(cap)], capsys)
        doc = json.loads(run(["analyze", "--format", "json", str(cap)], capsys)[1])
        findings = _findings(out)
        assert len(findings) == len(doc["resets"]) + len(doc["stalls"]), cap.name
        assert not _cut_findings(out), (cap.name, _cut_findings(out))
        for (_, detail, action), r in zip(findings, doc["resets"], strict=False):
            assert len(action) > len("    -> ") + 20, (cap.name, action)
            if r["cause_id"] in ("idle-timeout", "keepalive-race") and r["silence_s"]:
                shown = f"{r['silence_s']:.1f} s" if r["silence_s"] >= 1 else f"{r['silence_s']:.3f} s"
                assert shown in detail, (cap.name, detail)
        for r in doc["resets"] + doc["stalls"]:
            # The one-line action is in the JSON too, beside the full advice.
            assert r["action"] and len(r["action"]) <= 73, (cap.name, r["action"])


def test_action_line_says_what_and_where(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    _, out, _ = run(["analyze", str(LLM)], capsys)
    assert "    -> raise nginx proxy_read_timeout above 60 s, or send data every < 48 s" in out
    _, out, _ = run(["analyze", str(L4LB)], capsys)
    action = _findings(out)[0][2]
    assert "idle timeout of the load balancer" in action and "hop" in action, action
    _, out, _ = run(["analyze", str(POLICY)], capsys)
    action = _findings(out)[0][2]
    assert "firewall" in action and "hop" in action, action
    # A wide terminal has room for the full advice (the JSON's advice[0]).
    monkeypatch.setenv("COLUMNS", "200")
    _, out, _ = run(["analyze", str(LLM)], capsys)
    advice = json.loads(run(["analyze", "--format", "json", str(LLM)], capsys)[1])["resets"][0]["advice"]
    assert f"    -> {advice[0]}" in out
    # --wide: one line per reset, with the full cause and advice whatever the width.
    monkeypatch.setenv("COLUMNS", "80")
    _, out, _ = run(["analyze", "--wide", str(LLM)], capsys)
    assert out.rstrip().endswith(f"| -> {advice[0]}"), out


def test_every_action_wording_fits_the_action_line():
    from rstscope.core.wording import ACTION_MAX_CHARS, EVERYDAY_ACTIONS

    assert 7 + ACTION_MAX_CHARS == 80
    assert all(len(a) <= ACTION_MAX_CHARS for a in EVERYDAY_ACTIONS.values()), EVERYDAY_ACTIONS


def test_every_sample_verdict_has_an_action_line(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    for cap in SAMPLE_PCAPS:
        _, out, _ = run(["analyze", "--format", "json", str(cap)], capsys)
        for r in json.loads(out)["resets"]:
            assert r["advice"], (cap.name, r["frame"], r["cause"])
            assert len(r["advice"][0]) > 20
        _, table, _ = run(["analyze", str(cap)], capsys)
        rows = table.split("\n\nstalls: ", 1)[0].split("\ntimes: ", 1)[-1].splitlines()[2:]
        assert all(ln.startswith("    -> ") for ln in rows[2::3]), (cap.name, rows)


def test_idle_expiry_cause_states_the_silence():
    for cap in ("fw-idle-expiry-client-next.client.pcap", "l4lb-idle-expiry.client.pcap"):
        from rstscope.api import analyze

        r = analyze(SAMPLES / cap).to_document()["resets"][0]
        assert "after 4.5 s of silence" in r["cause"], r["cause"]
        assert r["advice"][0].startswith("send keepalives (or SSE comments) more often than")


def test_wide_terminal_uses_the_room_and_wide_flag_gives_one_line(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    _, out, _ = run(["analyze", str(LLM)], capsys)
    assert "frame" in out and "TTL (exp)" in out
    assert "proxy_read_timeout" in out  # the action line is not cut at 200 columns
    monkeypatch.setenv("COLUMNS", "80")
    _, out, _ = run(["analyze", "--wide", str(LLM)], capsys)
    row = [ln for ln in out.splitlines() if ln.startswith("07:41:25.626")]
    assert len(row) == 1 and "-> raise nginx proxy_read_timeout" in row[0]


def test_row_has_addresses_utc_date_and_sorted_times(capsys, monkeypatch, shared_dir):
    monkeypatch.setenv("COLUMNS", "80")
    _, out, _ = run(["analyze", str(LLM)], capsys)
    assert "times: UTC 2026-11-27" in out
    assert "192.0.2.2:60986 -> 198.51.100.10:443" in out
    pop3 = shared_dir / "captures" / "zeek" / "Traces" / "pop3" / "pop3.pcap"
    if not pop3.exists():
        pytest.skip("pop3.pcap not in shared captures")
    _, out, _ = run(["analyze", "--format", "jsonl", str(pop3)], capsys)
    frames = [json.loads(x)["frame"] for x in out.splitlines()]
    ts = [json.loads(x)["ts_ns"] for x in out.splitlines()]
    assert ts == sorted(ts) and frames == sorted(frames)


def test_local_time_is_labelled(capsys, monkeypatch):
    monkeypatch.setenv("TZ", "Asia/Kolkata")
    import time

    time.tzset()
    try:
        _, out, _ = run(["analyze", "-t", "local", str(LLM)], capsys)
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()
    assert "times: IST 2026-11-27" in out
    assert "13:11:25.626" in out  # 07:41:25.626 UTC + 5:30


def test_min_confidence_says_unknown_with_best_guess_and_fail_on_respects_it(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    # The REJECT verdict carries 0.48 (issue 13 weighs the kind of box): below 0.5 it
    # reads "unknown" and keeps the classifier's answer as the best guess.
    code, out, _ = run(["analyze", "--min-confidence", "0.5", str(POLICY)], capsys)
    assert "unknown (best guess: firewall)" in out
    assert "resets: 1 (unknown 1)" in out
    assert run(["analyze", "--min-confidence", "0.5", "--fail-on", "firewall", str(POLICY)],
               capsys)[0] == 0
    assert run(["analyze", "--min-confidence", "0.5", "--fail-on", "unknown", str(POLICY)],
               capsys)[0] == 1
    code, out, _ = run(["analyze", "--min-confidence", "0.3", "--fail-on", "firewall",
                        str(POLICY)], capsys)
    assert code == 1 and "resets: 1 (firewall 1)" in out


def test_csv_has_alternatives_best_guess_and_action(capsys):
    import csv

    _, out, _ = run(["analyze", "--format", "csv", "--min-confidence", "0.5", str(L4LB)], capsys)
    row = next(csv.DictReader(io.StringIO(out)))
    assert row["origin"] == "unknown" and row["best_guess"] == "load-balancer"
    # action: the one line the table prints; advice: the full form, first line first.
    assert row["alternatives"] and row["advice"].startswith("send keepalives")
    assert row["action"].startswith("raise the idle timeout of the load balancer")
    assert row["sure"] == "sure: a box on the path made it, not the server"


def test_json_has_one_shape_for_one_and_two_files(capsys):
    import jsonschema

    _, one, _ = run(["analyze", "--format", "json", str(LLM)], capsys)
    _, two, _ = run(["analyze", "--format", "json", str(LLM), str(L4LB)], capsys)
    d1, d2 = json.loads(one), json.loads(two)
    jsonschema.validate(d1, ANALYZE_SCHEMA)
    jsonschema.validate(d2, ANALYZE_SCHEMA)

    def shape(v: object) -> object:
        if isinstance(v, dict):
            return {k: shape(x) for k, x in v.items()}
        if isinstance(v, list):
            return [shape(v[0])] if v else []
        return type(v).__name__ if v is not None else None

    assert set(d1) == set(d2)
    assert shape(d1["summary"]) == shape(d2["summary"])
    assert shape(d1["resets"][0]) == shape(d2["resets"][0])
    assert [r["file"] for r in d2["resets"]] == [str(LLM), str(L4LB)]
    assert d2["summary"]["files"] == 2 and d2["summary"]["resets"] == 2


def test_stack_and_stated_timeouts_name_the_right_suspect(tmp_path, capsys):
    _, out, _ = run(["analyze", "--format", "json", str(LLM)], capsys)
    r = json.loads(out)["resets"][0]
    # Ranked by how common the product is in front of HTTPS APIs, not alphabetically.
    assert r["advice"][0].startswith("raise nginx proxy_read_timeout")
    assert r["timeout_candidates"][0].startswith("60 s: nginx")
    _, out, _ = run(["analyze", "--format", "json", "--stack", "aws", str(LLM)], capsys)
    assert "AWS Application Load Balancer" in json.loads(out)["resets"][0]["advice"][0]
    mine = tmp_path / "mine.csv"
    mine.write_text("product,category,setting,default_s,expiry_behaviour,full_proxy\n"
                    "our edge proxy,proxy,read_timeout,60,http-error-then-close,yes\n")
    for cmd in (["analyze", "--format", "json"],):
        _, out, err = run([*cmd, "--timeouts", str(mine), str(LLM)], capsys)
        assert json.loads(out)["resets"][0]["advice"][0].startswith(
            "raise our edge proxy read_timeout"), err


def test_summary_groups_resets(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "80")
    storm = SAMPLES / "dpi-inject-storm.client.pcap"
    code, out, _ = run(["analyze", "--summary", str(storm)], capsys)
    assert code == 0
    assert out.splitlines()[0] == "3 resets in 2 groups (silence s: p50/p90/max)" or \
        out.splitlines()[0].startswith("3 resets in ")
    assert not _long_lines(out, 80)
    _, out, _ = run(["analyze", "--summary", "--format", "jsonl", str(storm)], capsys)
    groups = [json.loads(x) for x in out.splitlines()]
    assert sum(g["count"] for g in groups) == 3
    assert {"silence_p50_s", "silence_p90_s", "silence_max_s", "server"} <= set(groups[0])


def test_flows_table_uses_zeek_names(tmp_path, capsys):
    code, out, _ = run(["analyze", "--flows", str(LLM)], capsys)
    assert code == 0
    header = out.splitlines()[0].split(",")
    assert header[:7] == ["ts", "file", "flow_id", "id.orig_h", "id.orig_p", "id.resp_h",
                          "id.resp_p"]
    assert "conn_state" in header and "history" in header
    assert out.splitlines()[1].split(",")[3] == "192.0.2.2"
    pq = tmp_path / "flows.parquet"
    assert run(["analyze", "--flows", "--format", "parquet", "-o", str(pq), str(LLM)],
               capsys)[0] == 0
    import pandas as pd

    assert pd.read_parquet(pq)["conn_state"].tolist() == ["RSTR"]


def test_read_flag_and_time_window(capsys):
    _, a, _ = run(["analyze", "--format", "json", str(LLM)], capsys)
    _, b, _ = run(["analyze", "--format", "json", "-r", str(LLM)], capsys)
    assert json.loads(a)["resets"] == json.loads(b)["resets"]
    _, out, _ = run(["analyze", "--format", "json", "--start", "2026-11-27T07:41:00",
                     "--end", "2026-11-27T07:41:20", str(LLM)], capsys)
    assert json.loads(out)["summary"]["resets"] == 0
    _, out, _ = run(["analyze", "--format", "json", "--start", "2026-11-27T07:41:20Z",
                     str(LLM)], capsys)
    assert json.loads(out)["summary"]["resets"] == 1


@pytest.mark.parametrize("argv, needle", [
    (["--port", "99999"], "99999"),
    (["--host", "192.0.2.0/33"], "192.0.2.0/33"),
    (["--host", "not a host!"], "not a host!"),
    (["--flow", "7"], "flows: 1"),
    (["--flow", "0"], "0"),
    (["--start", "yesterday"], "yesterday"),
    (["--start", "2026-11-28", "--end", "2026-11-27"], "not after"),
    (["--stack", "nginx,nosuch"], "nosuch"),
])
def test_bad_input_is_one_line_and_exit_2(argv, needle, capsys):
    code, out, err = run(["analyze", *argv, str(LLM)], capsys)
    assert code == 2, err
    assert needle in err and "Traceback" not in err
    assert len([ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("Usage:", "Try "))]) == 1, err


def test_host_takes_cidr_and_names(capsys):
    _, out, _ = run(["analyze", "--format", "json", "--host", "198.51.100.0/24", str(LLM)], capsys)
    assert json.loads(out)["summary"]["resets"] == 1
    _, out, _ = run(["analyze", "--format", "json", "--host", "203.0.113.0/24", str(LLM)], capsys)
    assert json.loads(out)["summary"]["resets"] == 0
    code, out, err = run(["analyze", "--format", "json", "--host", "localhost", str(LLM)], capsys)
    assert code == 0, err
    assert json.loads(out)["summary"]["resets"] == 0


def test_vantage_contradicting_the_ttls_warns(capsys):
    code, out, err = run(["analyze", "--vantage", "server", str(LLM)], capsys)
    assert code == 0
    assert "--vantage server contradicts the TTLs" in err
    assert "warning: --vantage server contradicts" in out


def test_exit_code_epilog_comes_from_errors():
    from rstscope import errors
    from rstscope.cliopts import exit_codes_epilog

    text = exit_codes_epilog()
    for name in dir(errors):
        if name.startswith("EXIT_"):
            assert re.search(rf"\b{getattr(errors, name)} ", text), name


def _readme_example() -> tuple[str, str]:
    text = (REPO / "README.md").read_text()
    m = re.search(r"```console\n\$ (COLUMNS=80 rstscope analyze [^\n]+)\n(.*?)```", text, re.S)
    assert m, "README must show an `analyze` example in a ```console block"
    return m.group(1), m.group(2)


def test_readme_example_matches_real_output(capsys, monkeypatch):
    cmd, shown = _readme_example()
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.chdir(REPO)
    args = cmd.split()[2:]
    code, out, _ = run(args, capsys)
    assert code == 0
    assert out == shown


def test_docs_show_the_new_table(capsys, monkeypatch):
    cmd, shown = _readme_example()
    usage = (REPO / "docs" / "usage.md").read_text()
    assert shown in usage, "docs/usage.md should show the same table as the README"


def test_keylog_on_a_snaplen_cut_capture_warns(capsys):
    nginx = REPO / "samples" / "nginx-proxy-timeout.client.pcap"
    keylog = REPO / "samples" / "nginx-proxy-timeout.keylog"
    code, _, err = run(["analyze", "--keylog", str(keylog), str(nginx)], capsys)
    assert code in (0, 69), err  # 69: tshark missing; the warning comes first anyway
    assert "snaplen 128 bytes cuts TLS records" in err
    from rstscope.enrich.snaplen import declared_snaplen

    assert declared_snaplen(nginx) == 128


def test_progress_reports_the_share_read(shared_dir):
    from rstscope.api import analyze

    llc = shared_dir / "captures" / "zeek" / "Traces" / "llc.pcap"
    seen: list[float | None] = []
    analyze(llc, progress_fraction=seen.append, batch_size=500)
    assert len(seen) >= 2 and all(s is not None and 0 < s <= 1 for s in seen)
    assert seen == sorted(seen)  # type: ignore[type-var]
    streamed: list[float | None] = []
    with open(llc, "rb") as fh:
        analyze(fh, progress_fraction=streamed.append)
    assert streamed and all(s is None for s in streamed)  # size unknown: no percentage


def test_live_port_and_host_become_the_kernel_filter():
    from rstscope.cliopts import bpf_of

    assert bpf_of([443, 8443], ["192.0.2.0/24", "2001:db8::1"]) == (
        "(port 443 or port 8443) and (net 192.0.2.0/24 or net 2001:db8::1/128)")
    assert bpf_of([], []) == ""


def test_detail_line_shows_where_on_the_path_when_known():
    from rstscope.table import detail_text

    r = {"cause": "A firewall reset it.", "sender": "middlebox", "direction": "resp",
         "path_position": "2 hops from the client", "alternatives": [["server", "maybe"]]}
    text = detail_text(r)
    assert text.startswith("A firewall reset it. [sure: a box on the path made it, not the server]")
    assert "[made at: 2 hops from the client]" in text and "[or: server (maybe)]" in text


def test_time_at_the_edge_of_the_calendar_is_a_usage_error(capsys):
    # Found by the property test: local time of year 1 overflowed inside datetime.
    code, _, err = run(["analyze", "--end", "0001-01-01", "-t", "local", str(LLM)], capsys)
    assert code == 2 and "out of range" in err


def test_every_readme_console_example_matches_real_output(capsys, monkeypatch):
    # Issue 17: the README shows new causes (keep-alive race, the joined story); each
    # console block's lines must come out of the real command, in order ("..."
    # stands for lines left out).
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```console\n\$ ((?:COLUMNS=80 )?rstscope [^\n]+)\n(.*?)```", text, re.S)
    assert len(blocks) >= 3
    monkeypatch.setenv("COLUMNS", "80")
    monkeypatch.chdir(REPO)
    for cmd, shown in blocks:
        args = cmd.split()[cmd.split().index("rstscope") + 1:]
        code, out, _ = run(args, capsys)
        assert code == 0, cmd
        lines = out.splitlines()
        at = 0
        for want in (ln for ln in shown.splitlines() if ln != "..."):
            assert want in lines[at:], (cmd, want)
            at = lines.index(want, at) + 1


def test_refined_verdicts_keep_whole_lines_at_80_columns(capsys, monkeypatch):
    """--enrich rewords a verdict (context_rule): its short cause and action are its own,
    not the core's, and still fit."""
    import shutil

    from rstscope.textfit import REFINED, TINY_REFINED

    assert all(len(c) <= 76 and len(a) <= 73 for c, a in REFINED.values()), REFINED
    if shutil.which("tshark") is None:
        pytest.skip("--enrich needs tshark")
    monkeypatch.setenv("COLUMNS", "80")
    for name, rule in (("client-read-timeout-graceful", "data-after-close"),
                       ("keepalive-race-fin-first", "stale-reuse"),
                       ("llm-stream-60s", "encrypted-alert")):
        cap = SAMPLES / f"{name}.client.pcap"
        code, out, err = run(["analyze", "--enrich", str(cap)], capsys)
        assert code == 0, err
        assert not _cut_findings(out) and not _long_lines(out, 80), (name, out)
        _, detail, action = _findings(out)[0]
        short_cause, short_action = REFINED[rule]
        doc = json.loads(run(["analyze", "--enrich", "--format", "json", str(cap)], capsys)[1])
        rec = doc["resets"][0]
        assert rec["context_rule"] == rule
        # The fewest words (TINY_REFINED) when what is sure and the first alternative
        # need the room beside it.
        assert detail.strip().startswith((short_cause, rec["cause"], TINY_REFINED[rule])), (
            name, detail)
        assert "[sure: " in detail, (name, detail)
        assert action in (f"    -> {rec['advice'][0]}", f"    -> {short_action}"), (name, action)


def _sure_and_alternative_missing(out: str, resets: list[dict]) -> list[tuple[str, str]]:
    """(problem, detail line) for every reset whose 80-column detail line lacks what is
    sure or its first alternative (origin and cause), or is cut or too long."""
    from rstscope.table import sort_resets

    details = [d for _, d, _ in _findings(out)][:len(resets)]
    assert len(details) == len(resets)
    missing = []
    for r, d in zip(sort_resets(resets), details, strict=True):
        if len(d) > 80 or d.rstrip().endswith("..."):
            missing.append(("cut", d))
        if "[sure: " not in d:
            missing.append(("sure", d))
        alts = r["alternatives"]
        if alts and f"[or: {alts[0][0]}" not in d:
            missing.append(("alternative", d))
        if any(c not in d.split("[or: ", 1)[-1] for c in r["cause_alternatives"][:1]):
            missing.append(("cause alternative", d))
    return missing


def test_every_reset_says_what_is_sure_and_its_first_alternative_at_80_columns(
        shared_captures, capsys, monkeypatch):
    """Issue 14, item 3: on every sample and shared capture at 80 columns, each reset's
    detail line says what is sure ("[sure: nothing]" when nothing is) and its first
    alternative, whole, in three lines per reset."""
    monkeypatch.setenv("COLUMNS", "80")
    checked = 0
    for cap in [*SAMPLE_PCAPS, *shared_captures]:
        code, out, _ = run(["analyze", str(cap)], capsys)
        if code in (65, 66):  # not a capture rstscope reads (said in one line)
            continue
        assert code == 0, cap.name
        resets = json.loads(run(["analyze", "--format", "json", str(cap)], capsys)[1])["resets"]
        assert not _long_lines(out, 80), (cap.name, _long_lines(out, 80)[:3])
        assert not _sure_and_alternative_missing(out, resets), (
            cap.name, _sure_and_alternative_missing(out, resets)[:3])
        checked += len(resets)
    assert checked >= 1000


def test_sure_and_alternative_fit_when_min_confidence_hides_the_guess(capsys, monkeypatch):
    # Below a raised --min-confidence the best guess needs room too: what is sure and
    # the first alternative still show, whole.
    monkeypatch.setenv("COLUMNS", "80")
    for cap in (LLM, L4LB, POLICY, SAMPLES / "proxy-buffering.client-any.pcap"):
        _, out, _ = run(["analyze", "--min-confidence", "0.99", str(cap)], capsys)
        resets = json.loads(run(["analyze", "--format", "json", str(cap)], capsys)[1])["resets"]
        assert not _long_lines(out, 80), (cap.name, out)
        assert not _sure_and_alternative_missing(out, resets), (cap.name, out)


def test_fewest_words_leave_room_for_sure_and_the_first_alternative():
    """The word tables themselves: a cause's fewest words with a four-figure silence, the
    fewest words of what is sure and the longest first alternative fit 76 characters."""
    from rstscope.textfit import SURE_WORDS, TINY_CAUSES, TINY_MAX_CHARS, TINY_REFINED

    for side in ("client", "server"):
        assert all(len(f"[{w[-1].format(side=side)}]") <= 25 for w in SURE_WORDS.values())
        for text in [*TINY_CAUSES.values(), *TINY_REFINED.values()]:
            tiny = text.format(side=side, silence="999.9 s")
            assert len(tiny) <= TINY_MAX_CHARS, tiny
    assert TINY_MAX_CHARS + 2 + 25 + len("[or: load-balancer]") == 76


def test_sure_says_nothing_without_a_packet_of_the_sender_to_compare(capsys):
    # fw-policy-reject: the server never answered, so no packet of its own tells its
    # TTL or IP ID: the REJECT's sender is a guess (the server stays the first
    # alternative), and the record must not claim "a box on the path made it".
    import csv

    _, out, _ = run(["analyze", "--format", "csv", str(POLICY)], capsys)
    row = next(csv.DictReader(io.StringIO(out)))
    assert row["sure"].startswith("sure: nothing (no packet of the server's")
    assert row["alternatives"].startswith("server: ")
    _, out, _ = run(["analyze", "--format", "csv", str(SAMPLES / "proxy-buffering.client-any.pcap")],
                    capsys)
    row = next(csv.DictReader(io.StringIO(out)))
    assert (row["cause_id"], row["cause_alternatives"]) == ("proxy-buffering", "idle-timeout")


def test_summary_fits_80_columns_whole(shared_captures, capsys, monkeypatch):
    """--summary at 80 columns: no line longer, no cause or action cut (the shared
    captures, 20 to a run, and the samples)."""
    monkeypatch.setenv("COLUMNS", "80")
    groups = [[str(p) for p in SAMPLE_PCAPS]] + [
        [str(p) for p in shared_captures[i:i + 20]] for i in range(0, len(shared_captures), 20)]
    checked = 0
    for files in groups:
        code, out, err = run(["analyze", "--summary", *files], capsys)
        if code != 0:  # a file rstscope does not read: one line, as analyze says it
            assert code in (65, 66) and len(err.strip().splitlines()) == 1, err
            continue
        assert not _long_lines(out, 80), _long_lines(out, 80)[:3]
        assert not [ln for ln in out.splitlines() if ln.endswith("...")], out
        checked += 1
    assert checked >= 5


def test_summary_says_what_is_sure_and_the_first_alternative(capsys, monkeypatch):
    """Each group's cause line carries what is sure and its members' most common first
    alternative, as the reset table does, within 80 columns; --wide says them in full."""
    monkeypatch.setenv("COLUMNS", "80")
    files = [str(SAMPLES / "l4lb-idle-expiry.client.pcap"),
             str(SAMPLES / "proxy-buffering.client-any.pcap")]
    code, out, _ = run(["analyze", "--summary", *files], capsys)
    assert code == 0 and not _long_lines(out, 80)
    lines = out.splitlines()
    lb = lines[lines.index(next(ln for ln in lines if "  load-balancer  " in ln)) + 1]
    assert lb.endswith("[sure: a box on the path] [or: firewall]"), lb
    buf = lines[lines.index(next(ln for ln in lines if "  client  " in ln)) + 1]
    assert buf.endswith("[sure: the client's side] [or: idle-timeout]"), buf
    _, out, _ = run(["analyze", "--summary", "--wide", *files], capsys)
    assert "[sure: a box on the path made it, not the server] [or: firewall]" in out
    assert "[sure: it came from the client's side (its TTL and IP ID)] [or: idle-timeout]" in out
