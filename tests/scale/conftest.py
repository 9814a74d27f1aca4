"""Fixtures for the scale-out tests: real captures, real tools, one small Dask cluster."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SAMPLES, make_capture


def need_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed")
    return path


def sample_captures() -> list[Path]:
    """The lab's committed captures (samples/*.pcap*)."""
    return sorted(p for p in SAMPLES.glob("*.pcap*") if p.is_file())


@pytest.fixture(scope="session")
def samples() -> list[Path]:
    found = sample_captures()
    if not found:
        pytest.fail("samples/ has no captures (the lab's samples are part of the repository)")
    return found


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 60,000-packet generated capture (~50 MB; thousands of flows, ~RST flows)."""
    d = tmp_path_factory.mktemp("gen")
    return make_capture(d / "gen.pcap", 60_000, seed=7)


def tcpdump_cmd() -> list[str]:
    tcpdump = need_tool("tcpdump")
    # As root tcpdump drops to its own user before writing; keep root so it can
    # write into pytest's private temporary directories.
    return [tcpdump, "-Z", "root"] if os.geteuid() == 0 else [tcpdump]


def run(cmd: list[str]) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, f"{cmd}: {proc.stderr}"
    return proc


@pytest.fixture(scope="module")
def dask_client() -> Iterator[Any]:
    """A LocalCluster of 2 single-threaded worker processes (loopback only)."""
    from rstscope.scale.batch import connect

    with connect(workers=2) as client:
        yield client


def normalize_parquet_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Parquet rows in the shape of ``record.to_dict()`` (evidence values back from JSON)."""
    out = []
    for r in rows:
        r = {k: v for k, v in r.items() if k != "input"}
        if "evidence" in r:
            r["evidence"] = [
                {**e, "value": None if e["value"] is None else json.loads(e["value"]),
                 "expected": None if e["expected"] is None else json.loads(e["expected"])}
                for e in r["evidence"]
            ]
        out.append(r)
    return out


def record_dicts(records: list[Any]) -> list[dict[str, Any]]:
    return [r.to_dict() for r in records]


def _flow_key(f: dict[str, Any]) -> tuple[Any, ...]:
    return (f["orig_h"], f["orig_p"], f["resp_h"], f["resp_p"], f["generation"])


def assert_same_results(expected: tuple[list[dict[str, Any]], list[dict[str, Any]]],
                        got: tuple[list[dict[str, Any]], list[dict[str, Any]]]) -> None:
    """Every flow and reset record equal, field by field, up to flow numbering.

    Flows are matched by 5-tuple + generation; the flow ids of the two sides must
    be a bijection that the resets follow too.  Resets are matched by position
    (file_id, frame).
    """
    e_flows = {_flow_key(f): f for f in expected[0]}
    g_flows = {_flow_key(f): f for f in got[0]}
    assert len(e_flows) == len(expected[0]) and len(g_flows) == len(got[0])
    assert e_flows.keys() == g_flows.keys()
    assert sorted(f["flow_id"] for f in got[0]) == list(range(1, len(got[0]) + 1))
    idmap: dict[int, int] = {}
    for key, e in e_flows.items():
        g = g_flows[key]
        idmap[e["flow_id"]] = g["flow_id"]
        diff = {k: (e[k], g.get(k)) for k in e if k != "flow_id" and e[k] != g.get(k)}
        assert not diff, f"flow {key} differs: {diff}"
    e_resets = sorted(expected[1], key=lambda r: (r["file_id"], r["frame"]))
    g_resets = sorted(got[1], key=lambda r: (r["file_id"], r["frame"]))
    assert len(e_resets) == len(g_resets)
    for e, g in zip(e_resets, g_resets, strict=True):
        diff = {k: (e[k], g.get(k)) for k in e if k != "flow_id" and e[k] != g.get(k)}
        assert not diff, f"reset at file {e['file_id']} frame {e['frame']} differs: {diff}"
        assert idmap[e["flow_id"]] == g["flow_id"]


class Helpers:
    """Helper functions handed to tests as the ``h`` fixture (tests/ is not a package)."""

    need_tool = staticmethod(need_tool)
    run = staticmethod(run)
    tcpdump_cmd = staticmethod(tcpdump_cmd)
    make_capture = staticmethod(make_capture)
    normalize_parquet_rows = staticmethod(normalize_parquet_rows)
    record_dicts = staticmethod(record_dicts)
    assert_same_results = staticmethod(assert_same_results)


@pytest.fixture(scope="session")
def h() -> type[Helpers]:
    return Helpers
