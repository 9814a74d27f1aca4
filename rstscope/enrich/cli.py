"""The ``rstscope verify`` command (wired into the main CLI lazily by rstscope.cli)."""

from __future__ import annotations

import json
import sys

import click

from rstscope.enrich.verify import verify_capture
from rstscope.errors import EXIT_FAIL_ON


@click.command("verify")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--against", type=click.Path(dir_okay=False), default=None,
              help="Let tshark read this file instead (a doctored copy, to see the check fail).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--max-diffs", type=int, default=50, show_default=True,
              help="Differences listed in text output (all are counted).")
def verify(file: str, against: str | None, fmt: str, max_diffs: int) -> None:
    """Cross-check rstscope's packet fields against tshark, for every packet of every
    flow with a reset.  Exit status 1 if any field differs, 0 if none."""
    report = verify_capture(file, against=against)
    if fmt == "json":
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        for line in report.lines(max_diffs=max_diffs):
            click.echo(line)
    if not report.ok:
        # SystemExit passes through rstscope.cli.main (click's own exit would be
        # swallowed in non-standalone mode).
        sys.exit(EXIT_FAIL_ON)
