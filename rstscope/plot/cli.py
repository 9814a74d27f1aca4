"""``rstscope plot``: the click command the main CLI registers.

Errors are raised as :class:`~rstscope.errors.RstscopeError` subclasses; the
main CLI's boundary turns them into a one-line message and an exit code.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import click

from rstscope.cliopts import (
    exit_codes_epilog,
    filter_options,
    join_option,
    selection,
    verdict_options,
)
from rstscope.errors import OutputError, UsageError
from rstscope.plot.backend import new_figure, without_artist_docstrings
from rstscope.plot.select import find_flow, reset_by_frame, reset_by_number
from rstscope.plot.timeline import timeline

_CAPTURE_SUFFIX = re.compile(r"(\.(pcapng|pcap|cap|dmp))?(\.gz)?$", re.IGNORECASE)


def default_output(source: str, what: str, suffix: str) -> Path:
    """``<capture name without .pcap/.pcapng/.gz>-<what>.<suffix>`` in the current directory."""
    stem = _CAPTURE_SUFFIX.sub("", Path(source).name) or "capture"
    return Path(f"{stem}-{what}.{suffix}")


@click.command("plot", epilog=exit_codes_epilog())
@click.argument("files", type=click.Path(dir_okay=False), nargs=-1)
@click.option("-r", "--read", "read_file", type=click.Path(dir_okay=False), default=None,
              metavar="FILE", help="The capture to read, as tcpdump -r (same as FILE).")
@click.option("--reset", "reset_n", type=click.IntRange(1),
              help="Plot the flow of reset N: N is the 1-based row number of the reset table "
                   "printed by `rstscope analyze` (not a frame number; use --frame for that).")
@click.option("--frame", "frame", type=click.IntRange(1),
              help="Plot the flow of the RST at this frame number.")
@click.option("-o", "--output", type=click.Path(dir_okay=False),
              help="Output image (.png or .svg). Default: <capture>-flow<ID>.png here.")
@click.option("--axis", type=click.Choice(["auto", "broken", "linear"]), default="auto",
              show_default=True, help="Time axis: compress long idle gaps (auto/broken) or not.")
@click.option("--dpi", type=click.IntRange(30, 600), default=120, show_default=True)
@filter_options
@verdict_options
@join_option
def plot(files: tuple[str, ...], read_file: str | None, reset_n: int | None,
         frame: int | None, output: str | None, axis: str, dpi: int, do_join: bool = False,
         **shared: Any) -> None:
    """Draw the timeline of one flow of FILE: lanes, idle gaps, RST verdicts, TTL track.

    With one reset in the capture (after the filters), that reset is plotted;
    otherwise choose one with --flow ID, --reset N or --frame N.  With --join and
    two captures (A near the client, B near the server): both timelines of one
    paired connection, A above B (--flow ID picks the pair by A's flow id; default:
    the first pair with a RST).
    """
    if do_join:
        _plot_join(files, read_file, output, dpi, shared)
        return
    if len(files) > 1:
        raise UsageError("plot reads one capture (two with --join): give FILE or -r FILE")
    file = _one_capture(files[0] if files else None, read_file, "plot")
    if file == "-":
        raise UsageError("plot needs a capture file: it reads the capture twice (flows, then packets)")
    sel = selection(**shared)
    if len(sel.flows) > 1:
        raise UsageError("plot draws one flow: give --flow once")
    flow_id = sel.flows[0] if sel.flows else None
    chosen = [x for x in (flow_id, reset_n, frame) if x is not None]
    if len(chosen) > 1:
        raise UsageError("give only one of --flow ID, --reset N or --frame N")
    out = Path(output) if output else None
    if out is not None and out.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"{out}: output must end in .png or .svg")

    # lazy: the api loads pandas; the command needs it only when it runs
    from rstscope.api import analyze

    analysis = analyze(file, **sel.analyze_kwargs())
    target: object
    if flow_id is not None:
        fid = find_flow(analysis, flow_id).flow_id
        target = fid
    else:
        if frame is not None:
            rst = reset_by_frame(analysis, frame)
        elif reset_n is not None:
            rst = reset_by_number(analysis, reset_n)
        else:
            n = len(analysis.typed_resets())
            if n != 1:
                raise UsageError(f"{file} has {n} resets: choose one with --reset N (1..{n}), "
                                 "--frame N or --flow ID" if n else
                                 f"{file} has no resets: choose a flow with --flow ID")
            rst = reset_by_number(analysis, 1)
        fid, target = rst.flow_id, rst
    if out is None:
        out = default_output(file, f"flow{fid}", "png")
    # One image and exit: matplotlib loads without its artists' docstring tables.
    with without_artist_docstrings():
        fig = new_figure(11, 5.5)
        lanes, ttl = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
        timeline(analysis, target, lanes, ttl_ax=ttl, axis=axis)
        try:
            fig.savefig(out, dpi=dpi)
        except OSError as exc:
            raise OutputError(f"{out}: cannot write image ({exc.strerror})") from exc
    click.echo(str(out))


def _plot_join(files: tuple[str, ...], read_file: str | None, output: str | None, dpi: int,
               shared: dict[str, Any]) -> None:
    """``plot A B --join``: both timelines of one paired connection, A above B."""
    both = [*files, *([read_file] if read_file else [])]
    if len(both) != 2 or "-" in both:
        raise UsageError("--join takes exactly two capture files: the one nearer the client, "
                         "then the one nearer the server")
    sel = selection(**shared)
    if len(sel.flows) > 1:
        raise UsageError("plot draws one pair: give --flow once (A's flow id)")
    out = Path(output) if output else default_output(both[0], "join", "png")
    if out.suffix.lower() not in (".png", ".svg"):
        raise UsageError(f"{out}: output must end in .png or .svg")
    # lazy: the api loads pandas; the join draws with matplotlib
    from rstscope.api import analyze
    from rstscope.join import join
    from rstscope.join.figures import save_pair_plot

    kw = sel.analyze_kwargs()
    # --flow names A's flow: it chooses the pair, it does not narrow the analysis.
    flow_ids = set(sel.flows)
    j = join(analyze(both[0], **kw), analyze(both[1], **kw))
    if not j.stories:
        raise UsageError("no connection was paired: nothing to plot")
    if flow_ids:
        idx = [i for i, s in enumerate(j.stories) if s.a_flow in flow_ids]
        if not idx:
            paired = ", ".join(str(s.a_flow) for s in j.stories[:20])
            raise UsageError(f"A flow {sel.flows[0]} has no counterpart in B; "
                             f"paired A flows: {paired}")
        index = idx[0]
    else:
        index = next((i for i, s in enumerate(j.stories) if s.first_rst != "none"), 0)
    save_pair_plot(j, index, out, dpi=dpi)
    click.echo(str(out))


def _one_capture(file: str | None, read_file: str | None, cmd: str) -> str:
    if file and read_file and file != read_file:
        raise UsageError(f"{cmd} reads one capture: give FILE or -r FILE, not both")
    chosen = file or read_file
    if not chosen:
        raise UsageError(f"give a capture: rstscope {cmd} FILE (or -r FILE)")
    return chosen
