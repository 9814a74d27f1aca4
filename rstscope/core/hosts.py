"""Per-address TTL baselines across the flows of one capture.

A RST with no packet of its own flow to compare with (a REJECT answering a SYN)
can still be compared with what the same address sent in *other* connections of
the capture: a server that answered port 443 with TTL 61 did not answer port 8443
with TTL 64 from its own stack.  The tracker registers every flow here when it is
created and folds its TTL histograms in when the flow is retired or evicted, so
the cost is per flow, never per packet; a look-up reads only the newest few live
flows of the address.
"""

from __future__ import annotations

from itertools import islice

from rstscope.core.flow import Flow

#: Live flows of one address read per look-up (the newest): enough for a baseline,
#: and a port scan of one host (thousands of flows) stays cheap.
LIVE_FLOWS_READ = 16


class HostBaselines:
    """TTL histograms of each address's non-RST packets, over the capture's flows."""

    __slots__ = ("_done", "_live", "_max_hosts")

    def __init__(self, max_hosts: int) -> None:
        self._max_hosts = max(1, max_hosts)
        # Retired flows, folded: address -> {ttl: packets}.  Insertion-ordered, so the
        # oldest address goes first when the table is full.
        self._done: dict[bytes, dict[int, int]] = {}
        # Live flows by address, newest last: address -> {flow_id: flow}.
        self._live: dict[bytes, dict[int, Flow]] = {}

    def add(self, flow: Flow) -> None:
        for addr in (flow.orig_raw, flow.resp_raw):
            self._live.setdefault(addr, {})[flow.flow_id] = flow

    def remove(self, flow: Flow) -> None:
        """Fold a retiring flow's histograms in (before its table slots are released)."""
        for d, addr in enumerate((flow.orig_raw, flow.resp_raw)):
            live = self._live.get(addr)
            if live is not None:
                live.pop(flow.flow_id, None)
                if not live:
                    del self._live[addr]
            counts = flow.dirs[d].ttl_counts
            if not counts:
                continue
            done = self._done.pop(addr, None)
            if done is None:
                done = {}
                while len(self._done) >= self._max_hosts:
                    del self._done[next(iter(self._done))]
            for ttl, n in counts.items():
                done[ttl] = done.get(ttl, 0) + n
            self._done[addr] = done  # re-inserted: most recently used last

    def baseline(self, addr: bytes, exclude: Flow) -> dict[int, int]:
        """The TTL histogram of ``addr``'s non-RST packets in flows other than
        ``exclude`` (empty when the capture holds none)."""
        out = dict(self._done.get(addr, {}))
        live = self._live.get(addr)
        if live:
            for flow in islice(reversed(live.values()), LIVE_FLOWS_READ + 1):
                if flow is exclude:
                    continue
                d = 0 if flow.orig_raw == addr else 1
                for ttl, n in flow.dirs[d].ttl_counts.items():
                    out[ttl] = out.get(ttl, 0) + n
        return out


__all__ = ["LIVE_FLOWS_READ", "HostBaselines"]
