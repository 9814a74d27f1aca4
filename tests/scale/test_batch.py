"""``run_batch`` on a 2-worker LocalCluster: same results as one process, resumable, robust."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from rstscope.api import analyze
from rstscope.scale.batch import read_summary, run_batch
from rstscope.scale.identity import content_hash, input_id


def _partition_rows(out: Path, dataset: str, ident: str) -> list[dict[str, Any]]:
    d = out / dataset / f"input={ident}"
    rows: list[dict[str, Any]] = []
    for part in sorted(d.glob("*.parquet")):
        rows += pq.read_table(part).to_pylist()
    return rows


def _expected(files: list[str]) -> tuple[list[dict], list[dict]]:
    tr = analyze(files).tracker
    flows = sorted((f.to_dict() for f in tr.flows()), key=lambda f: f["flow_id"])
    resets = sorted((r.to_dict() for r in tr.resets()), key=lambda r: (r["file_id"], r["frame"]))
    return flows, resets


def _check_input_matches_single_process(out: Path, files: list[str], h,
                                        sharded: bool = False) -> int:
    ident = input_id(content_hash(files))
    flows, resets = _expected(files)
    got_f = h.normalize_parquet_rows(_partition_rows(out, "flows", ident))
    got_r = h.normalize_parquet_rows(_partition_rows(out, "resets", ident))
    if not sharded:  # the same tracker code path: even the flow ids are equal
        assert sorted(got_f, key=lambda f: f["flow_id"]) == flows
        assert sorted(got_r, key=lambda r: (r["file_id"], r["frame"])) == resets
    h.assert_same_results((flows, resets), (got_f, got_r))
    return len(resets)


@pytest.fixture()
def folder(samples: list[Path], tmp_path: Path, h) -> dict[str, Any]:
    """Lab samples, a gzipped one, a ring buffer split by editcap, and bad files."""
    d = tmp_path / "in"
    (d / "lab").mkdir(parents=True)
    # One vantage per scenario keeps the run short; test_shard covers every sample.
    picked = [s for s in samples if s.name.endswith(".client.pcap")] or samples
    for s in picked:
        shutil.copy(s, d / "lab" / s.name)
    with gzip.open(d / "lab" / "zipped.pcap.gz", "wb") as fh:
        fh.write(samples[0].read_bytes())
    # A ring buffer whose flows cross file boundaries: editcap -c splits every 4 packets.
    longest = max(picked, key=lambda p: p.stat().st_size)
    (d / "ring").mkdir()
    h.run([h.need_tool("editcap"), "-c", "4", str(longest), str(d / "ring" / "rb.pcap")])
    ring = sorted(str(p) for p in (d / "ring").iterdir())
    (d / "bad").mkdir()
    (d / "bad" / "notacapture.pcap").write_bytes(b"this is not a capture file\n" * 20)
    (d / "bad" / "empty.pcapng").write_bytes(b"")
    return {"dir": d, "ring": ring, "longest": longest,
            "singles": sorted(str(p) for p in (d / "lab").iterdir())}


def test_batch_results_equal_single_process(folder: dict[str, Any], tmp_path: Path,
                                            dask_client: Any, h) -> None:
    out = tmp_path / "out"
    report = run_batch([folder["dir"]], out, client=dask_client)
    assert report.inputs == len(folder["singles"]) + 1 + 2
    assert report.errors == 2 and report.skipped == 0
    rows = {r["name"]: r for r in read_summary(out)}
    bad = [r for r in rows.values() if r["status"] == "error"]
    assert sorted(Path(r["files"][0]).name for r in bad) == ["empty.pcapng", "notacapture.pcap"]
    for r in bad:
        assert r["error"] and "\n" not in r["error"]
        assert r["exit_code"] == 65 and r["error_type"] == "CaptureError"
    total = 0
    for f in folder["singles"]:
        total += _check_input_matches_single_process(out, [f], h)
    assert total > 0
    # The ring is one input through one tracker: flows survive the file boundaries.
    ring_resets = _check_input_matches_single_process(out, folder["ring"], h)
    ring_row = next(r for r in rows.values() if r["files"] == folder["ring"])
    assert ring_row["scheme"] == "dumpcap" and ring_row["status"] == "ok"
    whole = analyze(str(folder["longest"])).tracker
    assert ring_row["flows"] == len(whole.flows())
    assert ring_resets == len(whole.resets())
    assert [(f.conn_state, f.history, f.orig_pkts, f.resp_pkts) for f in whole.flows()] == [
        (f["conn_state"], f["history"], f["orig_pkts"], f["resp_pkts"])
        for f in sorted(_partition_rows(out, "flows", ring_row["input"]),
                        key=lambda f: f["flow_id"])]


def test_datasets_query_with_pandas_and_duckdb(folder: dict[str, Any], tmp_path: Path,
                                               dask_client: Any) -> None:
    import duckdb
    import pandas as pd

    out = tmp_path / "out"
    run_batch([folder["dir"]], out, client=dask_client)
    summary = pd.read_parquet(out / "summary.parquet")
    ok = summary[summary.status == "ok"]
    resets = pd.read_parquet(out / "resets")
    flows = pd.read_parquet(out / "flows")
    assert "input" in resets.columns and "origin" in resets.columns
    per_input = resets.groupby(resets["input"].astype(str)).size()
    expected = ok.set_index("input")["resets"]
    assert {k: int(v) for k, v in per_input.items()} == {
        k: int(v) for k, v in expected.items() if v}
    assert len(flows) == int(ok["flows"].sum())
    con = duckdb.connect()
    q = con.execute(
        "SELECT s.name, r.origin, count(*) AS n "
        f"FROM read_parquet('{out}/resets/*/*.parquet', hive_partitioning = true) r "
        f"JOIN read_parquet('{out}/summary.parquet') s ON s.input = r.input "
        "GROUP BY ALL ORDER BY ALL").fetchall()
    assert sum(n for _, _, n in q) == len(resets)
    by_origin = resets.groupby("origin").size().to_dict()
    duck_origin: dict[str, int] = {}
    for _, origin, n in q:
        duck_origin[origin] = duck_origin.get(origin, 0) + n
    assert duck_origin == by_origin
    # Nested evidence is queryable too.
    n_ev = con.execute(
        "SELECT count(*) FROM (SELECT unnest(evidence) AS e FROM read_parquet("
        f"'{out}/resets/*/*.parquet', hive_partitioning = true))").fetchone()
    assert n_ev is not None and n_ev[0] == sum(len(e) for e in resets["evidence"])


def test_resume_skips_done_and_redoes_changed(folder: dict[str, Any], tmp_path: Path,
                                              dask_client: Any, h) -> None:
    out = tmp_path / "out"
    first = run_batch([folder["dir"]], out, client=dask_client)
    parts = {p: p.stat().st_mtime_ns for p in out.glob("*/input=*/*.parquet")}
    assert first.analysed == first.inputs - 2

    second = run_batch([folder["dir"]], out, client=dask_client)
    assert second.skipped == first.analysed and second.analysed == 0
    assert second.errors == 2  # bad files are retried, and fail again
    assert {p: p.stat().st_mtime_ns for p in out.glob("*/input=*/*.parquet")} == parts

    # Change one capture in place (editcap shifts its timestamps; same size): redone.
    victim = next(Path(f) for f in folder["singles"] if f.endswith(".pcap"))
    size = victim.stat().st_size
    old_id = input_id(content_hash([str(victim)]))
    shifted = tmp_path / "shifted.pcap"
    kind = h.run([h.need_tool("capinfos"), "-t", str(victim)]).stdout
    fmt = "nsecpcap" if "nanosecond" in kind else "pcap"
    h.run([h.need_tool("editcap"), "-F", fmt, "-t", "3600", str(victim), str(shifted)])
    shutil.copy(shifted, victim)
    assert victim.stat().st_size == size
    third = run_batch([folder["dir"]], out, client=dask_client)
    assert third.analysed == 1 and third.skipped == first.analysed - 1
    assert not (out / "resets" / f"input={old_id}").exists()
    assert (out / "resets" / f"input={input_id(content_hash([str(victim)]))}").is_dir()
    _check_input_matches_single_process(out, [str(victim)], h)
    names = [r["name"] for r in read_summary(out)]
    assert len(names) == len(set(names)) == first.inputs

    # A half-written run (partition gone, summary says ok) is redone, not trusted.
    other = next(f for f in folder["singles"] if f != str(victim))
    ident = input_id(content_hash([other]))
    shutil.rmtree(out / "flows" / f"input={ident}")
    fourth = run_batch([folder["dir"]], out, client=dask_client)
    assert fourth.analysed == 1
    _check_input_matches_single_process(out, [other], h)


def test_sharded_input_on_the_cluster_equals_single_process(generated: Path, tmp_path: Path,
                                                            dask_client: Any, h) -> None:
    out = tmp_path / "out"
    report = run_batch([generated], out, client=dask_client, shards=3)
    assert report.analysed == 1 and report.errors == 0, report.rows
    (row,) = read_summary(out)
    assert row["shards"] == 3
    n = _check_input_matches_single_process(out, [str(generated)], h, sharded=True)
    assert n == row["resets"] > 0
    assert not (out / ".shards").exists()
    # Automatic sharding above a size threshold gives the same partitions' content.
    out2 = tmp_path / "out2"
    run_batch([generated], out2, client=dask_client, shard_above_bytes=1000)
    (row2,) = read_summary(out2)
    assert row2["shards"] == 2  # one shard per worker thread
    _check_input_matches_single_process(out2, [str(generated)], h, sharded=True)


def test_stalls_are_a_dataset_counted_like_resets(folder: dict[str, Any], tmp_path: Path,
                                                 dask_client: Any) -> None:
    # Issue 17: a stall is a finding like a reset: its own dataset, a count per input
    # in the summary and in the report, the same records as one process finds.
    import pandas as pd

    out = tmp_path / "out"
    report = run_batch([folder["dir"]], out, client=dask_client)
    summary = pd.read_parquet(out / "summary.parquet")
    ok = summary[summary.status == "ok"]
    stalls = pd.read_parquet(out / "stalls")
    per_input = stalls.groupby(stalls["input"].astype(str)).size()
    assert {k: int(v) for k, v in per_input.items()} == {
        k: int(v) for k, v in ok.set_index("input")["stalls"].items() if v}
    assert report.stalls == len(stalls) > 0
    for cap in (Path(folder["dir"]) / "lab").glob("*.client.pcap"):
        want = sorted((s.flow_id, s.kind, s.cause_id) for s in analyze(str(cap)).tracker.stalls())
        ident = input_id(content_hash([str(cap)]))
        got = sorted((r["flow_id"], r["kind"], r["cause_id"])
                     for r in _partition_rows(out, "stalls", ident))
        assert got == want, cap.name
