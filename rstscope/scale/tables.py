"""Arrow tables with fixed schemas for flow and reset records and the batch summary.

Every partition of a batch dataset must have the same schema, or a reader
(pandas/pyarrow, DuckDB, Dask) fails or silently widens types when one input
has, say, no RST with a known hop count (an all-null column).  So the schema is
derived once from the record dataclasses' type hints, never inferred from the
data: ``int`` -> int64, ``float`` -> float64, ``str``/``Literal`` -> string,
``bool`` -> bool, ``X | None`` -> nullable X, ``tuple[str, ...]`` -> list<string>,
``tuple[tuple[str, str], ...]`` -> list<list<string>>, and the evidence tuple ->
list<struct<name, value, expected, weight>> where value/expected hold the JSON
text of the scalar (a fact's value can be a number, a string or a flag).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from collections.abc import Iterable, Sequence
from functools import cache
from typing import Any

import pyarrow as pa

__all__ = ["SUMMARY_SCHEMA", "record_schema", "records_table"]

_EVIDENCE = pa.struct([("name", pa.string()), ("value", pa.string()),
                       ("expected", pa.string()), ("weight", pa.float64())])

# One row per input of a batch run (OUTDIR/summary.parquet).
SUMMARY_SCHEMA = pa.schema([
    ("input", pa.string()),          # partition name: first 16 hex digits of content_hash
    ("name", pa.string()),           # display name (first file, +N siblings)
    ("files", pa.list_(pa.string())),  # the files, in reading order
    ("scheme", pa.string()),         # single | tcpdump | dumpcap (sibling grouping)
    ("content_hash", pa.string()),   # SHA-256 of the bytes (rstscope.scale.identity)
    ("size_bytes", pa.int64()),
    ("status", pa.string()),         # ok | error
    ("error", pa.string()),          # one-line error message when status == error
    ("error_type", pa.string()),     # the RstscopeError subclass (or exception) name
    ("exit_code", pa.int64()),       # the exit code `rstscope analyze` gives this input
    ("packets", pa.int64()),         # frames read
    ("tcp_packets", pa.int64()),
    ("flows", pa.int64()),
    ("resets", pa.int64()),
    ("stalls", pa.int64()),
    ("shards", pa.int64()),          # 0: analysed whole; N: sharded into N
    ("vantage", pa.string()),
    ("warnings", pa.list_(pa.string())),
    ("elapsed_s", pa.float64()),     # wall time of this input's analysis
    ("peak_rss_bytes", pa.int64()),  # the worker process's peak RSS after the task
    ("worker", pa.string()),
    ("rstscope_version", pa.string()),
    ("finished_ts_ns", pa.int64()),
])


def _strip_optional(tp: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0], True
        return tp, True
    return tp, False


def _arrow_type(tp: Any) -> tuple[pa.DataType, str]:
    """(arrow type, converter kind) for a record field's type hint."""
    base, _ = _strip_optional(tp)
    origin = typing.get_origin(base)
    if base is bool:
        return pa.bool_(), "plain"
    if base is int:
        return pa.int64(), "plain"
    if base is float:
        return pa.float64(), "plain"
    if base is str or origin is typing.Literal:
        return pa.string(), "plain"
    if isinstance(base, type) and issubclass(base, enum.StrEnum):
        return pa.string(), "enum"  # rstscope.core.vocab: stored as its string value
    if origin is tuple:
        args = typing.get_args(base)
        inner = args[0] if args else Any
        if dataclasses.is_dataclass(inner) and getattr(inner, "__name__", "") == "Evidence":
            return pa.list_(_EVIDENCE), "evidence"
        if inner is str:
            return pa.list_(pa.string()), "strings"
        if typing.get_origin(inner) is tuple:
            return pa.list_(pa.list_(pa.string())), "pairs"
    return pa.string(), "json"


@cache
def _fields(cls: type) -> tuple[tuple[str, pa.DataType, str], ...]:
    hints = typing.get_type_hints(cls)
    return tuple((f.name, *_arrow_type(hints[f.name])) for f in dataclasses.fields(cls))


def record_schema(cls: type) -> pa.Schema:
    """The Arrow schema of a record dataclass (FlowRecord, ResetRecord)."""
    return pa.schema([(name, typ) for name, typ, _ in _fields(cls)])


def _scalar_json(v: Any) -> str | None:
    return None if v is None else json.dumps(v)


def _convert(kind: str, v: Any) -> Any:
    if v is None:
        return None
    if kind == "plain":
        return v
    if kind == "enum":
        return str(v)
    if kind == "strings":
        return [str(x) for x in v]
    if kind == "pairs":
        return [[str(y) for y in x] for x in v]
    if kind == "evidence":
        return [{"name": e.name, "value": _scalar_json(e.value),
                 "expected": _scalar_json(e.expected), "weight": float(e.weight)} for e in v]
    return json.dumps(v, default=str)


def records_table(records: Iterable[Any], cls: type,
                  overrides: dict[str, Sequence[Any]] | None = None) -> pa.Table:
    """A table of ``cls`` records; ``overrides`` replaces whole columns (e.g. renumbered ids)."""
    recs = list(records)
    columns: dict[str, Any] = {}
    for name, typ, kind in _fields(cls):
        if overrides and name in overrides:
            values: Any = list(overrides[name])
        else:
            values = [_convert(kind, getattr(r, name)) for r in recs]
        columns[name] = pa.array(values, type=typ)
    return pa.table(columns, schema=record_schema(cls))
