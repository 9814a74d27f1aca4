"""Property: no user input makes the CLI crash (analyze, plot, report, watch).

Hypothesis drives the real CLI (in process, real captures) with random
combinations of options and values, valid and not.  Whatever it picks, the exit
code must be one of the documented ones and stderr must not hold a traceback;
70 (internal error) is a bug by definition.

Host names are drawn from values that are addresses, CIDRs, ``localhost`` or
malformed (rejected before any resolver is asked), so the test sends no DNS
queries.
"""

from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rstscope.cli import main
from tests.conftest import SAMPLES

REPO = Path(__file__).resolve().parent.parent
CAPTURES = [str(SAMPLES / n) for n in (
    "llm-stream-60s.client.pcap", "dpi-inject-storm.client.pcap",
    "fw-policy-reject.client.pcap", "server-abort.server.pcap")]
ALLOWED = {0, 1, 2, 65, 66, 69, 74, 77}
OUT_DIR = Path(tempfile.mkdtemp(prefix="rstscope-prop-"))

ints = st.one_of(st.integers(-5, 70000), st.sampled_from([0, 1, 2, 3, 19, 65535, 65536, 2**63]))
number_text = st.one_of(ints.map(str), st.floats(allow_nan=True).map(str),
                        st.text("0123456789.-eE+xkKmMgG", max_size=8))
junk = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
               max_size=12)
hosts = st.one_of(
    st.sampled_from(["192.0.2.2", "198.51.100.0/24", "2001:db8::/32", "192.0.2.0/33",
                     "::1", "localhost", "300.1.2.3", "10.0.0.0/8", "fe80::1%eth0"]),
    junk.map(lambda s: s + "!"))  # '!' is never part of a host name: no lookup
times = st.one_of(number_text, st.sampled_from([
    "2026-11-27T07:41:20", "2026-11-27T07:41:20Z", "2026-11-27 07:41:20+05:30",
    "2026-13-01", "9999-12-31T23:59:59", "0001-01-01", "yesterday", "-1", "1e30"]), junk)
outputs = st.sampled_from([str(OUT_DIR / "o.json"), str(OUT_DIR / "o.png"),
                           str(OUT_DIR / "o.svg"), str(OUT_DIR / "o.html"),
                           str(OUT_DIR / "o.parquet"), str(OUT_DIR / "no" / "dir" / "o.csv"),
                           str(OUT_DIR)])
captures = st.one_of(st.sampled_from(CAPTURES),
                     st.sampled_from(["missing.pcap", str(REPO / "README.md"), "-", ""]))

COMMON = {
    "--port": number_text, "--host": hosts, "--flow": number_text, "--start": times,
    "--end": times, "--vantage": st.sampled_from(["auto", "client", "server", "middle", "x"]),
    "--stack": st.sampled_from(["nginx", "nginx,aws", "aws,,cloudflare", "nosuch", ""]),
    "--timeouts": st.sampled_from(["missing.csv", str(REPO / "README.md"),
                                   str(REPO / "rstscope" / "data" / "idle-timeouts.csv")]),
}
ANALYZE = {
    **COMMON, "--format": st.sampled_from(["table", "json", "jsonl", "csv", "parquet", "xml"]),
    "-o": outputs, "--min-confidence": number_text, "-t": st.sampled_from(["utc", "local", "x"]),
    "--fail-on": st.sampled_from(["firewall", "unknown", "any", "load-balancer", "nope"]),
    "--wide": None, "--summary": None, "--flows": None, "--rotated": None, "-r": captures,
}
PLOT = {**COMMON, "--reset": number_text, "--frame": number_text, "-o": outputs,
        "--axis": st.sampled_from(["auto", "broken", "linear", "x"]), "--dpi": number_text}
REPORT = {**COMMON, "-o": outputs, "-r": captures, "--max-sections": number_text,
          "--max-timelines": number_text,
          "--max-size": number_text, "--image-format": st.sampled_from(["png", "svg", "gif"]),
          "--keylog": st.sampled_from(["missing.keylog", str(REPO / "README.md")])}
