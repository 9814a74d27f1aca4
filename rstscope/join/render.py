"""Output of ``rstscope analyze A B --join`` (table or JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

from rstscope.errors import UsageError


def run_join(files: Sequence[str], fmt: str, out: IO[str], *,
             analyze_kwargs: dict[str, Any] | None = None,
             render_one: Any = None, figure: str | None = None) -> None:
    """Analyse two captures of one incident and write the joined story.

    ``figure`` (a path ending in .html or .png/.svg) also writes the joined report,
    or both timelines of the first pair with a RST (else the first pair)."""
    if len(files) != 2 or "-" in files:
        raise UsageError("--join takes exactly two capture files: the one nearer the client, "
                         "then the one nearer the server")
    # lazy: rstscope.api loads pandas
    from rstscope.api import analyze
    from rstscope.join import join

    kw = analyze_kwargs or {}
    j = join(analyze(files[0], **kw), analyze(files[1], **kw))
    if figure is not None:
        # lazy: figures load matplotlib
        from rstscope.join.figures import save_pair_plot, write_join_report

        path = Path(figure)
        if path.suffix.lower() == ".html":
            write_join_report(j, path)
        elif path.suffix.lower() in (".png", ".svg"):
            if not j.stories:
                raise UsageError("no connection was paired: nothing to plot")
            first = next((i for i, s in enumerate(j.stories) if s.first_rst != "none"), 0)
            save_pair_plot(j, first, path)
        else:
            raise UsageError(f"{path}: --join-out must end in .html, .png or .svg")
    if fmt == "json":
        json.dump(j.to_document(), out, indent=1 if out.isatty() else None)
        out.write("\n")
        return
    if fmt != "table":
        raise UsageError("--join writes --format table or json")
    for line in j.lines():
        out.write(line + "\n")
    if render_one is not None:
        for label, an in (("A", j.a), ("B", j.b)):
            out.write(f"\n== {label}\n")
            render_one(an.to_document(), out)
