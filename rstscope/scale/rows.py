"""The summary row of one batch input: its defaults, its error form, its figures.

Shared by the per-input task (:mod:`rstscope.scale.batch`) and the sharded
path (:mod:`rstscope.scale.sharded`), which fill the same row.
"""

from __future__ import annotations

import os
import resource
import socket
from typing import Any

from rstscope import __version__
from rstscope.errors import EXIT_SOFTWARE, RstscopeError
from rstscope.scale.discover import CaptureInput
from rstscope.scale.identity import input_id

__all__ = ["base_row", "error_row", "peak_rss_bytes", "stat_of", "vantage_text"]


def peak_rss_bytes() -> int:
    """This process's peak resident set size (Linux reports ru_maxrss in KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024


def base_row(inp: CaptureInput, digest: str, size: int) -> dict[str, Any]:
    return {
        "input": input_id(digest), "name": inp.name, "files": list(inp.files),
        "scheme": inp.scheme, "content_hash": digest, "size_bytes": size,
        "status": "ok", "error": None, "error_type": None, "exit_code": 0,
        "packets": None, "tcp_packets": None, "flows": None, "resets": None, "stalls": None,
        "shards": 0,
        "vantage": None, "warnings": [], "elapsed_s": None, "peak_rss_bytes": None,
        "worker": f"{socket.gethostname()}:{os.getpid()}", "rstscope_version": __version__,
        "finished_ts_ns": None,
    }


def error_row(row: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    row = dict(row)
    row["status"] = "error"
    if isinstance(exc, RstscopeError):
        row["error"] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        row["exit_code"] = exc.exit_code
    else:  # a bug in rstscope (or the worker died): say so, the run goes on
        row["error"] = f"internal error ({type(exc).__name__}: {exc})".splitlines()[0]
        row["exit_code"] = EXIT_SOFTWARE
    row["error_type"] = type(exc).__name__
    return row


def vantage_text(vantage: Any) -> str:
    # Tracker.vantage is (point, reason); keep the point.
    if isinstance(vantage, tuple) and vantage:
        return str(vantage[0])
    return str(getattr(vantage, "point", vantage))


def stat_of(stats: Any, name: str) -> int | None:
    v = getattr(stats, name, None)
    if v is None and isinstance(stats, dict):
        v = stats.get(name)
    return int(v) if v is not None else None
