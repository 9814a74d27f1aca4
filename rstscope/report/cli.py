"""``rstscope report``: the click command the main CLI registers.

Errors are raised as :class:`~rstscope.errors.RstscopeError` subclasses; the
main CLI's boundary turns them into a one-line message and an exit code.
"""

from __future__ import annotations

from pathlib import Path

import click

from rstscope.errors import UsageError
from rstscope.plot.cli import default_output
from rstscope.report.files import write_report
from rstscope.report.html import ReportLimits


@click.command("report")
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="HTML file to write. Default: <first capture>-report.html here.")
@click.option("--max-sections", type=click.IntRange(0, 10_000), default=20, show_default=True,
              help="Resets per capture shown in full (timeline, evidence, advice).")
@click.option("--max-size-mb", type=click.FloatRange(0.1, 500), default=8.0, show_default=True,
              help="Stop embedding figures once the page reaches this size.")
@click.option("--image-format", type=click.Choice(["png", "svg"]), default="png", show_default=True)
@click.option("--port", "ports", type=int, multiple=True, help="Only packets to/from this port.")
@click.option("--tls", is_flag=True,
              help="Add TLS/HTTP2 context per reset (SNI, last records, alerts); needs tshark.")
@click.option("--keylog", type=click.Path(dir_okay=False),
              help="SSLKEYLOGFILE for --tls (decrypts TLS so HTTP/2 frames show).")
def report(files: tuple[str, ...], output: str | None, max_sections: int, max_size_mb: float,
           image_format: str, ports: tuple[int, ...], tls: bool, keylog: str | None) -> None:
    """Write one self-contained HTML report (no external resources) for the FILES."""
    if keylog and not tls:
        raise UsageError("--keylog only applies with --tls")
    out = Path(output) if output else default_output(files[0], "report", "html")
    limits = ReportLimits(max_sections=max_sections, image_format=image_format,
                          max_report_bytes=int(max_size_mb * 1_000_000), tls=tls, keylog=keylog)
    path = write_report(list(files), out, limits=limits, ports=ports)
    click.echo(str(path))
