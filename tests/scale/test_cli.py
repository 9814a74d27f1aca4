"""``rstscope batch`` through click, on a LocalCluster and on an external Dask cluster."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from rstscope.errors import UsageError
from rstscope.scale.cli import batch, parse_size


@pytest.fixture()
def small_folder(samples: list[Path], tmp_path: Path) -> Path:
    d = tmp_path / "in"
    d.mkdir()
    for s in samples[:4]:
        shutil.copy(s, d / s.name)
    (d / "junk.pcap").write_bytes(b"\x00" * 100)
    return d


def test_batch_command_local_cluster(small_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(batch, [str(small_folder), "-o", str(out), "--workers", "2"])
    assert res.exit_code == 0, res.output
    assert "5 inputs: 4 analysed, 0 skipped (already done), 1 failed" in res.output
    assert "junk.pcap" in res.output  # errors are named on stderr
    rows = pq.read_table(out / "summary.parquet").to_pylist()
    assert sorted(r["status"] for r in rows) == ["error", "ok", "ok", "ok", "ok"]
    again = CliRunner().invoke(batch, [str(small_folder), "-o", str(out), "--workers", "1"])
    assert again.exit_code == 0, again.output
    assert "0 analysed, 4 skipped" in again.output


def test_batch_command_usage_errors(small_folder: Path, tmp_path: Path) -> None:
    res = CliRunner().invoke(batch, [str(small_folder), "-o", str(tmp_path / "o"),
                                     "--workers", "2", "--scheduler", "tcp://127.0.0.1:1"])
    assert isinstance(res.exception, UsageError)
    res = CliRunner().invoke(batch, [str(tmp_path / "missing"), "-o", str(tmp_path / "o"),
                                     "--workers", "1"])
    assert res.exception is not None and getattr(res.exception, "exit_code", None) == 66
    # One parser with tcpdump's meaning everywhere: a suffix is binary, a bare number
    # is millions of bytes (issue 14: batch used to read 500M as 500,000,000).
    assert parse_size("2GiB") == 2 * 1024**3 and parse_size("500M") == 500 * 1024**2
    assert parse_size("3") == 3_000_000
    with pytest.raises(UsageError):
        parse_size("lots")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def external_cluster(tmp_path: Path) -> Iterator[str]:
    """A real `dask scheduler` + 2 `dask worker` processes on loopback, as docs/scale.md says."""
    dask = Path(sys.executable).with_name("dask")
    if not dask.exists():
        pytest.skip("the dask command-line tool is not installed")
    port = _free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    procs = [subprocess.Popen(
        [str(dask), "scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--dashboard-address", ":0", "--no-dashboard"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path,
        start_new_session=True)]
    try:
        for _ in range(2):
            procs.append(subprocess.Popen(
                [str(dask), "worker", address, "--nthreads", "1", "--nworkers", "1",
                 "--host", "127.0.0.1", "--no-dashboard", "--memory-limit", "2GiB"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=tmp_path,
                start_new_session=True))
        from distributed import Client

        deadline = time.monotonic() + 60
        while True:
            try:
                with Client(address, timeout="2s") as c:
                    if len(c.scheduler_info()["workers"]) == 2:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("the external Dask cluster did not start")
            time.sleep(0.5)
        yield address
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in reversed(procs):
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def test_batch_command_on_existing_scheduler(small_folder: Path, tmp_path: Path,
                                             external_cluster: str) -> None:
    out = tmp_path / "out"
    res = CliRunner().invoke(batch, [str(small_folder), "-o", str(out),
                                     "--scheduler", external_cluster])
    assert res.exit_code == 0, res.output
    rows = pq.read_table(out / "summary.parquet").to_pylist()
    assert sorted(r["status"] for r in rows) == ["error", "ok", "ok", "ok", "ok"]
    # The work ran in the external worker processes, not in this one.
    assert all(not r["worker"].endswith(f":{os.getpid()}") for r in rows)
