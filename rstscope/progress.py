"""The one progress bar of long jobs (``analyze``, ``batch``): on stderr when it is a
terminal, with the share done as a percentage, the ETA and the time elapsed.

``analyze`` feeds it the share of the input read (:meth:`ProgressBar.fraction`)
and the packets so far (:meth:`ProgressBar.update`); ``batch`` the number of
inputs (:meth:`ProgressBar.set_total`) and each one finished
(:meth:`ProgressBar.advance`).  Messages printed while it runs
(:meth:`ProgressBar.note`) go above the bar, or to stderr without one.
"""

from __future__ import annotations

import sys
from typing import Any

#: ``fraction`` runs on a 0..RESOLUTION scale (rich wants a total).
RESOLUTION = 1000


class ProgressBar:
    """A rich progress bar on stderr, or nothing when ``enabled`` is false."""

    def __init__(self, enabled: bool, description: str = "reading") -> None:
        self.enabled = enabled
        self.description = description
        self._prog: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        if self.enabled:
            # lazy: rich loads only when a table or progress bar is drawn
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                Progress,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._prog = Progress(
                TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                TextColumn("ETA"), TimeRemainingColumn(), TimeElapsedColumn(),
                console=Console(stderr=True), transient=True,
            )
            self._prog.__enter__()
            self._task = self._prog.add_task(self.description, total=None)
        return self

    # -- analyze: packets read and the share of the input ---------------------
    def update(self, packets: int, batches: int) -> None:
        if self._prog is not None:
            self._prog.update(self._task, description=f"{packets:,} packets")

    def fraction(self, done: float | None) -> None:
        if self._prog is not None and done is not None:
            self._prog.update(self._task, total=RESOLUTION, completed=int(done * RESOLUTION))

    # -- batch: a count of inputs -----------------------------------------------
    def set_total(self, total: int) -> None:
        if self._prog is not None:
            self._prog.update(self._task, total=total, completed=0)

    def advance(self, n: int = 1) -> None:
        if self._prog is not None:
            self._prog.update(self._task, advance=n)

    def note(self, message: str) -> None:
        """A line for the person (an error on one input): above the bar, or on stderr."""
        if self._prog is not None:
            self._prog.console.print(message, markup=False, highlight=False)
        else:
            sys.stderr.write(message + "\n")
            sys.stderr.flush()

    def __exit__(self, *exc: object) -> None:
        if self._prog is not None:
            self._prog.__exit__(None, None, None)
            self._prog = None


__all__ = ["RESOLUTION", "ProgressBar"]
