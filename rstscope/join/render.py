"""Output of ``rstscope analyze A B --join`` (table or JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import IO, Any

from rstscope.errors import UsageError


def run_join(files: Sequence[str], fmt: str, out: IO[str], *, vantage: str,
             ports: Sequence[int], hosts: Sequence[str],
             render_one: Any = None) -> None:
    """Analyse two captures of one incident and write the joined story."""
    if len(files) != 2 or "-" in files:
        raise UsageError("--join takes exactly two capture files: the one nearer the client, "
                         "then the one nearer the server")
    from rstscope.api import analyze
    from rstscope.join import join

    j = join(analyze(files[0], ports=ports, hosts=hosts),
             analyze(files[1], ports=ports, hosts=hosts))
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
            render_one(an.to_document(), out, rich_tty=False)
