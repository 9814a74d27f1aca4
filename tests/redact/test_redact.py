"""Redaction: fields kept (checked with tshark), payloads and identities gone, verdicts unchanged."""

from __future__ import annotations

import gzip
import ipaddress
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rstscope.errors import CaptureError, InputMissingError, RstscopeError, UsageError
from rstscope.redact import CryptoPAn, load_key, parse_key_hex, redact_capture
from tests.conftest import SAMPLES
from tests.robustness import corpus

KEY = bytes(range(32))
ROOT = Path(__file__).resolve().parents[2]

# Header fields that must survive redaction unchanged (tshark names).
KEPT = (
    "frame.number", "frame.time_epoch", "frame.len", "ip.ttl", "ip.id", "ip.flags.df", "ip.len",
    "ipv6.hlim", "ipv6.plen", "tcp.srcport", "tcp.dstport", "tcp.seq_raw", "tcp.ack_raw",
    "tcp.flags", "tcp.window_size_value", "tcp.len", "tcp.options.mss_val",
    "tcp.options.wscale.shift", "tcp.options.sack_perm", "tcp.options.timestamp.tsval",
    "tcp.options.timestamp.tsecr",
)
ADDRS = ("ip.src", "ip.dst", "ipv6.src", "ipv6.dst")


def tshark_rows(path: Path, fields: tuple[str, ...], display: str = "tcp") -> list[list[str]]:
    cmd = ["tshark", "-r", str(path), "-n", "-o", "tcp.analyze_sequence_numbers:FALSE",
           "-o", "tcp.relative_sequence_numbers:FALSE", "-Y", display, "-T", "fields",
           "-E", "separator=\t", "-E", "occurrence=a"]
    for f in fields:
        cmd += ["-e", f]
    res = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return [line.split("\t") for line in res.stdout.splitlines()]


def assert_fields_preserved(orig: Path, red: Path, cpan: CryptoPAn) -> int:
    """Every kept field equal, every address equal to its Crypto-PAn image; returns rows."""
    fields = (*KEPT, *ADDRS, "frame.protocols")
    a, b = tshark_rows(orig, fields), tshark_rows(red, fields)
    assert len(a) == len(b), f"{orig}: {len(a)} TCP frames before, {len(b)} after"
    for ra, rb in zip(a, b, strict=True):
        if "openflow" in ra[-1]:
            # OpenFlow packet-in messages quote a whole packet inside the TCP payload;
            # that inner packet is payload and is removed: compare the outer headers only.
            ra = [v.split(",")[0] for v in ra]
            rb = [v.split(",")[0] for v in rb]
        for i, name in enumerate(fields[:-1]):
            want = ra[i]
            if name in ADDRS:
                want = ",".join(cpan.anonymize(x) for x in want.split(",") if x)
            assert rb[i] == want, f"{orig} frame {ra[0]}: {name} {ra[i]!r} -> {rb[i]!r}"
    return len(a)


# -- comparing analyses -----------------------------------------------------------

_V4 = re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}\b")


def _address_map(analysis: Any, cpan: CryptoPAn) -> dict[str, str]:
    out = {}
    for f in analysis.flow_records():
        for h in (f["orig_h"], f["resp_h"]):
            out[h] = cpan.anonymize(h)
    return out


def _mapped(value: Any, amap: dict[str, str], cpan: CryptoPAn) -> Any:
    if isinstance(value, str):
        if value in amap:
            return amap[value]
        for raw, anon in sorted(amap.items(), key=lambda kv: -len(kv[0])):
            value = value.replace(raw, anon)
        return value
    if isinstance(value, dict):
        return {k: _mapped(v, amap, cpan) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_mapped(v, amap, cpan) for v in value]
    return value


