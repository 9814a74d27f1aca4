"""Initial-TTL inference and hop distance (p0f's guess_dist)."""

from __future__ import annotations

from typing import Final

# Initial TTLs in use by real stacks: 32 (old Windows 9x), 64 (Linux, BSD, macOS),
# 128 (Windows), 255 (Solaris, many routers/middleboxes).
INITIAL_TTLS: Final = (32, 64, 128, 255)


def initial_ttl(ttl: int) -> int:
    """Smallest common initial TTL that is >= the observed one."""
    for base in INITIAL_TTLS:
        if ttl <= base:
            return base
    return 255


def hops(ttl: int) -> int:
    """Router hops between the sender and the capture point."""
    return initial_ttl(ttl) - ttl


def ttl_mode_spread(counts: dict[int, int]) -> tuple[int, int] | None:
    """(mode, max - min) of a TTL histogram; None if empty."""
    if not counts:
        return None
    if len(counts) == 1:  # most directions keep one TTL: nothing to rank
        (ttl,) = counts
        return ttl, 0
    mode = max(counts.items(), key=lambda kv: (kv[1], kv[0]))[0]
    return mode, max(counts) - min(counts)
