"""Records → pandas DataFrames with fixed schemas, and the notebook HTML summary.

The column list and dtypes come from the record dataclasses themselves
(:class:`rstscope.core.records.FlowRecord` / ``ResetRecord``), so the
DataFrames, the JSON output and docs/schema.md cannot drift apart.  Empty
inputs give empty frames with the same columns and dtypes, never ``None``.
"""

from __future__ import annotations

import html
import json
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import pandas as pd

import rstscope.accessor  # noqa: F401  (registers the .rst DataFrame accessor)
from rstscope.core.records import FlowRecord, ResetRecord
from rstscope.core.stalls import StallRecord

if TYPE_CHECKING:
    from rstscope.api import Analysis

# Python annotation (as written in records.py) -> pandas dtype.  Nullable
# integer/float/boolean dtypes keep "absent" as <NA> instead of coercing to float.
_DTYPES: dict[str, str] = {
    "int": "int64",
    "int | None": "Int64",
    "float": "float64",
    "float | None": "Float64",
    "bool": "bool",
    "str": "string",
    "str | None": "string",
}


def _dtype_for(annotation: Any) -> str:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))
    if text in _DTYPES:
        return _DTYPES[text]
    if text.startswith("Literal[") or text in ("Origin", "Sender", "SeqStatus"):
        return "string"
    return "object"  # tuples of evidence / alternatives / advice


def schema_of(record_type: type) -> dict[str, str]:
    """Column name -> pandas dtype for a record dataclass, in field order."""
    # records.py uses postponed annotations, so each f.type is the annotation's text.
    return {f.name: _dtype_for(f.type) for f in fields(record_type)}


FLOW_SCHEMA: dict[str, str] = schema_of(FlowRecord)
RESET_SCHEMA: dict[str, str] = {**schema_of(ResetRecord)}
STALL_SCHEMA: dict[str, str] = schema_of(StallRecord)
# Convenience column for notebooks: the timestamp as a timezone-aware datetime.
RESET_SCHEMA_EXTRA = {"time": "datetime64[ns, UTC]"}


def _frame(rows: list[dict[str, Any]], schema: dict[str, str]) -> pd.DataFrame:
    data = {name: [r.get(name) for r in rows] for name in schema}
    df = pd.DataFrame(data, columns=list(schema))
    for name, dtype in schema.items():
        if dtype == "object":
            continue
        df[name] = df[name].astype(dtype)  # type: ignore[call-overload]  # dtype names come from _DTYPES
    return df


def flows_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """DataFrame of flow records (one row per connection)."""
    return _frame(rows, FLOW_SCHEMA)


def resets_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """DataFrame of reset records (one row per RST), plus a ``time`` column."""
    df = _frame(rows, RESET_SCHEMA)
    df.insert(list(RESET_SCHEMA).index("ts") + 1, "time",
              pd.to_datetime(df["ts_ns"].astype("int64"), unit="ns", utc=True))
    return df


def stalls_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """DataFrame of stall records (one row per stalled flow, docs/schema.md)."""
    return _frame(rows, STALL_SCHEMA)


# Columns whose cells mix value types (evidence values are numbers or text), which
# columnar formats cannot store as one type: they are written as JSON text.
JSON_COLUMNS = ("evidence", "alternatives")


def parquet_ready(resets: pd.DataFrame) -> pd.DataFrame:
    """A copy of a resets frame that Arrow/Parquet can store (mixed columns as JSON)."""
    out = resets.copy()
    for col in JSON_COLUMNS:
        if col in out.columns:
            out[col] = out[col].map(lambda v: json.dumps(v, default=str)).astype("string")
    return out


def summary_html(analysis: Analysis) -> str:
    """The notebook summary: counts and the reset table.  Capture strings are escaped."""
    s = analysis.summary()
    esc = html.escape
    by = ", ".join(f"{esc(k)}: {v}" for k, v in s["resets_by_origin"].items() if v) or "none"
    parts = [
        "<div class='rstscope-summary'>",
        f"<p><b>{esc(str(s['file']))}</b>: {s['packets']} packets, {s['flows']} flows, "
        f"{s['resets']} resets ({by}); vantage {esc(str(s['vantage']))}</p>",
    ]
    cols = ("frame", "time", "flow_id", "direction", "idle_gap_s", "ttl", "expected_ttl",
            "origin", "confidence", "cause")
    if s["resets"]:
        df = analysis.resets
        parts.append("<table><thead><tr>")
        parts.extend(f"<th>{esc(c)}</th>" for c in cols)
        parts.append("</tr></thead><tbody>")
        for _, row in df.head(200).iterrows():
            parts.append("<tr>")
            for c in cols:
                v = row[c]
                text = "" if v is None or v is pd.NA or (isinstance(v, float) and v != v) else str(v)
                parts.append(f"<td>{esc(text)}</td>")
            parts.append("</tr>")
        parts.append("</tbody></table>")
        if len(df) > 200:
            parts.append(f"<p>… {len(df) - 200} more resets in <code>.resets</code></p>")
    parts.append("</div>")
    return "".join(parts)