def analysis_differences(orig: Path, red: Path, cpan: CryptoPAn) -> list[str]:
    """Every difference between the analyses, with addresses mapped through Crypto-PAn."""
    from rstscope.api import analyze

    a, b = analyze(orig), analyze(red)
    amap = _address_map(a, cpan)
    diffs = []
    sa, sb = a.summary(), b.summary()
    for k in ("packets", "tcp_packets", "flows", "resets", "resets_by_origin", "vantage"):
        if sa[k] != sb[k]:
            diffs.append(f"summary {k}: {sa[k]!r} != {sb[k]!r}")
    # flow_id is an opaque label: it must map one-to-one, not keep its value (the
    # tracker may number a batch's new flows in address order).  Flows are matched
    # by their anonymised key and start time, resets by frame.
    def flow_key(f: dict[str, Any], mapped: bool) -> tuple[Any, ...]:
        h = (lambda x: amap.get(x, x)) if mapped else (lambda x: x)
        return (h(f["orig_h"]), f["orig_p"], h(f["resp_h"]), f["resp_p"], f["generation"],
                f["first_ts_ns"])

    fa = {flow_key(f, True): f for f in a.flow_records()}
    fb = {flow_key(f, False): f for f in b.flow_records()}
    if fa.keys() != fb.keys():
        diffs.append(f"flows differ: {sorted(fa.keys() ^ fb.keys(), key=str)[:3]}")
    ids = {fa[k]["flow_id"]: fb[k]["flow_id"] for k in fa.keys() & fb.keys()}
    if len(set(ids.values())) != len(ids):
        diffs.append("flow ids do not map one-to-one")
    pairs = [("flow", fa[k], fb[k]) for k in sorted(fa.keys() & fb.keys(), key=str)]
    ra = sorted(a.reset_records(), key=lambda r: (r["file_id"], r["frame"]))
    rb = sorted(b.reset_records(), key=lambda r: (r["file_id"], r["frame"]))
    if len(ra) != len(rb):
        diffs.append(f"resets: {len(ra)} != {len(rb)}")
    pairs += [("reset", x, y) for x, y in zip(ra, rb, strict=False)]
    for kind, x, y in pairs:
        xm = _mapped(x, amap, cpan)
        xm["flow_id"] = ids.get(x["flow_id"], x["flow_id"])
        for k in xm:
            if xm[k] != y[k]:
                diffs.append(f"{kind} {x.get('frame', x['flow_id'])} {k}: {x[k]!r} -> {y[k]!r}")
    return diffs


# -- loopback captures written by real tcpdump ------------------------------------------


