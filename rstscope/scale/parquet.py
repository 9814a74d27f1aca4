"""Parquet files of a batch output directory, each written atomically.

A partition or the summary is written to a temporary name and then renamed,
so a crash never leaves a half-written file that a resumed run would trust.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from rstscope.errors import OutputError
from rstscope.scale.tables import SUMMARY_SCHEMA

__all__ = ["SUMMARY_FILE", "partition_dir", "read_summary", "write_partition", "write_summary"]

SUMMARY_FILE = "summary.parquet"


def partition_dir(outdir: str | os.PathLike[str], dataset: str, ident: str) -> Path:
    return Path(outdir) / dataset / f"input={ident}"


def write_partition(table: pa.Table, outdir: str | os.PathLike[str], dataset: str,
                    ident: str, part: str = "part") -> str:
    """Write one partition file atomically; returns its path."""
    d = partition_dir(outdir, dataset, ident)
    final = d / f"{part}.parquet"
    tmp = d / f".{part}.{uuid.uuid4().hex}.tmp"
    try:
        d.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, tmp)
        os.replace(tmp, final)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {final}: {exc.strerror}") from exc
    return str(final)


def read_summary(outdir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The summary rows of OUTDIR (empty if none yet)."""
    path = Path(outdir) / SUMMARY_FILE
    if not path.exists():
        return []
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise OutputError(f"cannot read {path}: {exc}") from exc
    rows: list[dict[str, Any]] = table.to_pylist()
    return rows


def write_summary(outdir: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> None:
    path = Path(outdir) / SUMMARY_FILE
    tmp = path.with_name(f".{SUMMARY_FILE}.{uuid.uuid4().hex}.tmp")
    ordered = sorted(rows, key=lambda r: (r.get("name") or "", r.get("input") or ""))
    table = pa.Table.from_pylist(
        [{k: r.get(k) for k in SUMMARY_SCHEMA.names} for r in ordered], schema=SUMMARY_SCHEMA)
    try:
        pq.write_table(table, tmp)
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror}") from exc