# watch reads only live interfaces (no -r): it is driven on an interface that does not
# exist, so every option is parsed and checked, and the session then fails to open
# (one line, exit 2) without capturing anything.
WATCH = {**COMMON, "--json": None, "-w": outputs, "-f": st.sampled_from(
             ["tcp port 443", "", "tcp port", "not a filter (", "host 192.0.2.2"]),
         "-s": number_text, "-C": number_text, "-W": number_text, "-G": number_text,
         "-c": number_text, "--duration": number_text, "--format": st.sampled_from(
             ["pcapng", "pcap", "x"]), "--max-flows": number_text,
         "--evict-idle": number_text, "--idle-warn-min": number_text,
         "-B": number_text}
NO_SUCH_IFACE = "rstscope-none0"


def _argv(draw: st.DrawFn, command: str, options: dict[str, st.SearchStrategy[str] | None]) -> list[str]:
    argv = [command]
    if command == "watch":
        argv += ["-i", NO_SUCH_IFACE]
    for name in draw(st.lists(st.sampled_from(sorted(options)), max_size=5)):
        strategy = options[name]
        argv += [name] if strategy is None else [name, draw(strategy)]
    if command == "watch":
        # tcpdump's habit: the filter as trailing words (it conflicts with -f).
        return argv + (["tcp", "port", "443"] if draw(st.integers(0, 3)) == 0 else [])
    # Mostly a real capture, so the options reach the analysis, not only the parser.
    if command == "plot" or draw(st.integers(0, 3)):
        argv.append(draw(st.sampled_from(CAPTURES)) if draw(st.integers(0, 4)) else draw(captures))
    return argv


@st.composite
def analyze_argv(draw: st.DrawFn) -> list[str]:
    return _argv(draw, "analyze", ANALYZE)


@st.composite
def plot_argv(draw: st.DrawFn) -> list[str]:
    return _argv(draw, "plot", PLOT)


@st.composite
def report_argv(draw: st.DrawFn) -> list[str]:
    return _argv(draw, "report", REPORT)


@st.composite
def watch_argv(draw: st.DrawFn) -> list[str]:
    return _argv(draw, "watch", WATCH)


def _run(argv: list[str]) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    stdin = io.TextIOWrapper(io.BytesIO(b""))
    # In a scratch directory: plot/report write <capture>-flowN.png there by default.
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), \
            contextlib.chdir(OUT_DIR):
        import sys

        saved, sys.stdin = sys.stdin, stdin
        try:
            main(argv)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
        else:
            code = 0
        finally:
            sys.stdin = saved
    return code, err.getvalue()


def _check(argv: list[str]) -> None:
    code, err = _run(argv)
    assert code in ALLOWED, (argv, code, err)
    assert "Traceback" not in err, (argv, err)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(analyze_argv())
# The inputs issue 14 found crashing (traceback, exit 70) are always tried.
@example(["analyze", "--port", "99999", CAPTURES[0]])
@example(["analyze", "--host", "192.0.2.0/24", CAPTURES[0]])
@example(["analyze", "--host", "localhost", CAPTURES[0]])
@example(["analyze", "--flow", "7", CAPTURES[0]])
def test_analyze_never_crashes(argv: list[str]) -> None:
    _check(argv)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(plot_argv())
def test_plot_never_crashes(argv: list[str]) -> None:
    _check(argv)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(report_argv())
# report --flow N was a usage error; now it narrows the report (or names the flows).
@example(["report", "--flow", "1", "-o", str(OUT_DIR / "o.html"), CAPTURES[0]])
@example(["report", "--flow", "7", "-o", str(OUT_DIR / "o.html"), CAPTURES[0]])
def test_report_never_crashes(argv: list[str]) -> None:
    _check(argv)


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(watch_argv())
@example(["watch", "-i", NO_SUCH_IFACE, "--flow", "2", "--start", "2026-11-27T07:41:20",
          "--end", "9999-12-31T23:59:59"])
@example(["watch", "-i", NO_SUCH_IFACE, "--end", "2020-01-01"])
def test_watch_options_never_crash(argv: list[str]) -> None:
    code, err = _run(argv)
    assert code in ALLOWED, (argv, code, err)
    assert "Traceback" not in err, (argv, err)
    # It never got as far as capturing: an option was refused, or the interface.
    assert code != 0, (argv, err)