@pytest.fixture(scope="module")
def variants(loopback_pcap: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The loopback capture in several containers, converted by real tools."""
    d = tmp_path_factory.mktemp("variants")
    out = {"pcap": loopback_pcap}
    if shutil.which("editcap"):
        subprocess.run(["editcap", "-F", "pcapng", str(loopback_pcap), str(d / "lo.pcapng")], check=True)
        out["pcapng"] = d / "lo.pcapng"
    if shutil.which("tcpdump"):
        subprocess.run(["tcpdump", "-r", str(loopback_pcap), "--time-stamp-precision", "nano",
                        "-w", str(d / "nano.pcap")], check=True, capture_output=True)
        out["pcap-nano"] = d / "nano.pcap"
    any_cap = corpus.loopback_capture(d / "any.pcap", extra_args=("-i", "any", "-y", "LINUX_SLL2"))
    out["sll2"] = any_cap
    if shutil.which("mergecap"):
        # Two interfaces of different link types in one pcapng (two IDBs).
        subprocess.run(["mergecap", "-F", "pcapng", "-w", str(d / "multi.pcapng"),
                        str(loopback_pcap), str(any_cap)], check=True)
        out["pcapng-multi-idb"] = d / "multi.pcapng"
    gz = d / "lo.pcap.gz"
    gz.write_bytes(gzip.compress(loopback_pcap.read_bytes()))
    out["gzip"] = gz
    return out


VARIANTS = ("pcap", "pcapng", "pcap-nano", "sll2", "pcapng-multi-idb", "gzip")


@pytest.mark.parametrize("name", VARIANTS)
def test_header_fields_preserved(name: str, variants: dict[str, Path], tshark: str,
                                 tmp_path: Path) -> None:
    if name not in variants:
        pytest.skip(f"no tool to build the {name} variant")
    red = tmp_path / "red.cap"
    stats = redact_capture(variants[name], red, KEY, keep_tls_headers=True)
    assert stats.frames > 0 and stats.tcp_segments > 0
    assert assert_fields_preserved(variants[name], red, CryptoPAn(KEY)) == stats.tcp_segments


def test_payload_and_identities_removed(variants: dict[str, Path], tshark: str,
                                        tmp_path: Path) -> None:
    src = variants["pcap"]
    red = tmp_path / "red.pcap"
    redact_capture(src, red, KEY)
    # No TCP payload byte is left, in any frame: each ends at the TCP header.
    rows = tshark_rows(red, ("frame.number", "tcp.payload", "eth.src", "eth.dst", "tcp.len",
                             "frame.cap_len", "frame.len"))
    assert rows
    assert sum(int(r[4]) for r in rows) > 0, "the capture should have had payload"
    for num, payload, esrc, edst, tcp_len, caplen, wirelen in rows:
        assert payload == "", f"frame {num} still has payload"
        assert esrc == edst == "00:00:00:00:00:00"
        assert int(caplen) < int(wirelen) or int(tcp_len) == 0
    # The original payload marker strings are nowhere in the file.
    data = red.read_bytes()
    assert corpus.SERVER_DATA[5:40] not in data and corpus.CLIENT_HELLO[:5] not in data
    # Not one original IPv6 address survives as bytes anywhere.
    orig_v6 = {ipaddress.ip_address(x).packed for r in tshark_rows(src, ("ipv6.src", "ipv6.dst"))
               for x in r if x}
    assert orig_v6 and not any(a in data for a in orig_v6)
    v4_after = {x for r in tshark_rows(red, ("ip.src", "ip.dst")) for x in r if x}
    assert "127.0.0.1" not in v4_after


def test_keep_tls_headers_keeps_only_record_headers(variants: dict[str, Path], tshark: str,
                                                   tmp_path: Path) -> None:
    red = tmp_path / "red.pcap"
    redact_capture(variants["pcap"], red, KEY, keep_tls_headers=True)
    rows = tshark_rows(red, ("tcp.payload",), display="tcp.len > 0")
    kept = [bytes.fromhex(r[0].replace(":", "")) for r in rows if r[0]]
    assert kept, "the TLS-looking records should keep their headers"
    assert all(len(k) <= 6 for k in kept)
    assert corpus.CLIENT_HELLO[:6] in kept  # record header + ClientHello type


def test_same_key_same_mapping_across_files(variants: dict[str, Path], tshark: str,
                                            tmp_path: Path) -> None:
    r1, r2, r3 = tmp_path / "1.pcap", tmp_path / "2.pcap", tmp_path / "3.pcap"
    redact_capture(variants["pcap"], r1, KEY)
    redact_capture(variants["sll2"], r2, KEY)
    redact_capture(variants["pcap"], r3, bytes(32))
    a1 = {x for r in tshark_rows(r1, ADDRS) for v in r for x in v.split(",") if x}
    a2 = {x for r in tshark_rows(r2, ADDRS) for v in r for x in v.split(",") if x}
    a3 = {x for r in tshark_rows(r3, ADDRS) for v in r for x in v.split(",") if x}
    assert a1 == a2 and len(a1) == 2  # 127.0.0.1 and ::1, mapped the same in both files
    assert a1.isdisjoint(a3)


def test_verdicts_identical_loopback(variants: dict[str, Path], tmp_path: Path) -> None:
    for name in VARIANTS:
        if name not in variants:
            continue
        red = tmp_path / f"{name}.red"
        redact_capture(variants[name], red, KEY, keep_tls_headers=True)
        assert analysis_differences(variants[name], red, CryptoPAn(KEY)) == [], name


# -- lab samples and public captures ----------------------------------------------------


def _samples() -> list[Path]:
    return sorted(p for p in SAMPLES.rglob("*") if p.is_file() and ".pcap" in p.name)


def test_verdicts_identical_lab_samples(tmp_path: Path) -> None:
    samples = _samples()
    if not samples:
        pytest.skip("samples/ has no lab captures yet (regenerate them with the lab)")
    failures = {}
    for s in samples:
        red = tmp_path / (s.name + ".red")
        redact_capture(s, red, KEY, keep_tls_headers=True)
        diffs = analysis_differences(s, red, CryptoPAn(KEY))
        if diffs:
            failures[str(s.relative_to(ROOT))] = diffs[:5]
    assert failures == {}


SHARED = corpus.shared_captures()


@pytest.mark.skipif(not SHARED, reason="../shared/captures is not present")
def test_verdicts_identical_shared_captures(tmp_path: Path) -> None:
    failures = {}
    for cap in SHARED:
        red = tmp_path / "red"
        redact_capture(cap, red, KEY, keep_tls_headers=True)
        diffs = analysis_differences(cap, red, CryptoPAn(KEY))
        if diffs:
            failures[cap.name] = diffs[:5]
    assert failures == {}


@pytest.mark.skipif(not SHARED, reason="../shared/captures is not present")
def test_header_fields_preserved_shared_captures(tshark: str, tmp_path: Path) -> None:
    # One tshark run each way: all captures concatenated (several link types, so
    # several IDBs) by real mergecap, then redacted as one pcapng.
    if shutil.which("mergecap") is None:
        pytest.skip("mergecap is not installed")
    merged = tmp_path / "all.pcapng"
    subprocess.run(["mergecap", "-a", "-F", "pcapng", "-w", str(merged), *map(str, SHARED)],
                   check=True, capture_output=True)
    red = tmp_path / "all.red.pcapng"
    stats = redact_capture(merged, red, KEY, keep_tls_headers=True)
    assert stats.blanked == {}, "every link type in the public captures is understood"
    assert assert_fields_preserved(merged, red, CryptoPAn(KEY)) > 1000


# -- keys, CLI, bad input ------------------------------------------------------------------


def test_keys(tmp_path: Path) -> None:
    raw = tmp_path / "k.bin"
    raw.write_bytes(KEY)
    text = tmp_path / "k.txt"
    text.write_text(KEY.hex() + "\n")
    assert load_key(raw) == load_key(text) == parse_key_hex(KEY.hex()) == KEY
    with pytest.raises(UsageError):
        parse_key_hex("abcd")
    with pytest.raises(UsageError):
        parse_key_hex("zz" * 32)
    with pytest.raises(InputMissingError):
        load_key(tmp_path / "missing")


def _cli(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "rstscope", "redact", *args],
                          capture_output=True, input=stdin, timeout=120)


def test_cli(variants: dict[str, Path], tmp_path: Path) -> None:
    src = variants["pcap"]
    keyfile = tmp_path / "key"
    keyfile.write_bytes(KEY)
    out1, out2 = tmp_path / "a.pcap", tmp_path / "b.pcap"
    r = _cli(str(src), "-o", str(out1), "--key", str(keyfile))
    assert r.returncode == 0, r.stderr
    assert b"redacted" in r.stderr
    r = _cli(str(src), "-o", str(out2), "--key-hex", KEY.hex())
    assert r.returncode == 0 and out1.read_bytes() == out2.read_bytes()
    # stdin to stdout
    r = _cli("-", "-o", "-", "--key-hex", KEY.hex(), stdin=src.read_bytes())
    assert r.returncode == 0 and r.stdout == out1.read_bytes()
    # no key: works, with a warning, and a different mapping each run
    r = _cli(str(src), "-o", str(tmp_path / "c.pcap"))
    assert r.returncode == 0 and b"random one-time key" in r.stderr


@pytest.mark.parametrize(("args", "code"), [
    (("{missing}", "-o", "{out}"), 66),
    (("{text}", "-o", "{out}"), 65),
    (("{src}", "-o", "{out}", "--key-hex", "1234"), 2),
    (("{src}", "-o", "{out}", "--key-hex", "00" * 32, "--key", "{src}"), 2),
    (("{src}", "-o", "{nodir}"), 74),
])
def test_cli_errors(args: tuple[str, ...], code: int, variants: dict[str, Path],
                    tmp_path: Path) -> None:
    text = tmp_path / "notes.txt"
    text.write_text("not a capture at all\n")
    subst = {"missing": str(tmp_path / "nope.pcap"), "out": str(tmp_path / "o.pcap"),
             "text": str(text), "src": str(variants["pcap"]),
             "nodir": str(tmp_path / "no" / "such" / "dir" / "o.pcap")}
    r = _cli(*(a.format(**subst) for a in args))
    assert r.returncode == code, r.stderr
    assert b"Traceback" not in r.stderr
    assert len(r.stderr.decode().strip().splitlines()) == 1


@pytest.mark.parametrize("kind", corpus.DAMAGE_KINDS)
def test_damaged_input(kind: str, variants: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "broken.pcap"
    broken.write_bytes(corpus.damage(variants["pcap"].read_bytes(), kind, seed=7))
    try:
        stats = redact_capture(broken, tmp_path / "out.pcap", KEY)
    except CaptureError:
        assert kind in ("truncated-header", "zero-length", "wrong-magic", "text-file")
        return
    except RstscopeError as exc:  # pragma: no cover - any other expected error is a finding
        pytest.fail(f"{kind}: unexpected {type(exc).__name__}: {exc}")
    assert kind not in ("truncated-header", "zero-length", "wrong-magic", "text-file")
    if kind in ("truncated-last-record", "huge-caplen", "truncated-in-record-header"):
        assert stats.warnings


def test_comparison_detects_a_changed_ttl(variants: dict[str, Path], tmp_path: Path) -> None:
    """The verdict comparison above can fail: a redacted copy with one TTL changed differs."""
    red = tmp_path / "red.pcap"
    redact_capture(variants["pcap"], red, KEY)
    data = bytearray(red.read_bytes())
    endian, recs = corpus.pcap_records(bytes(data))
    rst_frames = [int(r[0]) for r in tshark_rows(red, ("frame.number",), "tcp.flags.reset == 1 && ip")]
    off, _ = recs[rst_frames[0] - 1]
    data[off + 16 + 14 + 8] ^= 0x40  # Ethernet, then the IPv4 TTL byte
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(bytes(data))
    assert any("ttl" in d for d in analysis_differences(variants["pcap"], bad, CryptoPAn(KEY)))


def test_pcapng_metadata_dropped(variants: dict[str, Path], tmp_path: Path) -> None:
    """Packet comments (written by real editcap) and other free text do not survive."""
    if shutil.which("editcap") is None:
        pytest.skip("editcap is not installed")
    commented = tmp_path / "commented.pcapng"
    subprocess.run(["editcap", "-F", "pcapng", "-a", "1:customer-secret-comment",
                    "--capture-comment", "site-secret-capture-comment",
                    str(variants["pcap"]), str(commented)], check=True)
    data = commented.read_bytes()
    assert b"customer-secret-comment" in data and b"site-secret-capture-comment" in data
    red = tmp_path / "red.pcapng"
    stats = redact_capture(commented, red, KEY)
    out = red.read_bytes()
    assert b"secret" not in out
    assert stats.frames == len(tshark_rows(commented, ("frame.number",), display="frame"))
