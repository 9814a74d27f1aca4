"""Command-line interface.  The only module that imports click and rich.

Exit codes (also listed in ``rstscope --help``):
  0 success (finding resets is success), 1 a ``--fail-on`` condition was met,
  2 usage, 65 corrupt capture with nothing readable, 66 missing input,
  69 a needed tool is missing, 70 internal error, 71 the lab failed, 74 output not writable,
  77 no capture privilege.
"""

from __future__ import annotations

import csv
import datetime as _dt
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import click

from rstscope import __version__
from rstscope.core.vocab import Origin, Vantage, values
from rstscope.errors import (
    EXIT_FAIL_ON,
    EXIT_SOFTWARE,
    EXIT_USAGE,
    OutputError,
    RstscopeError,
)

EXIT_CODES_HELP = (
    "Exit codes: 0 ok (resets found is ok), 1 --fail-on matched, 2 usage, "
    "65 corrupt capture, 66 missing input, 69 missing tool, 70 internal error, 71 lab failure, "
    "74 output not writable, 77 no capture privilege."
)

# Columns of the reset table, in order: (header, record key).
RESET_TABLE = (
    ("time", "ts"),
    ("frame", "frame"),
    ("flow", "flow_id"),
    ("dir", "direction"),
    ("silence", "silence_s"),
    ("TTL (exp)", "ttl"),
    ("origin", "origin"),
    ("conf", "confidence"),
    ("cause", "cause"),
)


def _fmt_ts(ts: float | None) -> str:
    if ts is None:
        return "-"
    return _dt.datetime.fromtimestamp(ts, tz=_dt.UTC).strftime("%H:%M:%S.%f")[:-3]


def _fmt_gap(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:.3f}s" if v < 10 else f"{v:.1f}s"


def reset_row(r: dict[str, Any]) -> list[str]:
    ttl = r.get("ttl")
    exp = r.get("expected_ttl")
    ttl_s = "-" if ttl is None else (f"{ttl} ({exp})" if exp is not None else str(ttl))
    conf = r.get("confidence")
    return [
        _fmt_ts(r.get("ts")),
        str(r.get("frame", "")),
        str(r.get("flow_id", "")),
        str(r.get("direction", "")),
        _fmt_gap(r.get("silence_s")),
        ttl_s,
        str(r.get("origin", "")),
        "-" if conf is None else f"{conf:.2f}",
        str(r.get("cause", "")),
    ]


def _summary_lines(doc: dict[str, Any]) -> list[str]:
    s = doc["summary"]
    by = ", ".join(f"{k} {v}" for k, v in s["resets_by_origin"].items() if v)
    lines = [
        f"file: {s['file']}",
        f"packets: {s['packets']} ({s['tcp_packets']} TCP)   flows: {s['flows']}   "
        f"resets: {s['resets']}" + (f" ({by})" if by else ""),
        f"vantage: {s['vantage']}" + (f" ({s['vantage_reason']})" if s.get("vantage_reason") else ""),
    ]
    for w in s.get("warnings", [])[:10]:
        lines.append(f"warning: {w}")
    return lines


