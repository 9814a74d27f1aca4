"""The `rstscope analyze` command: outputs, filters and exit codes, run as a user would."""

from __future__ import annotations

import csv
import gzip
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rstscope.cli import main
from tests.conftest import SAMPLES

REPO = Path(__file__).resolve().parent.parent
FW_CLIENT = SAMPLES / "fw-idle-expiry-client-next.client.pcap"
SERVER_ABORT = SAMPLES / "server-abort.client.pcap"


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    out, err = capsys.readouterr()
    code = exc.value.code if isinstance(exc.value.code, int) else 0
    return code, out, err


def labels(pcap: Path) -> list[dict]:
    return json.loads(pcap.with_suffix(".labels.json").read_text())


def test_table_output_lists_each_reset(capsys, monkeypatch):
    # A wide terminal has room for the frame column (80 columns leave it out).
    monkeypatch.setenv("COLUMNS", "160")
    code, out, err = run(["analyze", str(FW_CLIENT)], capsys)
    assert code == 0, err
    assert "resets: 1" in out
    assert "vantage: client" in out
    # One table row per RST, keyed by its frame number, then its cause and action lines.
    frames = [lab["frame"] for lab in labels(FW_CLIENT)]
    lines = out.splitlines()
    rows = [i for i, ln in enumerate(lines) if ln[:2].isdigit()]
    assert len(rows) == len(frames)
    assert str(frames[0]) in lines[rows[0]].split()
    assert lines[rows[0] + 1].startswith("    ") and "4.5 s of silence" in lines[rows[0] + 1]
    assert lines[rows[0] + 2].startswith("    -> send keepalives")


def test_json_document_schema(capsys):
    code, out, _ = run(["analyze", "--format", "json", str(SERVER_ABORT)], capsys)
    assert code == 0
    doc = json.loads(out)
    # One envelope for any number of files (docs/schema.md); the records carry "file".
    assert set(doc) == {"schema_version", "summary", "files", "flows", "resets"}
    assert doc["summary"]["resets"] == len(doc["resets"]) == len(labels(SERVER_ABORT))
    assert doc["files"][0]["file"] == str(SERVER_ABORT)
    r = doc["resets"][0]
    for key in ("frame", "ts", "ts_ns", "src", "sport", "dst", "dport", "origin", "sender",
                "confidence", "cause", "idle_gap_s", "ttl", "expected_ttl", "hop_delta",
                "evidence", "alternatives", "advice", "conn_state"):
        assert key in r, key
    assert r["frame"] == labels(SERVER_ABORT)[0]["frame"]
    assert isinstance(r["ts_ns"], int) and abs(r["ts"] - r["ts_ns"] / 1e9) < 1e-6
    assert all({"name", "value", "expected", "weight"} <= set(e) for e in r["evidence"])


def test_jsonl_and_csv_to_file(tmp_path, capsys):
    out_jsonl = tmp_path / "r.jsonl"
    code, _, _ = run(["analyze", "--format", "jsonl", "-o", str(out_jsonl),
                      str(FW_CLIENT), str(SERVER_ABORT)], capsys)
    assert code == 0
    lines = [json.loads(x) for x in out_jsonl.read_text().splitlines()]
    assert len(lines) == len(labels(FW_CLIENT)) + len(labels(SERVER_ABORT))
    assert {ln["file"] for ln in lines} == {str(FW_CLIENT), str(SERVER_ABORT)}

    out_csv = tmp_path / "r.csv"
    code, _, _ = run(["analyze", "--format", "csv", "-o", str(out_csv), str(FW_CLIENT)], capsys)
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(out_csv.read_text())))
    assert len(rows) == len(labels(FW_CLIENT))
    assert rows[0]["frame"] == str(labels(FW_CLIENT)[0]["frame"])


def test_gzip_and_stdin_give_the_same_verdicts(tmp_path, capsys):
    gz = tmp_path / "c.pcap.gz"
    gz.write_bytes(gzip.compress(FW_CLIENT.read_bytes()))
    _, plain, _ = run(["analyze", "--format", "json", str(FW_CLIENT)], capsys)
    _, zipped, _ = run(["analyze", "--format", "json", str(gz)], capsys)
    proc = subprocess.run([sys.executable, "-m", "rstscope", "analyze", "--format", "json", "-"],
                          input=FW_CLIENT.read_bytes(), capture_output=True, check=True)
    # Records carry their "file" (the one JSON envelope); the verdicts must match.
    strip = lambda d: [{k: v for k, v in r.items() if k != "file"}  # noqa: E731
                       for r in json.loads(d)["resets"]]
    assert strip(plain) == strip(zipped) == strip(proc.stdout)


def test_port_and_host_filters(capsys):
    _, out, _ = run(["analyze", "--format", "json", "--port", "9", str(FW_CLIENT)], capsys)
    assert json.loads(out)["summary"]["resets"] == 0
    _, out, _ = run(["analyze", "--format", "json", "--port", "443", str(FW_CLIENT)], capsys)
    assert json.loads(out)["summary"]["resets"] == 1
    lab = labels(FW_CLIENT)[0]
    _, out, _ = run(["analyze", "--format", "json", "--host", lab["dst"], str(FW_CLIENT)], capsys)
    assert json.loads(out)["summary"]["resets"] == 1
    _, out, _ = run(["analyze", "--format", "json", "--host", "203.0.113.254", str(FW_CLIENT)],
                    capsys)
    assert json.loads(out)["summary"]["resets"] == 0


def test_fail_on_origin(capsys):
    code, _, _ = run(["analyze", "--fail-on", "any", str(FW_CLIENT)], capsys)
    assert code == 1
    code, _, _ = run(["analyze", "--fail-on", "client", str(SAMPLES / "graceful-close.client.pcap")],
                     capsys)
    assert code == 0


@pytest.mark.parametrize(
    ("make", "code", "needle"),
    [
        (lambda p: None, 66, "no such file"),
        (lambda p: p.write_bytes(b""), 65, ""),
        (lambda p: p.write_text("hello, this is not a capture\n" * 20), 65, ""),
    ],
    ids=["missing", "empty", "not-a-capture"],
)
def test_bad_input_one_line_and_exit_code(tmp_path, make, code, needle):
    p = tmp_path / "bad.pcap"
    make(p)
    proc = subprocess.run([sys.executable, "-m", "rstscope", "analyze", str(p)],
                          capture_output=True, text=True)
    assert proc.returncode == code, proc.stderr
    err_lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(err_lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    assert needle in err_lines[0].lower()


def test_unwritable_output_exit_74(tmp_path):
    out = tmp_path / "no" / "such" / "dir" / "out.json"
    proc = subprocess.run([sys.executable, "-m", "rstscope", "analyze", "--format", "json",
                           "-o", str(out), str(FW_CLIENT)], capture_output=True, text=True)
    assert proc.returncode == 74, proc.stderr
    assert "Traceback" not in proc.stderr


def test_usage_error_exit_2():
    proc = subprocess.run([sys.executable, "-m", "rstscope", "analyze", "--format", "xml", "x"],
                          capture_output=True, text=True)
    assert proc.returncode == 2


def test_help_lists_every_command_without_importing_them():
    proc = subprocess.run([sys.executable, "-m", "rstscope", "--help"], capture_output=True,
                          text=True, check=True)
    for cmd in ("analyze", "capture", "watch", "plot", "report", "verify", "batch", "redact", "lab"):
        assert cmd in proc.stdout
    assert "Exit codes" in proc.stdout
