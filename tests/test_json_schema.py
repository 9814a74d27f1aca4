"""The shipped JSON Schema of ``analyze --format json`` (rstscope/data/analyze.schema.json)
holds every field the JSON emits and nothing else, and docs/schema.md names them all.

Real output of the real CLI on the committed samples (and, when present, the shared
captures) is validated; ``additionalProperties: false`` on every record object makes
a field the code adds without declaring it fail here.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import fields
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from rstscope.core.records import FlowRecord, ResetRecord
from rstscope.core.stalls import StallRecord
from tests.conftest import ANALYZE_SCHEMA as SCHEMA
from tests.conftest import SAMPLES
from tests.test_cli import run

REPO = Path(__file__).resolve().parent.parent
#: Fields the CLI adds to a reset record beside the dataclass's: always, then only
#: with --enrich or --probe.
RESET_EXTRA = {"file", "best_guess", "sure"}
RESET_OPTIONAL = {"core_cause", "core_confidence", "context_rule", "tls", "probe"}


def _objects(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    """Every object schema with ``properties``, with where it sits."""
    out = []
    if isinstance(node, dict):
        if "properties" in node:
            out.append((path, node))
        for k, v in node.items():
            out += _objects(v, f"{path}/{k}")
    elif isinstance(node, list):
        for v in node:
            out += _objects(v, path)
    return out


def test_every_object_is_closed():
    objects = _objects(SCHEMA)
    assert len(objects) >= 6
    open_ = [p for p, o in objects if o.get("additionalProperties") is not False]
    assert not open_, f"objects that accept undeclared fields: {open_}"


def test_records_declare_exactly_the_dataclass_fields():
    defs = SCHEMA["$defs"]
    reset = set(defs["reset"]["properties"])
    assert reset == {f.name for f in fields(ResetRecord)} | RESET_EXTRA | RESET_OPTIONAL
    assert set(defs["reset"]["required"]) == reset - RESET_OPTIONAL
    assert set(defs["flow"]["properties"]) == {f.name for f in fields(FlowRecord)} | {"file"}
    assert set(defs["stall"]["properties"]) == {f.name for f in fields(StallRecord)} | {"file"}


def test_every_sample_validates(capsys):
    caps = [str(p) for p in sorted(SAMPLES.glob("*.pcap"))]
    code, out, err = run(["analyze", "--format", "json", *caps], capsys)
    assert code == 0, err
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    assert doc["resets"] and doc["stalls"]
    # Every declared reset field (but the --enrich/--probe ones) shows up for real.
    seen = {k for r in doc["resets"] for k in r}
    assert seen == set(SCHEMA["$defs"]["reset"]["properties"]) - RESET_OPTIONAL


def test_shared_captures_validate(shared_captures, capsys):
    checked = 0
    for cap in shared_captures[::8]:
        code, out, _ = run(["analyze", "--format", "json", str(cap)], capsys)
        if code in (65, 66):
            continue
        jsonschema.validate(json.loads(out), SCHEMA)
        checked += 1
    assert checked >= 10


@pytest.mark.skipif(shutil.which("tshark") is None, reason="--enrich needs tshark")
def test_enriched_output_validates(capsys):
    nginx = SAMPLES / "nginx-proxy-timeout.client.pcap"
    code, out, err = run(["analyze", "--format", "json", "--enrich", str(nginx)], capsys)
    assert code == 0, err
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    assert "context_rule" in doc["resets"][0] and "tls" in doc["resets"][0]


def test_an_undeclared_field_fails(capsys):
    _, out, _ = run(["analyze", "--format", "json",
                     str(SAMPLES / "llm-stream-60s.client.pcap")], capsys)
    doc = json.loads(out)
    jsonschema.validate(doc, SCHEMA)
    for key in ("resets", "flows", "files"):
        bad = json.loads(out)
        bad[key][0]["not_declared"] = 1
        with pytest.raises(jsonschema.ValidationError, match="not_declared"):
            jsonschema.validate(bad, SCHEMA)


def test_docs_schema_names_every_field():
    text = (REPO / "docs" / "schema.md").read_text()
    named = set(re.findall(r"`([a-z_][a-z0-9_.\-]*)`", text))
    missing = sorted({name for _, o in _objects(SCHEMA) for name in o["properties"]} - named)
    assert not missing, f"docs/schema.md does not name: {missing}"
