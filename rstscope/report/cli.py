"""``rstscope report``: the click command the main CLI registers.

Errors are raised as :class:`~rstscope.errors.RstscopeError` subclasses; the
main CLI's boundary turns them into a one-line message and an exit code.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import click

from rstscope.api import analyze
from rstscope.cliopts import (
    exit_codes_epilog,
    filter_options,
    join_option,
    parse_size,
    selection,
    verdict_options,
)
from rstscope.errors import OutputError, UsageError
from rstscope.flowsubset import FlowSubset
from rstscope.plot.backend import without_artist_docstrings
from rstscope.plot.cli import default_output
from rstscope.report.files import write_report
from rstscope.report.html import DEFAULT_TIMELINES, ReportLimits, build_report


@click.command("report", epilog=exit_codes_epilog())
@click.argument("files", nargs=-1, type=click.Path(dir_okay=False))
@click.option("-r", "--read", "read_files", multiple=True, type=click.Path(dir_okay=False),
              metavar="FILE", help="A capture to read, as tcpdump -r (repeatable).")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="HTML file to write. Default: <first capture>-report.html here.")
@click.option("--max-sections", type=click.IntRange(0, 10_000), default=20, show_default=True,
              help="Resets per capture shown in full (timeline, evidence, advice).")
@click.option("--max-timelines", type=click.IntRange(0, 10_000), default=DEFAULT_TIMELINES,
              show_default=True,
              help="Flows of those sections whose timeline is drawn (each takes ~0.05 s); the "
                   "others say how to plot theirs.")
@click.option("--max-size", "max_size", default="8", show_default=True, metavar="SIZE",
              help="Stop embedding figures once the page reaches this size (millions of "
                   "bytes, or k/m/g suffix as tcpdump -C).")
@click.option("--image-format", type=click.Choice(["png", "svg"]), default="png", show_default=True)
@filter_options
@verdict_options
@click.option("--enrich", "tls", is_flag=True,
              help="Add TLS/HTTP2 context per reset (SNI, last records, alerts); needs tshark.")
@click.option("--tls", "tls_alias", is_flag=True, hidden=True)
@click.option("--keylog", type=click.Path(exists=True, dir_okay=False),
              help="SSLKEYLOGFILE to decrypt TLS so HTTP/2 frames show (implies --enrich).")
@join_option
def report(files: tuple[str, ...], read_files: tuple[str, ...], output: str | None,
           max_sections: int, max_timelines: int, max_size: str, image_format: str, tls: bool,
           tls_alias: bool, keylog: str | None, do_join: bool = False, **shared: Any) -> None:
    """Write one self-contained HTML report (no external resources) for the FILES.

    With --join, FILES are two captures of one incident (near the client, then near
    the server): the report opens with their joined story and, per paired
    connection, both timelines one above the other.

    --flow N keeps flow N of each capture (the ids `rstscope analyze` prints).
    """
    files = (*files, *read_files)
    if not files:
        raise UsageError("give a capture: rstscope report FILE... (or -r FILE)")
    if do_join and (len(files) != 2 or "-" in files):
        raise UsageError("--join takes exactly two capture files: the one nearer the client, "
                         "then the one nearer the server")
    sel = selection(**shared)
    max_bytes = parse_size(max_size)
    if max_bytes < 100_000:
        raise UsageError(f"--max-size {max_size}: at least 100k is needed for one figure")
    out = Path(output) if output else default_output(files[0], "report", "html")
    limits = ReportLimits(max_sections=max_sections, max_timelines=max_timelines,
                          image_format=image_format,
                          max_report_bytes=max_bytes, tls=tls or tls_alias or bool(keylog),
                          keylog=keylog)
    if keylog:
        # Said once, in one line, as analyze does; the enrich layer's UserWarning (one
        # per capture, with Python's source-line dump) is silenced below.
        # lazy: the enrich package loads its tshark/pyshark plumbing
        from rstscope.enrich.snaplen import keylog_warning

        cut = keylog_warning([f for f in files if f != "-"])
        if cut:
            click.echo(f"rstscope: warning: {cut}", err=True)
    # The command draws a few PNGs and exits: matplotlib loads without the property
    # tables of its artists' docstrings (~0.07 s of CPU).
    with warnings.catch_warnings(), without_artist_docstrings():
        if keylog:
            warnings.simplefilter("ignore", UserWarning)  # said above
        if do_join:
            # lazy: the join module loads the api (pandas) and matplotlib
            from rstscope.join import join_files
            from rstscope.join.figures import write_join_report

            path = write_join_report(join_files(files[0], files[1], **sel.analyze_kwargs()),
                                     out, limits=limits)
            click.echo(str(path))
        else:
            _write(list(files), out, limits, sel)


def _write(files: list[str], out: Path, limits: ReportLimits, sel: Any) -> None:
    if not sel.flows:
        path = write_report(files, out, limits=limits, **sel.analyze_kwargs())
        click.echo(str(path))
        return
    # Flow ids are numbered by the analysis, so --flow narrows its records (same ids
    # as `rstscope analyze`); a missing id names the flows that exist (exit 2).
    analyses = [FlowSubset.of(analyze(f, **sel.analyze_kwargs()), sel.flows) for f in files]
    try:
        out.write_text(build_report(analyses, limits=limits), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{out}: cannot write report ({exc.strerror})") from exc
    click.echo(str(out))
