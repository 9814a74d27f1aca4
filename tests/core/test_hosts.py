"""Per-address TTL baselines across flows (rstscope.core.hosts)."""

from __future__ import annotations

from rstscope.core.hosts import PER_HOST, HostBaselines

SERVER = bytes([203, 0, 113, 20])


def test_only_handshakes_before_the_rst_count() -> None:
    hosts = HostBaselines(max_hosts=8)
    assert hosts.baseline(SERVER, 0, 10) == {}
    hosts.note(SERVER, 0, 2, 52)
    hosts.note(SERVER, 0, 30, 51)  # later in the capture than the RST below
    hosts.note(SERVER, 0, 5, 52)
    assert hosts.baseline(SERVER, 0, 10) == {52: 2}
    assert hosts.baseline(SERVER, 1, 1) == {52: 2, 51: 1}  # a later file


def test_the_earliest_handshakes_are_kept_in_any_order() -> None:
    # Whatever order the notes arrive in (the tracker interleaves flows), an address
    # keeps its earliest PER_HOST handshakes.
    frames = list(range(1, PER_HOST + 6))
    a, b = HostBaselines(max_hosts=8), HostBaselines(max_hosts=8)
    for fr in frames:
        a.note(SERVER, 0, fr, 60 if fr % 2 else 61)
    for fr in reversed(frames):
        b.note(SERVER, 0, fr, 60 if fr % 2 else 61)
    assert a.baseline(SERVER, 9, 0) == b.baseline(SERVER, 9, 0)
    assert sum(a.baseline(SERVER, 9, 0).values()) == PER_HOST


def test_addresses_are_bounded_least_recently_noted_first() -> None:
    hosts = HostBaselines(max_hosts=2)
    x, y, z = (bytes([203, 0, 113, n]) for n in (1, 2, 3))
    hosts.note(x, 0, 1, 60)
    hosts.note(y, 0, 2, 61)
    hosts.note(x, 0, 3, 60)  # x noted again: y is now the oldest
    hosts.note(z, 0, 4, 62)
    assert hosts.baseline(y, 0, 99) == {}
    assert hosts.baseline(x, 0, 99) == {60: 2} and hosts.baseline(z, 0, 99) == {62: 1}
