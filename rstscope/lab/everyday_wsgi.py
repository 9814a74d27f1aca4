"""A WSGI app for the worker-time-limit scenario: a slow event stream.

gunicorn's sync worker cannot report to its arbiter while a request runs, so a
response that streams longer than ``--timeout`` gets its worker killed
mid-stream (the arbiter's "WORKER TIMEOUT").  ``STEP_S`` between events keeps the
stream busy the whole time: the close comes from the time limit, not from idleness.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

STEP_S = 0.5


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/event-stream")])
    for n in range(120):
        yield f"data: chunk {n}\n\n".encode()
        time.sleep(STEP_S)