def render_text(doc: dict[str, Any], out: Any, *, rich_tty: bool) -> None:
    """The default human output: summary, then one row per reset."""
    rows = [reset_row(r) for r in doc["resets"]]
    if rich_tty:
        from rich.console import Console
        from rich.table import Table

        console = Console(file=out)
        for line in _summary_lines(doc):
            console.print(line, highlight=False, markup=False)
        if rows:
            table = Table(show_lines=False)
            for header, _ in RESET_TABLE:
                table.add_column(header, overflow="fold")
            for row in rows:
                table.add_row(*row)
            console.print(table)
        return
    for line in _summary_lines(doc):
        out.write(line + "\n")
    if not rows:
        return
    headers = [h for h, _ in RESET_TABLE]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    widths[-1] = 0  # the cause column is last and not padded
    out.write("\n" + "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip() + "\n")
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


CSV_COLUMNS = (
    "file", "frame", "ts", "ts_ns", "flow_id", "src", "sport", "dst", "dport", "direction",
    "flags", "origin", "sender", "sender_hops", "confidence", "cause", "silence_s", "idle_gap_s",
    "ttl",
    "expected_ttl", "hop_delta", "conn_state", "advice",
)


def write_output(docs: list[dict[str, Any]], fmt: str, out: Any) -> None:
    if fmt == "json":
        payload: Any = docs[0] if len(docs) == 1 else docs
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
                row = []
                for c in CSV_COLUMNS:
                    v = doc["file"] if c == "file" else r.get(c)
                    if isinstance(v, (list, tuple)):
                        v = " | ".join(str(x) for x in v)
                    row.append("" if v is None else v)
                w.writerow(row)


class _Progress:
    """A progress line on stderr for long reads, only when stderr is a TTY."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._prog: Any = None
        self._task: Any = None

    def __enter__(self) -> _Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

            self._prog = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._prog.__enter__()
            self._task = self._prog.add_task("reading", total=None)
        return self

    def update(self, packets: int, batches: int) -> None:
        if self._prog is not None:
            self._prog.update(self._task, description=f"{packets:,} packets")

    def __exit__(self, *exc: object) -> None:
        if self._prog is not None:
            self._prog.__exit__(None, None, None)


# Subcommands that live in their own packages, loaded only when used so that
# `rstscope analyze` does not pay for importing scapy, matplotlib or dask.
LAZY_COMMANDS: dict[str, tuple[str, str]] = {
    "capture": ("rstscope.live.cli:capture", "Record live traffic (tcpdump-style flags), root or CAP_NET_RAW."),
    "watch": ("rstscope.live.cli:watch", "Watch an interface and print each reset's verdict live."),
    "plot": ("rstscope.plot.cli:plot", "Plot one flow's timeline (or a reset's flow) to PNG/SVG."),
    "report": ("rstscope.plot.cli:report", "Write a self-contained HTML report to send to a customer."),
    "verify": ("rstscope.enrich.cli:verify", "Cross-check rstscope's packet fields against tshark."),
    "batch": ("rstscope.scale.cli:batch", "Analyse many captures (or one huge one) on Dask."),
    "redact": ("rstscope.redact.cli:redact", "Write a shareable capture: payloads stripped, IPs anonymised."),
    "lab": ("rstscope.lab.cli:lab", "Reproduce each kind of reset in network namespaces (root)."),
}


class LazyGroup(click.Group):
    """A click group whose extra commands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        cmd = super().get_command(ctx, cmd_name)
        if cmd is not None or cmd_name not in LAZY_COMMANDS:
            return cmd
        import importlib

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
@click.argument("files", nargs=-1, required=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json", "jsonl", "csv"]),
              default="table", show_default=True, help="Output format.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, writable=False),
              help="Write to this file instead of stdout.")
@click.option("--port", "ports", type=int, multiple=True, help="Only packets to/from this port.")
@click.option("--host", "hosts", multiple=True, help="Only packets to/from this address.")
@click.option("--flow", "flows", multiple=True, help="Only resets of this flow id.")
@click.option("--vantage", type=click.Choice(values(Vantage)),
              default="auto", show_default=True, help="Where the capture was taken.")
@click.option("--rotated", is_flag=True,
              help="FILES are the rotated parts of one capture: read them in order as one stream.")
@click.option("--fail-on", "fail_on", multiple=True,
              type=click.Choice([*values(Origin), "any"]),
              help="Exit 1 if a reset has this origin (repeatable; 'any' for any reset).")
@click.option("--enrich", "do_enrich", is_flag=True,
              help="Add TLS/HTTP2 context from tshark for flows with resets (SNI, alerts, "
                   "last records) and refine verdicts with it.")
@click.option("--keylog", type=click.Path(exists=True, dir_okay=False), default=None,
              help="SSLKEYLOGFILE to decrypt TLS: HTTP/2 GOAWAY, RST_STREAM, status (implies --enrich).")
def analyze(
    files: Sequence[str], fmt: str, output: str | None, ports: Sequence[int],
    hosts: Sequence[str], flows: Sequence[str], vantage: str, rotated: bool,
    fail_on: Sequence[str], do_enrich: bool, keylog: str | None,
) -> None:
    """Analyse captures: one verdict per RST (who, why, what to change).

    FILES are pcap or pcapng files, optionally gzipped, or '-' for stdin.
    """
    from rstscope.api import analyze as run_analysis
    from rstscope.errors import UsageError

    if files.count("-") > 1:
        raise UsageError("stdin ('-') can be given only once")
    groups: list[Any] = [list(files)] if rotated else list(files)
    docs = []
    show_progress = fmt == "table" and sys.stderr.isatty()
    for group in groups:
        with _Progress(show_progress) as prog:
            result = run_analysis(group, vantage=vantage, ports=ports, hosts=hosts,
                                  progress=prog.update)
        if do_enrich or keylog:
            result.enrich(keylog=keylog)
        doc = result.to_document()
        if flows:
            wanted = set(flows)
            doc["resets"] = [r for r in doc["resets"] if str(r.get("flow_id")) in wanted]
            doc["flows"] = [f for f in doc["flows"] if str(f.get("flow_id")) in wanted]
        docs.append(doc)

    if output:
        try:
            fh: Any = open(output, "w", encoding="utf-8", newline="")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise OutputError(f"cannot write {output}: {exc.strerror}") from exc
    else:
        fh = sys.stdout
    try:
        if fmt == "table":
            tty = fh is sys.stdout and sys.stdout.isatty()
            for i, doc in enumerate(docs):
                if i:
                    fh.write("\n")
                render_text(doc, fh, rich_tty=tty)
        else:
            write_output(docs, fmt, fh)
    finally:
        if fh is not sys.stdout:
            fh.close()

    if fail_on:
        wanted_origins = set(fail_on)
        for doc in docs:
            for r in doc["resets"]:
                if "any" in wanted_origins or r.get("origin") in wanted_origins:
                    raise SystemExit(EXIT_FAIL_ON)


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
        import traceback

        traceback.print_exc()
        _die(f"internal error ({type(exc).__name__}: {exc}); please report it", EXIT_SOFTWARE)
    sys.exit(0)
