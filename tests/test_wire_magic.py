"""Capture-container magics are written in ``rstscope/wire/`` and nowhere else in the package.

Issue 15 found three pcap/pcapng codecs that had drifted apart; ``rstscope.wire``
is now the only one.  A fourth would show itself first by spelling a container
magic again, so this scans every module outside ``wire/`` for each magic in
every form Python can spell it: an integer literal (either byte order, any
base, since ``ast`` folds them all to one value) and a bytes literal holding
the four bytes (either order).  Other modules name ``wire``'s constants
instead (``pcapng.SHB``, ``pcap.MAGIC_US``, ``opener.GZIP_MAGIC``).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "rstscope"
WIRE = PACKAGE / "wire"

# Each magic with where it is defined: the four-byte values in file byte order.
MAGICS: dict[str, bytes] = {
    "pcapng section header block type (pcapng spec, section 4.1)": bytes.fromhex("0a0d0d0a"),
    "pcapng byte-order magic (pcapng spec, section 4.1)": bytes.fromhex("1a2b3c4d"),
    "pcap microsecond magic (pcap-savefile(5))": bytes.fromhex("a1b2c3d4"),
    "pcap nanosecond magic (pcap-savefile(5))": bytes.fromhex("a1b23c4d"),
}
# gzip's two-byte magic (RFC 1952, section 2.3.1): only as a bytes literal, since
# the integer 0x1f8b is too short to be told apart from any other number.
GZIP = bytes.fromhex("1f8b")


def _forbidden_ints() -> dict[int, str]:
    out: dict[int, str] = {}
    for name, raw in MAGICS.items():
        out[int.from_bytes(raw, "big")] = name
        out[int.from_bytes(raw, "little")] = name
    return out


def magic_spellings(source: str) -> list[tuple[int, str]]:
    """(line, which magic) for every literal in ``source`` that spells a container magic."""
    ints = _forbidden_ints()
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Constant):
            continue
        v = node.value
        if isinstance(v, int) and not isinstance(v, bool) and v in ints:
            found.append((node.lineno, ints[v]))
        elif isinstance(v, bytes):
            for name, raw in MAGICS.items():
                if raw in v or raw[::-1] in v:
                    found.append((node.lineno, name))
            if v.startswith(GZIP):
                found.append((node.lineno, "gzip magic (RFC 1952)"))
    return found


def test_the_scan_sees_every_spelling() -> None:
    # Positive control: each way of writing a magic is caught, so an empty result
    # below means "not there", not "not looked for".
    src = ("A = 0x0A0D0D0A\nB = 168627466\nC = 0xD4C3B2A1\nD = b'\\n\\r\\r\\n'\n"
           "E = b'\\x4d\\x3c\\x2b\\x1a'\nF = b'\\x1f\\x8b'\nG = 0o1203206412\n")
    assert sorted(line for line, _ in magic_spellings(src)) == [1, 2, 3, 4, 5, 6, 7]


def test_container_magics_only_in_wire() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if WIRE in path.parents:
            continue
        for line, name in magic_spellings(path.read_text(encoding="utf-8")):
            offenders.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {name}")
    assert offenders == [], "container magics belong in rstscope/wire/:\n" + "\n".join(offenders)


def test_wire_defines_them() -> None:
    # The other half: the magics do exist in wire/ (the scan would pass on a
    # package that read no captures at all).
    found = {name for path in WIRE.glob("*.py")
             for _line, name in magic_spellings(path.read_text(encoding="utf-8"))}
    assert set(MAGICS) <= found
    assert "gzip magic (RFC 1952)" in found
