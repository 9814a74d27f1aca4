"""Find capture files under PATHS and group ring-buffer siblings into ordered inputs.

Theory of operation
-------------------
The unit of work of ``rstscope batch`` is an *input*: the ordered list of files
of one capture.  A capture written with a ring buffer is several files, and a
connection that lives across a rotation must go through one tracker, or its
idle gap, handshake and RST context are cut at the boundary.  So siblings are
grouped by name, using the exact naming schemes of the two common writers:

* tcpdump ``-w NAME -C MB``: ``NAME``, ``NAME1``, ``NAME2``, ... (the number is
  appended to the whole name, extension included);
* tcpdump ``-w NAME -C MB -W N``: ``NAME0`` .. ``NAME<N-1>``, zero-padded to the
  width of N-1 (``x.pcap00`` .. ``x.pcap99``); the first file also carries a number;
* dumpcap / tshark / Wireshark ``-b``: ``PREFIX_NNNNN_YYYYmmddHHMMSS.EXT``
  (a file counter that never wraps, then the start time).

Rules, in order:

1. Files are siblings only within one directory and only when they share the
   scheme, the stem (tcpdump: ``NAME``; dumpcap: ``PREFIX`` + extension) and a
   ``.gz`` suffix state.
2. tcpdump siblings are ordered base file first (no number), then by the
   integer value of the suffix.  A ``-W`` ring (no base file) overwrites its
   files in a cycle, so after it wraps the oldest file is not number 0: the
   cycle is rotated to start at the file whose first packet is the oldest (the
   cyclic order itself is kept; only the start moves).  Packet time is used,
   not modification time, which copying does not preserve.
3. dumpcap siblings are ordered by the counter (it keeps increasing in ring mode).
4. Anything else is an input of its own.  ``group=False`` (``--no-group``)
   makes every file its own input.

File selection: a directory is walked recursively for ``*.pcap``, ``*.pcapng``,
``*.cap``, their ``.gz`` variants, and tcpdump-numbered names (``*.pcap<digits>``);
a glob pattern is expanded (``**`` recursive); a named file is taken as is,
whatever its extension.  Hidden files and directories are skipped.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from rstscope.errors import InputMissingError
from rstscope.ingest import open_capture

__all__ = ["CaptureInput", "discover", "expand_paths", "group_siblings"]

_EXTS = ("pcap", "pcapng", "cap")
# A capture name in a directory walk: known extension, optional tcpdump number, optional .gz.
_CAPTURE_NAME = re.compile(r"^.+\.(?:pcapng|pcap|cap)\d*(?:\.gz)?$", re.IGNORECASE)
# tcpdump -C/-W: the number is appended after the full name (extension included).
_TCPDUMP = re.compile(r"^(?P<stem>.+\.(?:pcapng|pcap|cap))(?P<num>\d*)(?P<gz>\.gz)?$",
                      re.IGNORECASE)
# dumpcap -b: PREFIX_NNNNN_YYYYmmddHHMMSS.EXT (counter at least 5 digits).
_DUMPCAP = re.compile(
    r"^(?P<prefix>.+)_(?P<num>\d{5,})_(?P<stamp>\d{14})(?P<ext>\.(?:pcapng|pcap|cap)(?:\.gz)?)$",
    re.IGNORECASE,
)
_GLOB_CHARS = re.compile(r"[*?\[]")


@dataclass(frozen=True, slots=True)
class CaptureInput:
    """One unit of work: the files of one capture, in reading order."""

    name: str  # display name: the first file's path, plus "+N" for siblings
    files: tuple[str, ...]
    scheme: str  # "single" | "tcpdump" | "dumpcap"

    @property
    def size_bytes(self) -> int:
        return sum(os.stat(f).st_size for f in self.files)


def _walk(directory: Path) -> Iterable[Path]:
    for root, dirs, files in os.walk(directory):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for fname in sorted(files):
            if not fname.startswith(".") and _CAPTURE_NAME.match(fname):
                yield Path(root) / fname


def expand_paths(paths: Sequence[str | os.PathLike[str]]) -> list[Path]:
    """Files named by PATHS (files, directories walked recursively, glob patterns).

    Duplicates are removed (first occurrence wins).  A path that exists nowhere
    and a glob that matches nothing raise :class:`InputMissingError`.
    """
    out: list[Path] = []
    seen: set[str] = set()

    def add(p: Path) -> None:
        key = os.path.realpath(p)
        if key not in seen:
            seen.add(key)
            out.append(p)

    for raw in paths:
        text = os.fspath(raw)
        p = Path(text)
        if p.is_dir():
            for f in _walk(p):
                add(f)
        elif p.is_file():
            add(p)
        elif _GLOB_CHARS.search(text):
            matches = sorted(glob.glob(text, recursive=True))
            hits = 0
            for m in matches:
                mp = Path(m)
                if mp.is_dir():
                    for f in _walk(mp):
                        add(f)
                        hits += 1
                elif mp.is_file():
                    add(mp)
                    hits += 1
            if not hits:
                raise InputMissingError(f"no capture files match {text}")
        else:
            raise InputMissingError(f"no such file or directory: {text}")
    return out


def _first_ts_ns(path: Path) -> int | None:
    """Timestamp of the file's first TCP packet (None if unreadable or empty)."""
    try:
        with open_capture(str(path), batch_size=64) as reader:
            for batch in reader:
                if len(batch):
                    return int(batch["ts_ns"][0])
    except Exception:  # noqa: BLE001 - ordering falls back to names; the task reports errors
        return None
    return None


