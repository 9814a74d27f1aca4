"""Command-line interface.  The only module that imports click and rich.

Exit codes (also listed in ``rstscope --help``):
  0 success (finding resets is success), 1 a ``--fail-on`` condition was met,
  2 usage, 65 corrupt capture with nothing readable, 66 missing input,
  69 a needed tool is missing, 70 internal error, 71 the lab failed, 74 output not writable,
  77 no capture privilege.
"""

from __future__ import annotations

import contextlib
import csv
import importlib
import json
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import Any, NoReturn

import click

from rstscope import __version__, table
from rstscope.cliopts import (
    ORIGINS,
    apply_min_confidence,
    check_flows,
    display_options,
    exit_codes_epilog,
    filter_options,
    join_option,
    selection,
    vantage_warning,
    verdict_options,
)
from rstscope.core.records import ResetRecord
from rstscope.errors import (
    EXIT_FAIL_ON,
    EXIT_SOFTWARE,
    EXIT_USAGE,
    OutputError,
    RstscopeError,
    UsageError,
    require,
)
from rstscope.progress import ProgressBar
from rstscope.results import ShownReset
from rstscope.table import action_text, reset_order

EXIT_CODES_HELP = exit_codes_epilog()

#: Version of the ``analyze --format json`` envelope (docs/schema.md,
#: rstscope/data/analyze.schema.json).  2: one shape whatever the number of files.
ENVELOPE_VERSION = 2

CSV_COLUMNS = (
    "file", "frame", "ts", "ts_ns", "flow_id", "src", "sport", "dst", "dport", "direction",
    "flags", "origin", "best_guess", "sure", "sender", "sender_hops", "confidence", "cause",
    "alternatives", "cause_id", "cause_alternatives", "silence_s", "idle_gap_s", "ttl", "expected_ttl", "hop_delta",
    "conn_state", "action", "advice",
)


def _csv_value(c: str, r: dict[str, Any]) -> Any:
    if c == "action":
        return action_text(r)
    v = r.get(c)
    if c == "alternatives" and v:
        return " | ".join(f"{a[0]}: {a[1]}" if isinstance(a, (list, tuple)) and len(a) > 1
                          else str(a) for a in v)
    if isinstance(v, (list, tuple)):
        v = " | ".join(str(x) for x in v)
    return "" if v is None else v


def envelope(docs: list[dict[str, Any]], *, min_confidence: float) -> dict[str, Any]:
    """The one JSON document of ``analyze``: same keys for one file or many.

    ``resets`` and ``flows`` hold every file's records, each tagged with ``file``;
    ``files`` holds each file's own summary; ``summary`` adds them up.
    """
    by_origin: dict[str, int] = {}
    total = {"packets": 0, "tcp_packets": 0, "flows": 0, "resets": 0}
    for doc in docs:
        for k in total:
            total[k] += int(doc["summary"].get(k, 0) or 0)
        for o, n in doc["summary"]["resets_by_origin"].items():
            by_origin[o] = by_origin.get(o, 0) + n
    return {
        "schema_version": ENVELOPE_VERSION,
        "summary": {"files": len(docs), **total, "resets_by_origin": by_origin,
                    "min_confidence": min_confidence},
        "files": [doc["summary"] for doc in docs],
        "flows": [{"file": doc["file"], **f} for doc in docs for f in doc["flows"]],
        "resets": [{"file": doc["file"], **r} for doc in docs for r in doc["resets"]],
        # Flows that failed without a RST to explain them (docs/schema.md, issue 17).
        "stalls": [{"file": doc["file"], **st} for doc in docs for st in doc.get("stalls", [])],
    }


