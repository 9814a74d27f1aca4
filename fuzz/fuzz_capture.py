"""Coverage-guided fuzzing of the capture readers and the analysis (atheris / libFuzzer).

Run locally (not in CI):

    .venv/bin/pip install atheris
    .venv/bin/python fuzz/fuzz_capture.py -atheris_runs=200000 -max_len=4096 fuzz/corpus

``fuzz/corpus`` (created on first run) collects interesting inputs; seed it
with small real captures, e.g. ``cp samples/*/*.pcap* fuzz/corpus/``.  Any
exception that is not an ``RstscopeError`` is a finding: libFuzzer stops and
writes the input to ``crash-<sha1>``; replay it with
``.venv/bin/python fuzz/fuzz_capture.py crash-<sha1>``.
Use ``-timeout=10`` to report hangs and ``-rss_limit_mb=1024`` for memory blowups.

Targets (the first input byte picks one):
  0  ``open_capture`` over the bytes (classic pcap / pcapng / gzip detection)
  1  the whole analysis (``rstscope.api.analyze``) over the bytes
  2  ``redact_capture`` over the bytes (redacted output must read back)
"""

from __future__ import annotations

import io
import sys

import atheris

with atheris.instrument_imports():
    from rstscope.api import analyze
    from rstscope.errors import RstscopeError
    from rstscope.ingest import open_capture
    from rstscope.redact import redact_capture

KEY = bytes(range(32))


def one_input(data: bytes) -> None:
    if not data:
        return
    target, body = data[0] % 3, data[1:]
    try:
        if target == 0:
            with open_capture(io.BytesIO(body), batch_size=256) as reader:
                n = sum(len(b) for b in reader)
                assert reader.stats.check(), "frames != tcp + non-TCP"
                assert n == reader.stats.tcp
        elif target == 1:
            analyze(io.BytesIO(body)).reset_records()
        else:
            out = io.BytesIO()
            redact_capture(io.BytesIO(body), out, KEY)
            with open_capture(io.BytesIO(out.getvalue())) as reader:
                for _ in reader:
                    pass
    except RstscopeError:
        pass


def main() -> None:
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
