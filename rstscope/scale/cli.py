"""``rstscope batch``: the click command (registered on the main CLI by rstscope.cli)."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import Any

import click

from rstscope.cliopts import VANTAGES, parse_size
from rstscope.errors import UsageError
from rstscope.progress import ProgressBar


class _BatchProgress:
    """Batch's hooks on the one progress bar (rstscope.progress): the inputs as the
    total, each finished one as a step, one line per failed input."""

    def __init__(self, bar: ProgressBar) -> None:
        self.bar = bar

    def start(self, total: int) -> None:
        self.bar.set_total(total)

    def done(self, row: dict[str, Any]) -> None:
        if row.get("status") == "error":
            self.bar.note(f"error: {row.get('name')}: {row.get('error')}")
        self.bar.advance()


@click.command("batch")
@click.argument("paths", nargs=-1, required=True)
@click.option("-o", "--out", "outdir", required=True, type=click.Path(file_okay=False),
              help="Output directory (Parquet datasets resets/, flows/, stalls/ and "
                   "summary.parquet).")
@click.option("--workers", type=int, default=None,
              help="Start a local Dask cluster with N single-threaded worker processes "
                   "[default: number of CPUs].")
@click.option("--scheduler", default=None, metavar="ADDRESS",
              help="Use an existing Dask cluster, e.g. tcp://10.0.0.5:8786, instead of a local one.")
@click.option("--shards", type=int, default=None,
              help="Shard every input by flow into N parts analysed in parallel.")
@click.option("--shard-above", "shard_above", default="2GiB", show_default=True,
              help="Shard inputs bigger than this automatically ('off' to disable).")
@click.option("--vantage", type=click.Choice(VANTAGES),
              default="auto", show_default=True, help="Where the captures were taken.")
@click.option("--no-group", "no_group", is_flag=True,
              help="Do not group ring-buffer siblings (x.pcap, x.pcap1, ...): one input per file.")
def batch(paths: Sequence[str], outdir: str, workers: int | None, scheduler: str | None,
          shards: int | None, shard_above: str, vantage: str, no_group: bool) -> None:
    """Analyse many captures in parallel on Dask into Parquet datasets.

    PATHS are capture files, directories (searched recursively for *.pcap,
    *.pcapng, *.cap and .gz variants) or glob patterns.  Ring-buffer siblings
    (tcpdump -C/-W, dumpcap -b) are read in order as one capture.  Inputs whose
    content is already in OUTDIR are skipped, so an interrupted run can be
    resumed by running it again.  Bad files are reported in the summary and do
    not stop the others.
    """
    # lazy: the dask extra (pyarrow at import)
    from rstscope.scale.batch import connect, run_batch
    from rstscope.scale.discover import expand_paths

    if workers is not None and scheduler is not None:
        raise UsageError("--workers and --scheduler are mutually exclusive")
    expand_paths(paths)  # a missing PATH fails here, before a cluster is started
    above = None if shard_above.strip().lower() in ("off", "none", "0") else parse_size(shard_above)
    with connect(workers=workers, scheduler=scheduler) as client, \
            ProgressBar(sys.stderr.isatty(), "inputs") as bar:
        progress = _BatchProgress(bar)
        report = run_batch(paths, outdir, client=client, vantage=vantage, group=not no_group,
                           shards=shards, shard_above_bytes=above,
                           on_start=progress.start, on_done=progress.done)
    click.echo(
        f"{report.inputs} inputs: {report.analysed} analysed, {report.skipped} skipped "
        f"(already done), {report.errors} failed; {report.resets} resets, "
        f"{report.stalls} stalls; "
        f"{report.elapsed_s:.1f} s -> {os.path.join(report.outdir, 'summary.parquet')}"
    )