def _tcpdump_order(members: list[tuple[int, Path]]) -> list[Path]:
    """Order tcpdump siblings; rotate a wrapped -W ring to start at its oldest file."""
    members.sort(key=lambda m: m[0])
    files = [p for _, p in members]
    if len(files) > 1 and members[0][0] >= 0:
        # No base file: written with -W, a ring that may have wrapped.  Packet time,
        # not mtime, finds the oldest file (copies do not keep mtimes in order).
        firsts = [_first_ts_ns(p) for p in files]
        known = [(t, i) for i, t in enumerate(firsts) if t is not None]
        if len(known) == len(files):
            start = min(known)[1]
            files = files[start:] + files[:start]
    return files


def group_siblings(files: Sequence[Path], *, group: bool = True) -> list[CaptureInput]:
    """Group ring-buffer siblings (see the module docstring for the rules)."""
    if not group:
        return [CaptureInput(str(f), (str(f),), "single") for f in files]
    # Groups in first-seen order: (scheme, [(number, path), ...]).
    groups: list[tuple[str, list[tuple[int, Path]]]] = []
    slot: dict[tuple[str, str, str, str], int] = {}
    for f in files:
        parent = str(f.parent)
        m = _DUMPCAP.match(f.name)
        if m:
            key = ("dumpcap", parent, m["prefix"], m["ext"].lower())
            num = int(m["num"])
        else:
            m = _TCPDUMP.match(f.name)
            if m:
                key = ("tcpdump", parent, m["stem"], "gz" if m["gz"] else "")
                # The base file (no number) comes first: give it -1.
                num = int(m["num"]) if m["num"] else -1
            else:
                groups.append(("single", [(0, f)]))
                continue
        if key not in slot:
            slot[key] = len(groups)
            groups.append((key[0], []))
        groups[slot[key]][1].append((num, f))

    out: list[CaptureInput] = []
    for scheme, members in groups:
        if scheme == "tcpdump":
            paths = _tcpdump_order(list(members))
        else:  # dumpcap counters never wrap; singles have one member
            paths = [p for _, p in sorted(members, key=lambda m: m[0])]
        name = str(paths[0]) + (f" (+{len(paths) - 1})" if len(paths) > 1 else "")
        out.append(CaptureInput(name, tuple(str(p) for p in paths),
                                scheme if len(paths) > 1 else "single"))
    return out


def discover(paths: Sequence[str | os.PathLike[str]], *, group: bool = True) -> list[CaptureInput]:
    """PATHS → inputs: expand, then group ring-buffer siblings."""
    return group_siblings(expand_paths(paths), group=group)
