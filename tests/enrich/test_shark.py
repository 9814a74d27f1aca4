"""pyshark in a running event loop, clean shutdown, and a missing tshark."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import pytest

from rstscope.enrich import enrich_capture
from rstscope.enrich.shark import in_own_loop
from rstscope.errors import ToolUnavailableError


def test_in_own_loop_runs_beside_a_running_loop():
    async def main() -> bool:
        def inner(loop: asyncio.AbstractEventLoop) -> bool:
            return loop.run_until_complete(asyncio.sleep(0, result=True))

        return in_own_loop(inner)

    assert asyncio.run(main()) is True


def test_enrich_inside_asyncio_run(recording):
    """What a Jupyter cell does: call the API while an event loop is running."""

    async def cell():
        return enrich_capture(recording.pcap, keylog=recording.keylog)

    ctx = asyncio.run(cell())
    assert any(f.decrypted and f.http2 for f in ctx.flows.values())


def test_no_del_noise_at_exit(recording):
    """pyshark's __del__ must find nothing left to close (pyshark#366, #630)."""
    code = ("from rstscope.enrich import enrich_capture\n"
            f"ctx = enrich_capture({str(recording.pcap)!r}, keylog={str(recording.keylog)!r})\n"
            "print(len(ctx.flows))\n")
    res = subprocess.run([sys.executable, "-W", "default", "-c", code], capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0, res.stderr
    assert int(res.stdout) == 6
    for noise in ("Exception ignored", "Event loop is closed", "Traceback", "never awaited"):
        assert noise not in res.stderr


def test_missing_tshark_names_the_package(recording, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(ToolUnavailableError, match=r"apt-get install tshark"):
        enrich_capture(recording.pcap)