def write_output(docs: list[dict[str, Any]], fmt: str, out: Any, *,
                 min_confidence: float = 0.0) -> None:
    if fmt == "json":
        payload = envelope(docs, min_confidence=min_confidence)
        # Indented for a person at a terminal; compact otherwise, which lets json use
        # its C encoder (about 3x faster on a capture with thousands of flows).
        indent = 2 if getattr(out, "isatty", lambda: False)() else None
        out.write(json.dumps(payload, indent=indent, default=str))
        out.write("\n")
    elif fmt == "jsonl":
        for doc in docs:
            for r in doc["resets"]:
                out.write(json.dumps({"file": doc["file"], **r}, default=str) + "\n")
    elif fmt == "csv":
        w = csv.writer(out, lineterminator="\n")
        w.writerow(CSV_COLUMNS)
        for doc in docs:
            for r in doc["resets"]:
                w.writerow([doc["file"] if c == "file" else _csv_value(c, r)
                            for c in CSV_COLUMNS])


# Subcommands that live in their own packages, loaded only when used so that
# `rstscope analyze` does not pay for importing scapy, matplotlib or dask.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "capture": ("rstscope.live.cli:capture", "Record live traffic (tcpdump-style flags), root or CAP_NET_RAW."),
    "watch": ("rstscope.live.cli:watch", "Watch an interface and print each reset's verdict live."),
    "plot": ("rstscope.plot.cli:plot", "Plot one flow's timeline (or a reset's flow) to PNG/SVG."),
    "report": ("rstscope.report.cli:report", "Write a self-contained HTML report to send to a customer."),
    "verify": ("rstscope.enrich.cli:verify", "Cross-check rstscope's packet fields against tshark."),
    "batch": ("rstscope.scale.cli:batch", "Analyse many captures (or one huge one) on Dask."),
    "redact": ("rstscope.redact.cli:redact", "Write a shareable capture: payloads stripped, IPs anonymised."),
    "lab": ("rstscope.lab.cli:lab", "Reproduce each kind of reset in network namespaces (root)."),
    "probe": ("rstscope.probe.cli:probe", "Find the hop that resets a connection (TTL-limited probes, root)."),
}


