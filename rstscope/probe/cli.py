"""``rstscope probe``: locate the hop that resets (or silently drops) a connection."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from rstscope.errors import InputMissingError, OutputError, UsageError
from rstscope.probe.model import Hop
from rstscope.probe.render import render_text
from rstscope.probe.runner import (
    MIN_INTERVAL_S,
    TRIGGERS,
    ProbeOptions,
    parse_target,
    run_probe,
)

EPILOG = ("Needs root (raw sockets and one nft rule, removed on exit). Exit codes: 0 ok, "
          "2 usage, 66 payload file missing, 69 nft missing, 74 output not writable, "
          "77 no privilege, 130 interrupted.")


@click.command(epilog=EPILOG)
@click.argument("target")
@click.option("--trigger", type=click.Choice(TRIGGERS), default="idle", show_default=True,
              help="What draws the reset: silence, a ClientHello, or your bytes.")
@click.option("--idle", "idle_s", type=float, default=None,
              help="--trigger idle: seconds to stay silent before probing.")
@click.option("--sni", default=None,
              help="Server name: the ClientHello's SNI (--trigger sni), or TLS before the "
                   "idle period (--trigger idle).")
@click.option("--payload", "payload_file", default=None,
              help="--trigger data: a file whose bytes (at most 1200) are the trigger.")
@click.option("--max-hops", type=int, default=30, show_default=True,
              help="Never send more probes than this per phase.")
@click.option("--interval", "interval_s", type=float, default=MIN_INTERVAL_S, show_default=True,
              help="Seconds between probes (not below 0.1).")
@click.option("--wait", "wait_s", type=float, default=1.0, show_default=True,
              help="Seconds to wait for each probe's reply.")
@click.option("-4", "v4", is_flag=True, help="Use IPv4.")
@click.option("-6", "v6", is_flag=True, help="Use IPv6.")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@click.option("-o", "--output", default=None, help="Write to this file instead of stdout.")
@click.option("--plot", "plot_file", default=None,
              help="Draw the path with the resetting hop marked (PNG or SVG).")
def probe(target: str, trigger: str, idle_s: float | None, sni: str | None,
          payload_file: str | None, max_hops: int, interval_s: float, wait_s: float,
          v4: bool, v6: bool, fmt: str, output: str | None, plot_file: str | None) -> None:
    """Find the hop that resets TARGET (HOST[:PORT], port 443 by default).

    Opens a connection, maps the path with harmless probes, applies the trigger,
    then sends the trigger segment with TTL 1, 2, 3, ... until the first RST.
    """
    host, port = parse_target(target)
    if v4 and v6:
        raise UsageError("-4 and -6 are exclusive")
    if trigger == "idle" and idle_s is None:
        raise UsageError("--trigger idle needs --idle SECONDS")
    payload = None
    if payload_file is not None:
        try:
            payload = Path(payload_file).read_bytes()
        except OSError as exc:
            raise InputMissingError(f"cannot read --payload {payload_file}: "
                                    f"{exc.strerror}") from None
    opts = ProbeOptions(host=host, port=port, trigger=trigger, idle_s=idle_s or 0.0, sni=sni,
                        payload=payload, max_hops=max_hops, interval_s=interval_s,
                        wait_s=wait_s, ip_v=4 if v4 else 6 if v6 else None)
    opts.validate()
    for path in (output, plot_file):
        if path is not None and not _writable(path):
            raise OutputError(f"cannot write {path}")
    verbose = sys.stderr.isatty()

    def on_hop(phase: str, hop: Hop) -> None:
        if verbose:
            click.echo(f"{phase} ttl {hop.ttl}: {hop.reply} {hop.from_addr or ''}", err=True)

    result = run_probe(opts, on_hop=on_hop)
    fh: Any
    if output:
        try:
            fh = open(output, "w", encoding="utf-8")  # noqa: SIM115 - closed below
        except OSError as exc:
            raise OutputError(f"cannot write {output}: {exc.strerror}") from exc
    else:
        fh = sys.stdout
    try:
        if fmt == "json":
            fh.write(json.dumps(result.to_dict(), indent=2) + "\n")
        else:
            render_text(result, fh)
    finally:
        if fh is not sys.stdout:
            fh.close()
    if plot_file:
        # lazy: matplotlib loads only when a plot is asked for
        from rstscope.probe.path_figure import plot_path

        plot_path(result, plot_file)


def _writable(path: str) -> bool:
    parent = Path(path).resolve().parent
    return parent.is_dir()
