"""``analyze --summary``: resets grouped by origin x cause x server.

A capture with a thousand resets of one kind should read as one line with a
count, not a thousand rows.  The cause is grouped by its wording with the numbers
taken out ("after 4.5 s" and "after 4.6 s" are one cause); the silences of the
group are given as percentiles instead.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, TextIO

from rstscope.table import action_text, clip, origin_label, short_cause
from rstscope.textfit import clip_middle, sure_wordings, tiny_causes

GROUP_COLUMNS = ("count", "origin", "server", "cause", "silence_p50_s", "silence_p90_s",
                 "silence_max_s", "first_ts", "last_ts", "action")
_NUMBER = re.compile(r"\d+(?:\.\d+)?")


@dataclass(frozen=True, slots=True)
class ResetGroup:
    count: int
    origin: str
    server: str
    cause: str  # the first member's cause, numbers as they were
    silence_p50_s: float | None
    silence_p90_s: float | None
    silence_max_s: float | None
    first_ts: float | None
    last_ts: float | None
    action: str
    # The cause in a few words (the median silence in it), for a narrow terminal;
    # not part of the CSV/JSON rows, which carry the full ``cause``.
    cause_short: str = ""
    # What is sure apart from the guess (the members' most common, fullest wording
    # first) and the members' most common first alternative ("" none): the terminal
    # table's [sure: ...] and [or: ...], said on the cause line where they fit.
    # The cause in the fewest words, for a cause line with what is sure beside it.
    cause_tiny: tuple[str, ...] = ()
    sure: tuple[str, ...] = ()
    alternative: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k in GROUP_COLUMNS}


def _percentile(sorted_vals: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile (a value that occurred, not an interpolation)."""
    if not sorted_vals:
        return None
    k = max(0, min(len(sorted_vals) - 1, int(round(q * len(sorted_vals) + 0.5)) - 1))
    return round(sorted_vals[k], 3)


def _server(r: dict[str, Any]) -> str:
    host, port = (r.get("dst"), r.get("dport")) if r.get("direction") == "orig" else (
        r.get("src"), r.get("sport"))
    h = str(host)
    return f"[{h}]:{port}" if ":" in h else f"{h}:{port}"


def _first_alternative(r: dict[str, Any]) -> str:
    """The reset's first other origin, else its first other cause ("" none)."""
    for a in r.get("alternatives") or ():
        if a:
            return str(a[0]) if isinstance(a, (list, tuple)) else str(a)
    causes = [str(c) for c in r.get("cause_alternatives") or () if c]
    return causes[0] if causes else ""


def _most_common(values: Sequence[Any]) -> Any:
    """The most common value (the first seen of equals)."""
    return Counter(values).most_common(1)[0][0]


def group_resets(resets: Sequence[dict[str, Any]]) -> list[ResetGroup]:
    """Groups, largest first (then by origin and server)."""
    buckets: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in resets:
        key = (origin_label(r), _NUMBER.sub("#", str(r.get("cause", ""))), _server(r))
        buckets.setdefault(key, []).append(r)
    out = []
    for (origin, _, server), members in buckets.items():
        sil = sorted(float(m["silence_s"]) for m in members if m.get("silence_s") is not None)
        ts = [float(m["ts"]) for m in members if m.get("ts") is not None]
        out.append(ResetGroup(
            count=len(members), origin=origin, server=server,
            cause=str(members[0].get("cause", "")),
            silence_p50_s=_percentile(sil, 0.5), silence_p90_s=_percentile(sil, 0.9),
            silence_max_s=round(sil[-1], 3) if sil else None,
            first_ts=min(ts) if ts else None, last_ts=max(ts) if ts else None,
            action=action_text(members[0]),
            cause_short=short_cause({**members[0], "silence_s": _percentile(sil, 0.5)}),
            cause_tiny=tiny_causes({**members[0], "silence_s": _percentile(sil, 0.5)}),
            sure=_most_common([sure_wordings(m) for m in members]),
            alternative=_most_common([_first_alternative(m) for m in members])))
    out.sort(key=lambda g: (-g.count, g.origin, g.server))
    return out


def _s(v: float | None) -> str:
    return "-" if v is None else (f"{v:.3f}" if v < 10 else f"{v:.1f}")


def render_groups(groups: Sequence[ResetGroup], out: TextIO, *, width: int = 80,
                  wide: bool = False) -> None:
    """Three lines per group, like the reset table: counts row, cause, action."""
    limit = 10**6 if wide else max(width, 40)
    total = sum(g.count for g in groups)
    out.write(f"{total} resets in {len(groups)} groups (silence s: p50/p90/max)\n\n")
    sils = [f"{_s(g.silence_p50_s)}/{_s(g.silence_p90_s)}/{_s(g.silence_max_s)}"
            for g in groups]
    origins = [g.origin for g in groups]
    w_sil = max([7, *(len(s) for s in sils)])

    def row_width(w_o: int, w_s: int) -> int:
        return 6 + 2 + w_o + 2 + w_s + 2 + w_sil

    w_o = max([6, *(len(o) for o in origins)])
    w_s = max([6, *(len(g.server) for g in groups)])
    if row_width(w_o, w_s) > limit:
        # Narrow, as the reset table does: "unknown (best guess: X)" reads "unknown?"
        # (the cause line tells the groups apart), then servers are cut in the middle.
        origins = ["unknown?" if o.startswith("unknown (best guess") else o for o in origins]
        w_o = max([6, *(len(o) for o in origins)])
        w_s = max(12, min(w_s, limit - row_width(w_o, 0)))
    out.write(clip(f"{'count':>6}  {'origin':<{w_o}}  {'server':<{w_s}}  silence", limit) + "\n")
    for g, origin, sil in zip(groups, origins, sils, strict=True):
        server = clip_middle(g.server, w_s)
        out.write(clip(f"{g.count:>6}  {origin:<{w_o}}  {server:<{w_s}}  {sil}", limit) + "\n")
        out.write(clip("    " + _cause_line(g, limit - 4), limit) + "\n")
        out.write(clip("    -> " + g.action, limit) + "\n")


def _cause_line(g: ResetGroup, room: int) -> str:
    """The cause, then what is sure and the first alternative, as the reset table says
    them: the cause sentence, in a few words or in the fewest, with the fullest sure wording that lets
    all fit in ``room`` characters.  When even the fewest words do not fit, the cause
    alone (what is sure and the alternative are then said with --wide only)."""
    alt = f" [or: {g.alternative}]" if g.alternative else ""
    causes = tuple(dict.fromkeys(c for c in (g.cause, g.cause_short, *g.cause_tiny) if c)) or ("",)
    for cause in causes:
        for sure in g.sure:
            line = f"{cause} [{sure}]{alt}"
            if len(line) <= room:
                return line
    return g.cause if len(g.cause) <= room else (g.cause_short or g.cause)


__all__ = ["GROUP_COLUMNS", "ResetGroup", "group_resets", "render_groups"]