class LazyGroup(click.Group):
    """A click group whose extra commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None or cmd_name not in LAZY_COMMANDS:
            return cmd

        target, _ = LAZY_COMMANDS[cmd_name]
        module_name, attr = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise click.ClickException(f"'{cmd_name}' is not available: {exc}") from exc
        loaded = getattr(module, attr)
        assert isinstance(loaded, click.Command)
        return loaded

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in LAZY_COMMANDS:
                rows.append((name, LAZY_COMMANDS[name][1]))
            else:
                cmd = super().get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(limit=70)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             epilog=EXIT_CODES_HELP)
@click.version_option(__version__, prog_name="rstscope")
def cli() -> None:
    """rstscope: who reset this TCP connection, why, and what to change."""


@cli.command(epilog=EXIT_CODES_HELP)
@click.argument("files", nargs=-1)
@click.option("-r", "--read", "read_files", multiple=True, metavar="FILE",
              help="A capture to read, as tcpdump -r (repeatable; same as giving FILES).")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl", "csv", "parquet"]),
              default="table", show_default=True,
              help="Output format (parquet: with --flows, needs -o).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=False),
              help="Write to this file instead of stdout.")
@filter_options
@verdict_options
@display_options
@click.option("--rotated", is_flag=True,
              help="FILES are the rotated parts of one capture: read them in order as one stream.")
@click.option("--fail-on", "fail_on", multiple=True,
              type=click.Choice([*ORIGINS, "any"]),
              help="Exit 1 if a reset has this origin at or above --min-confidence "
                   "(repeatable; 'any' for any reset).")
@click.option("--enrich", "do_enrich", is_flag=True,
              help="Add TLS/HTTP2 context from tshark for flows with resets (SNI, alerts, "
                   "last records) and refine verdicts with it.")
@click.option("--keylog", type=click.Path(exists=True, dir_okay=False), default=None,
              help="SSLKEYLOGFILE to decrypt TLS: HTTP/2 GOAWAY, RST_STREAM, status (implies --enrich).")
@click.option("--wide", is_flag=True,
              help="One long, uncut line per reset (for grep and logs), whatever the width.")
@click.option("--summary", "grouped", is_flag=True,
              help="Group resets by origin x cause x server: counts and silence percentiles.")
@click.option("--flows", "flow_table", is_flag=True,
              help="Write the conn.log-style flow table (Zeek names) instead of resets: "
                   "--format csv, jsonl or parquet.")
@join_option
@click.option("--join-out", "join_out", type=click.Path(dir_okay=False), default=None,
              help="With --join: also write the joined report (.html) or both timelines of "
                   "the first pair with a RST, one above the other (.png/.svg).")
@click.option("--probe", "probe_files", multiple=True,
              help="A 'rstscope probe --format json' result: its measured hop becomes evidence "
                   "for the verdicts on that target (repeatable).")
def analyze(
    files: Sequence[str], read_files: Sequence[str], fmt: str, output: str | None,
    rotated: bool, fail_on: Sequence[str], do_enrich: bool, keylog: str | None,
    wide: bool, grouped: bool, flow_table: bool, do_join: bool = False,
    join_out: str | None = None, probe_files: Sequence[str] = (), **shared: Any,
) -> None:
    """Analyse captures: one verdict per RST (who, why, what to change).

    FILES are pcap or pcapng files, optionally gzipped, or '-' for stdin.
    """
    # lazy: the api loads pandas; the command needs it only when it runs
    from rstscope.api import analyze as run_analysis
    from rstscope.api import json_ready as _json_ready

    files = [*files, *read_files]
    if not files:
        raise UsageError("give a capture: rstscope analyze FILE (or -r FILE, or '-' for stdin)")
    if files.count("-") > 1:
        raise UsageError("stdin ('-') can be given only once")
    if fmt == "parquet" and not (flow_table and output):
        raise UsageError("--format parquet writes the flow table: use it with --flows and -o FILE")
    if flow_table and grouped:
        raise UsageError("--flows and --summary write different tables: choose one")
    if flow_table and fmt == "table":
        fmt = "csv"
    sel = selection(**shared)
    if do_join:
        # lazy: --join draws figures (matplotlib) only when asked
        from rstscope.join.render import run_join

        def render_one(doc: dict[str, Any], out: Any) -> None:
            table.render(doc, out, width=terminal_width(), wide=wide, tz=sel.tz)

        with _open_output(output) as out:
            run_join(files, fmt, out, analyze_kwargs=sel.analyze_kwargs(),
                     render_one=render_one, figure=join_out)
        return
    probes = None
    if probe_files:
        # lazy: the probe package loads only when a probe result is given
        from rstscope.probe.hop_evidence import apply_probes, load_probes

        probes = load_probes(probe_files)
    groups: list[Any] = [list(files)] if rotated else list(files)
    docs = []
    all_shown: list[ShownReset] = []
    show_progress = fmt == "table" and sys.stderr.isatty()
    for group in groups:
        with ProgressBar(show_progress) as prog:
            result = run_analysis(group, progress=prog.update, progress_fraction=prog.fraction,
                                  **sel.analyze_kwargs())
        if do_enrich or keylog:
            if keylog:
                # lazy: the enrich package loads its tshark/pyshark plumbing
                from rstscope.enrich.snaplen import keylog_warning

                cut = keylog_warning([g for g in (group if isinstance(group, list) else [group])
                                      if g != "-"])
                if cut:
                    click.echo(f"rstscope: warning: {cut}", err=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # said above, in one line
                result.enrich(keylog=keylog)
        # What this output prints: the JSON document every part, the table no flows,
        # CSV, JSON lines and --summary neither flows nor stalls.  Their records cost
        # most of the output stage, so only what is printed or checked is made (a
        # stated --vantage is checked against the flows' TTLs).
        prints_flows = flow_table or (fmt == "json" and not grouped)
        prints_stalls = fmt in ("json", "table") and not (flow_table or grouped)
        flows = (result.typed_flows()
                 if prints_flows or sel.flows or probes or sel.vantage != "auto" else [])
        warn = vantage_warning(flows, sel.vantage)
        if warn:
            click.echo(f"rstscope: warning: {warn}", err=True)
        resets: Sequence[ResetRecord] = result.typed_resets()
        if sel.flows:
            check_flows(sel.flows, [f.flow_id for f in flows], result.file)
            wanted = set(sel.flows)
            resets = [r for r in resets if r.flow_id in wanted]
            flows = [f for f in flows if f.flow_id in wanted]
        probed: list[tuple[ResetRecord, dict[str, Any] | None]] = (
            apply_probes(resets, flows, probes) if probes else [(r, None) for r in resets])
        # Typed up to here; the document's dicts are made from the shown records.
        shown = [apply_min_confidence(r, sel.min_confidence, file=result.file, probe=p)
                 for r, p in sorted(probed, key=lambda rp: reset_order(rp[0].file_id, rp[0].ts_ns,
                                                                     rp[0].frame))]
        all_shown.extend(shown)
        doc = result.to_document(resets=[_json_ready(s.to_dict()) for s in shown],
                                 flows=prints_flows and not sel.flows, stalls=prints_stalls)
        if sel.flows and prints_flows:
            doc["flows"] = [_json_ready(f.to_dict()) for f in flows]
        if warn:
            doc["summary"]["warnings"] = [warn, *doc["summary"].get("warnings", [])]
        doc["summary"]["resets"] = len(shown)
        doc["summary"]["resets_by_origin"] = _count_origins(shown)
        docs.append(doc)

    if flow_table and fmt == "parquet":
        assert output is not None
        write_flow_table(docs, "parquet", output)
    else:
        _write_text_output(docs, fmt, output, sel, wide=wide, grouped=grouped,
                           flow_table=flow_table)

    if fail_on:
        wanted_origins = set(fail_on)
        for s in all_shown:
            if "any" in wanted_origins or s.origin in wanted_origins:
                raise SystemExit(EXIT_FAIL_ON)


def _count_origins(shown: Sequence[ShownReset]) -> dict[str, int]:
    by = dict.fromkeys(ORIGINS, 0)
    for s in shown:
        by[s.origin] = by.get(s.origin, 0) + 1
    return by


def terminal_width() -> int:
    """Columns to lay the table out in: the terminal's, or ``COLUMNS`` when piped
    (80 if neither says)."""
    import shutil  # lazy: only the table needs it, and it is ~2 ms of start-up

    return shutil.get_terminal_size((80, 24)).columns


def _write_text_output(docs: list[dict[str, Any]], fmt: str, output: str | None, sel: Any,
                       *, wide: bool, grouped: bool, flow_table: bool) -> None:
    if output:
        try:
            fh: Any = open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise OutputError(f"cannot write {output}: {exc.strerror}") from exc
    else:
        fh = sys.stdout
    try:
        if flow_table:
            write_flow_table(docs, fmt, fh)
        elif grouped:
            # lazy: only --summary groups (~1.5 ms of every other command's start-up)
            from rstscope.grouping import group_resets, render_groups

            groups = group_resets([r for d in docs for r in d["resets"]])
            if fmt == "table":
                render_groups(groups, fh, width=terminal_width(), wide=wide)
            else:
                write_groups(groups, fmt, fh)
        elif fmt == "table":
            width = terminal_width()
            for i, doc in enumerate(docs):
                if i:
                    fh.write("\n")
                table.render(doc, fh, width=width, wide=wide, tz=sel.tz)
        else:
            write_output(docs, fmt, fh, min_confidence=sel.min_confidence)
    finally:
        if fh is not sys.stdout:
            fh.close()


def write_groups(groups: list[Any], fmt: str, out: Any) -> None:
    from rstscope.grouping import GROUP_COLUMNS  # lazy: as group_resets above

    rows = [g.to_dict() for g in groups]
    if fmt == "json":
        out.write(json.dumps({"schema_version": ENVELOPE_VERSION, "groups": rows}) + "\n")
    elif fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row) + "\n")
    else:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(GROUP_COLUMNS)
        for row in rows:
            w.writerow(["" if row[c] is None else row[c] for c in GROUP_COLUMNS])


#: conn.log-style flow columns: (output name, record key).  Zeek's names where Zeek
#: has the field (``id.orig_h`` ... as in its JSON logs), rstscope's otherwise.
FLOW_COLUMNS = (
    ("ts", "first_ts_ns"), ("file", "file"), ("flow_id", "flow_id"),
    ("id.orig_h", "orig_h"), ("id.orig_p", "orig_p"), ("id.resp_h", "resp_h"),
    ("id.resp_p", "resp_p"), ("proto", None), ("duration", "duration_s"),
    ("orig_bytes", "orig_bytes"), ("resp_bytes", "resp_bytes"), ("conn_state", "conn_state"),
    ("history", "history"), ("orig_pkts", "orig_pkts"), ("orig_ip_bytes", "orig_ip_bytes"),
    ("resp_pkts", "resp_pkts"), ("resp_ip_bytes", "resp_ip_bytes"),
    ("generation", "generation"), ("resets", "resets"), ("max_idle_gap_s", "max_idle_gap_s"),
    ("rtt_s", "rtt_s"), ("orig_ttl_mode", "orig_ttl_mode"), ("resp_ttl_mode", "resp_ttl_mode"),
    ("orig_hops", "orig_hops"), ("resp_hops", "resp_hops"), ("vantage", "vantage"),
)


def flow_rows(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for doc in docs:
        for f in doc["flows"]:
            rec = {**f, "file": doc["file"]}
            row: dict[str, Any] = {}
            for name, key in FLOW_COLUMNS:
                if key is None:
                    row[name] = "tcp"
                elif key == "first_ts_ns":
                    row[name] = rec[key] / 1e9
                else:
                    row[name] = rec.get(key)
            rows.append(row)
    return rows


def write_flow_table(docs: list[dict[str, Any]], fmt: str, out: Any) -> None:
    rows = flow_rows(docs)
    names = [n for n, _ in FLOW_COLUMNS]
    if fmt == "parquet":
        require("pyarrow", extra="parquet")
        # lazy: pandas, only when a DataFrame is written
        import pandas as pd

        try:
            pd.DataFrame(rows, columns=names).to_parquet(out, index=False)
        except OSError as exc:
            raise OutputError(f"cannot write {out}: {exc.strerror}") from exc
    elif fmt == "json":
        out.write(json.dumps(rows, default=str) + "\n")
    elif fmt == "jsonl":
        for row in rows:
            out.write(json.dumps(row, default=str) + "\n")
    else:
        w = csv.writer(out, lineterminator="\n")
        w.writerow(names)
        for row in rows:
            w.writerow(["" if row[n] is None else row[n] for n in names])


@contextlib.contextmanager
def _open_output(output: str | None) -> Iterator[Any]:
    if not output:
        yield sys.stdout
        return
    try:
        fh = open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise OutputError(f"cannot write {output}: {exc.strerror}") from exc
    try:
        yield fh
    finally:
        fh.close()


def _die(message: str, code: int) -> NoReturn:
    click.echo(f"rstscope: {message}", err=True)
    sys.exit(code)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: run the CLI and map expected errors to one line and an exit code."""
    run(cli, argv)


def run(group: click.Group, argv: Sequence[str] | None = None) -> NoReturn:
    """Run a click group with rstscope's one boundary from exceptions to exit codes."""
    try:
        group.main(args=list(argv) if argv is not None else None, prog_name="rstscope",
                   standalone_mode=False)
    except RstscopeError as exc:
        _die(str(exc), exc.exit_code)
    except click.exceptions.Abort:
        _die("aborted", 130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code if exc.exit_code else EXIT_USAGE)
    except KeyboardInterrupt:
        _die("interrupted", 130)
    except BrokenPipeError:
        # Output piped into `head`: not an error.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except SystemExit:
        raise
    except Exception as exc:  # a bug: say so, without hiding the details
        import traceback  # lazy: only a bug needs it, and it is ~2 ms of start-up

        traceback.print_exc()
        _die(f"internal error ({type(exc).__name__}: {exc}); please report it", EXIT_SOFTWARE)
    sys.exit(0)
