"""``rstscope plot``: the click command the main CLI registers.

Errors are raised as :class:`~rstscope.errors.RstscopeError` subclasses; the
main CLI's boundary turns them into a one-line message and an exit code.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from rstscope.errors import OutputError, UsageError
from rstscope.plot.backend import new_figure
from rstscope.plot.select import find_flow, reset_by_frame, reset_by_number
from rstscope.plot.timeline import timeline

_CAPTURE_SUFFIX = re.compile(r"(\.(pcapng|pcap|cap|dmp))?(\.gz)?$", re.IGNORECASE)


def default_output(source: str, what: str, suffix: str) -> Path:
    """``<capture name without .pcap/.pcapng/.gz>-<what>.<suffix>`` in the current directory."""
    stem = _CAPTURE_SUFFIX.sub("", Path(source).name) or "capture"
    return Path(f"{stem}-{what}.{suffix}")


@click.command("plot")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--flow", "flow_id", type=int, help="flow_id of the flow to plot (see `rstscope analyze`).")
@click.option("--reset", "reset_n", type=int,
              help="Plot the flow of reset N: N is the 1-based row number of the reset table "
                   "printed by `rstscope analyze` (not a frame number; use --frame for that).")
@click.option("--frame", "frame", type=int, help="Plot the flow of the RST at this frame number.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Output image (.png or .svg). Default: <capture>-flow<ID>.png here.")
@click.option("--axis", type=click.Choice(["auto", "broken", "linear"]), default="auto",
              show_default=True, help="Time axis: compress long idle gaps (auto/broken) or not.")
@click.option("--dpi", type=click.IntRange(30, 600), default=120, show_default=True)
def plot(file: str, flow_id: int | None, reset_n: int | None, frame: int | None,
         output: str | None, axis: str, dpi: int) -> None:
    """Draw the timeline of one flow of FILE: lanes, idle gaps, RST verdicts, TTL track."""
    if file == "-":
        raise UsageError("plot needs a capture file: it reads the capture twice (flows, then packets)")
    chosen = [x for x in (flow_id, reset_n, frame) if x is not None]
    if len(chosen) != 1:
        raise UsageError("give exactly one of --flow ID, --reset N or --frame N")
    out = Path(output) if output else None
    if out is not None and out.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"{out}: output must end in .png or .svg")

    # lazy: the api loads pandas; the command needs it only when it runs
    from rstscope.api import analyze

    analysis = analyze(file)
    target: object
    if flow_id is not None:
        target = find_flow(analysis, flow_id)["flow_id"]
    elif reset_n is not None:
        target = reset_by_number(analysis, reset_n)
    else:
        assert frame is not None
        target = reset_by_frame(analysis, frame)
    fid = target if flow_id is not None else target["flow_id"]  # type: ignore[index]
    if out is None:
        out = default_output(file, f"flow{fid}", "png")
    fig = new_figure(11, 5.5)
    lanes, ttl = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    timeline(analysis, target, lanes, ttl_ax=ttl, axis=axis)
    try:
        fig.savefig(out, dpi=dpi)
    except OSError as exc:
        raise OutputError(f"{out}: cannot write image ({exc.strerror})") from exc
    click.echo(str(out))
