"""Headless Chromium for report tests, run where it cannot reach any network.

Method (why it is robust): Chromium runs under ``unshare --user --net``
(``tests.loopback.UNSHARE``, no root needed), a fresh network namespace with only a (down) loopback interface, so nothing it tries
can leave the machine — not the page, not Chromium's own background update
checks.  It also writes a NetLog (``--log-net-log``); every URL request the
*page* makes appears there as ``URL_REQUEST_START_JOB`` with a network
isolation key of the page's site (``file://``), while Chromium's internal
requests carry ``null null``.  A request that fails for lack of a network is
still logged, so "no page request in the NetLog" means the page asked for
nothing.  A positive control (a page with an ``http://`` image) proves the
detector sees such requests.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.loopback import UNSHARE, private_netns_problem

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run",
         "--window-size=1200,2000"]


def chromium() -> list[str]:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, but CI must provide it (scripts/test.sh)")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    problem = private_netns_problem()
    if problem is not None:
        pytest.skip(f"chromium needs an empty network namespace: {problem}")
    # A new user namespace owns the new network namespace, so no root is needed.
    return [*UNSHARE, exe]


@dataclass(frozen=True)
class PageRun:
    screenshot: Path
    dom: str
    page_requests: list[str]  # URLs the page itself asked for


def page_requests(netlog: Path) -> list[str]:
    log = json.loads(netlog.read_text())
    types = log["constants"]["logEventTypes"]
    start_job = types["URL_REQUEST_START_JOB"]
    urls = []
    for ev in log["events"]:
        params = ev.get("params") or {}
        if ev.get("type") == start_job and "url" in params:
            nik = str(params.get("network_isolation_key", ""))
            if nik != "null null":  # not one of Chromium's own background requests
                urls.append(params["url"])
    return urls


def open_page(html_file: Path, work: Path) -> PageRun:
    exe = chromium()
    url = html_file.resolve().as_uri()
    shot, netlog = work / "shot.png", work / "netlog.json"
    run = subprocess.run([*exe, *FLAGS, f"--user-data-dir={work / 'profile-a'}",
                          f"--log-net-log={netlog}", "--net-log-capture-mode=Default",
                          f"--screenshot={shot}", url],
                         capture_output=True, text=True, timeout=120)
    assert shot.exists(), f"chromium made no screenshot: {run.stderr[-2000:]}"
    dom = subprocess.run([*exe, *FLAGS, f"--user-data-dir={work / 'profile-b'}", "--dump-dom", url],
                         capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    return PageRun(shot, dom.stdout, page_requests(netlog))
