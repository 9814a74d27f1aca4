"""Names in the core carry their unit and their meaning.

The project's rule is that a name says what it holds and in which unit.  The
core once used bare ``ts`` (a time, but in which unit?), ``plen`` and ``d``
(a direction, but which way is 0?) and an ``nr_`` prefix that nothing
explained (it meant "the last non-RST packet"), and times such as ``first_ts``
or ``ch_ts`` said neither their unit nor (``ch``) what they timed.  They were
renamed to ``ts_ns``, ``payload_len``, ``direction``, ``last_non_rst_*`` and
``*_ts_ns`` (``client_hello_ts_ns``); this scan of
``rstscope/core`` keeps them from coming back, since a rename is easy to undo one
new function at a time and no behavioural test would notice.

It looks at what a reader meets as a name: parameters, class fields, attributes
(assigned or read), ``__slots__`` and dtype field strings.  Plain local variables
are left alone (``for d in (0, 1)`` over ``direction_of`` reads fine).  Public
serialized names (JSON/CSV fields of the records) are a schema, not a choice made
here, and are listed in :data:`PUBLIC` with the reason.
"""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "rstscope" / "core"

BANNED = {"ts": "ts_ns", "d": "direction", "plen": "payload_len"}

#: (file, class, field): public names that stay as they are.
PUBLIC = {
    # ResetRecord.ts is the RST's time in seconds (a float) in the JSON/CSV output,
    # next to ts_ns; renaming it would break every consumer of that schema.
    ("records.py", "ResetRecord", "ts"),
}


def _nr(name: str) -> bool:
    """The unexplained "nr_" prefix, in any case, alone or after a side prefix."""
    low = name.lower()
    return low.startswith("nr_") or "_nr_" in low or low.endswith("_nr")


def _problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    out: list[str] = []

    def bad(name: str, where: int, what: str, cls: str = "") -> None:
        if (path.name, cls, name) in PUBLIC:
            return
        if name in BANNED:
            out.append(f"{path.name}:{where}: {what} {name!r} (say {BANNED[name]!r})")
        elif name.lower().endswith("_ts"):
            out.append(f"{path.name}:{where}: {what} {name!r} (a time: say its unit, _ts_ns)")
        elif _nr(name):
            out.append(f"{path.name}:{where}: {what} {name!r} (say what nr_ means)")

    classes: dict[ast.AST, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            for child in node.body:
                classes[child] = node.name
    for node in ast.walk(tree):
        if isinstance(node, ast.arg):
            bad(node.arg, node.lineno, "parameter")
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) \
                and node in classes:
            bad(node.target.id, node.lineno, "class field", classes[node])
        elif isinstance(node, ast.Attribute):
            bad(node.attr, node.lineno, "attribute")
        elif isinstance(node, ast.Name) and node.id.isupper() or isinstance(node, ast.FunctionDef):
            name = node.id if isinstance(node, ast.Name) else node.name
            bad(name, node.lineno, "name")
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            # __slots__ entries, table column names and dtype field names.
            bad(node.value, node.lineno, "string")
    return out


def test_core_names_carry_units_and_meaning() -> None:
    files = sorted(CORE.glob("*.py"))
    assert len(files) > 10  # the scan must see the core, not an empty directory
    problems = [p for f in files for p in _problems(f)]
    assert problems == []


def test_scan_catches_each_banned_form(tmp_path: Path) -> None:
    """The scan itself must fail on every form it claims to guard."""
    src = tmp_path / "sample.py"
    src.write_text(
        "NR_TS = 1\n"
        "class C:\n"
        "    ts: int\n"
        "    __slots__ = ('nr_last_ts',)\n"
        "def f(d: int, plen: int) -> int:\n"
        "    return C().ts + d + plen\n"
        "def g(c: object) -> object:\n"
        "    return c.r_nr_len, c.d, c.first_ts\n"
    )
    found = "\n".join(_problems(src))
    for needle in ("'NR_TS'", "class field 'ts'", "'nr_last_ts'", "parameter 'd'",
                   "parameter 'plen'", "attribute 'ts'", "'r_nr_len'", "attribute 'd'",
                   "attribute 'first_ts'"):
        assert needle in found, needle


def test_public_schema_names_stay() -> None:
    """The allowed public name is really a field of the record (not a stale entry)."""
    text = (CORE / "records.py").read_text()
    assert "class ResetRecord" in text and "\n    ts: float" in text
