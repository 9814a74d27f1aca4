"""Zeek-compatible TCP endpoint states, ``conn_state`` and ``history`` as data tables.

Theory of operation.  Every rule that changes connection state lives here
(h11's "rule 1"); the tracker only calls :func:`step`, :func:`conn_state` and
:func:`history_letters`.  The rules reproduce Zeek's TCP analyzer semantics
(endpoint states INACTIVE ... RESET, the ``conn_state`` summary, and history
letters) so that rstscope's flows line up with conn.log, including two of its
subtleties: a FIN followed by a RST from one side is turned back into a normal
close when the peer then FINs, and a RST after both FINs changes nothing.

The module is role-agnostic apart from the orig/resp flag Zeek itself uses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from rstscope.schema import TH_ACK, TH_FIN, TH_RST, TH_SYN

INACTIVE: Final = "INACTIVE"
SYN_SENT: Final = "SYN_SENT"
SYN_ACK_SENT: Final = "SYN_ACK_SENT"
PARTIAL: Final = "PARTIAL"
ESTABLISHED: Final = "ESTABLISHED"
CLOSED: Final = "CLOSED"
RESET: Final = "RESET"


@dataclass(frozen=True, slots=True)
class Rule:
    """When an endpoint whose state at packet arrival is in ``entry`` sends ``on``
    and ``when`` holds, set the sender to ``to`` and the peer to ``peer_to``."""

    entry: frozenset[str]
    on: str  # "syn" | "synack" | "fin" | "rst" | "plain" (no state-changing flag applied)
    when: str  # name of a condition in _CONDITIONS
    to: str | None
    peer_to: str | None


_HANDSHAKING = frozenset({SYN_SENT, SYN_ACK_SENT})
_OPEN = frozenset({ESTABLISHED, PARTIAL})
_I = frozenset({INACTIVE})

# Ordered; within one (entry, on) the first matching rule wins.  Blocks run in the
# order syn/synack -> fin -> rst -> plain for one packet, all keyed by the state the
# sender had when the packet arrived (as Zeek's UpdateStateMachine switch does).
RULES: Final[tuple[Rule, ...]] = (
    # A first SYN from the originator starts the handshake.
    Rule(_I, "syn", "is_orig", SYN_SENT, None),
    Rule(_I, "synack", "is_orig", SYN_ACK_SENT, None),
    # The responder's SYN+ACK (or a SYN answer) establishes both sides.
    Rule(_I, "synack", "peer_syn_sent", ESTABLISHED, ESTABLISHED),
    Rule(_I, "synack", "always", ESTABLISHED, None),
    Rule(_I, "syn", "peer_syn_sent", ESTABLISHED, ESTABLISHED),
    Rule(_I, "syn", "always", ESTABLISHED, None),
    Rule(_I, "fin", "always", CLOSED, None),
    Rule(_I, "rst", "always", RESET, None),
    # No control flag moved an inactive endpoint: an empty ACK from the responder
    # before its SYN+ACK is ignored (some stacks ACK the SYN first); an ACK after
    # the peer's SYN+ACK means we missed the SYN; anything else is midstream.
    Rule(_I, "plain", "resp_empty_while_orig_syn_sent", None, None),
    Rule(_I, "plain", "ack_and_peer_established", ESTABLISHED, None),
    Rule(_I, "plain", "always", PARTIAL, None),
    Rule(_HANDSHAKING, "fin", "always", CLOSED, None),
    Rule(_HANDSHAKING, "rst", "always", RESET, None),
    Rule(_OPEN, "syn", "partial_and_peer_inactive", SYN_SENT, None),
    # FIN after a peer's FIN+RST: the peer's RST ended a normal close; undo it.
    Rule(_OPEN, "fin", "not_rst_and_peer_reset_after_close", CLOSED, CLOSED),
    Rule(_OPEN, "fin", "not_rst", CLOSED, None),
    Rule(_OPEN, "rst", "always", RESET, None),
    # After our FIN, a RST counts only while the peer has not closed too.
    Rule(frozenset({CLOSED}), "rst", "peer_not_closed", RESET, None),
)


@dataclass(slots=True)
class Endpoint:
    """Mutable Zeek endpoint state of one side of a flow."""

    state: str = INACTIVE
    prev_state: str = INACTIVE

    def set(self, state: str) -> None:
        self.prev_state = self.state
        self.state = state


def _cond(name: str, ep: Endpoint, peer: Endpoint, is_orig: bool, flags: int,
          length: int, orig: Endpoint) -> bool:
    if name == "always":
        return True
    if name == "is_orig":
        return is_orig
    if name == "peer_syn_sent":
        return peer.state == SYN_SENT
    if name == "resp_empty_while_orig_syn_sent":
        return (not is_orig) and length == 0 and orig.state == SYN_SENT
    if name == "ack_and_peer_established":
        return bool(flags & TH_ACK) and peer.state == ESTABLISHED
    if name == "partial_and_peer_inactive":
        return ep.state == PARTIAL and peer.state == INACTIVE and not flags & TH_ACK
    if name == "not_rst_and_peer_reset_after_close":
        return not flags & TH_RST and peer.state == RESET and peer.prev_state == CLOSED
    if name == "not_rst":
        return not flags & TH_RST
    if name == "peer_not_closed":
        return peer.state != CLOSED
    raise KeyError(name)


_BY_ENTRY: Final[dict[tuple[str, str], tuple[Rule, ...]]] = {}
for _rule in RULES:
    for _state in _rule.entry:
        _BY_ENTRY[(_state, _rule.on)] = _BY_ENTRY.get((_state, _rule.on), ()) + (_rule,)


def _events(flags: int) -> tuple[str, ...]:
    """The rule blocks one packet runs, in order (see RULES)."""
    events: list[str] = []
    if flags & TH_SYN:
        events.append("synack" if flags & TH_ACK else "syn")
    if flags & TH_FIN:
        events.append("fin")
    if flags & TH_RST:
        events.append("rst")
    events.append("plain")
    return tuple(events)


_EVENT_FLAGS: Final = TH_SYN | TH_FIN | TH_RST | TH_ACK
_EVENTS: Final = tuple(_events(f) for f in range(_EVENT_FLAGS + 1))


def step(ep: Endpoint, peer: Endpoint, orig: Endpoint, is_orig: bool, flags: int,
         length: int) -> None:
    """Apply one packet from ``ep`` (towards ``peer``) to both endpoint states."""
    entry = ep.state
    if not flags & (TH_SYN | TH_FIN | TH_RST) and entry != INACTIVE:
        return  # the common case: no rule for plain packets of an active endpoint
    for on in _EVENTS[flags & _EVENT_FLAGS]:
        if on == "plain" and ep.state != INACTIVE:
            break  # the fall-through rule only applies while nothing moved us
        for rule in _BY_ENTRY.get((entry, on), ()):
            if _cond(rule.when, ep, peer, is_orig, flags, length, orig):
                if rule.to is not None:
                    ep.set(rule.to)
                if rule.peer_to is not None:
                    peer.set(rule.peer_to)
                break


# RSTOS0 needs a SYN and no reply-type letter before the RST (Zeek fix for #1164:
# a lone RST is OTH, never RSTOS0).
_RSTOS0_HISTORY: Final = re.compile(r"^\^?S[^HAFGIQ]*R")


def conn_state(orig: Endpoint, resp: Endpoint, history: str, orig_bytes: int,
               resp_bytes: int) -> str:
    """Zeek's conn_state summary from the two endpoint states."""
    os_, rs = orig.state, resp.state
    o_inactive = os_ in (INACTIVE, PARTIAL)
    r_inactive = rs in (INACTIVE, PARTIAL)
    if rs == RESET:
        if os_ in (SYN_SENT, SYN_ACK_SENT) or (os_ == RESET and orig_bytes == 0
                                                and resp_bytes == 0):
            return "REJ"
        return "RSTRH" if o_inactive else "RSTR"
    if os_ == RESET:
        if r_inactive:
            return "RSTOS0" if _RSTOS0_HISTORY.match(history) else "OTH"
        return "RSTO"
    if rs == CLOSED and os_ == CLOSED:
        return "SF"
    if os_ == CLOSED:
        return "SH" if r_inactive else "S2"
    if rs == CLOSED:
        return "SHR" if o_inactive else "S3"
    if os_ == SYN_SENT and rs == INACTIVE:
        return "S0"
    if os_ == ESTABLISHED and rs == ESTABLISHED:
        return "S1"
    return "OTH"


# History bits: one per letter family and direction.
H_SYN, H_SYNACK, H_FIN, H_RST, H_DATA, H_ACK, H_MULTI, H_FINRST = (1 << i for i in range(8))


def control_letter(flags: int) -> tuple[int, str] | None:
    """(bit, upper-case letter) for a packet's control flags, or None if it has none.

    SYN, FIN and RST letters may repeat (the caller checks the sequence number);
    FIN+RST is 'I' and any other multi-flag packet 'Q' (once per direction).
    """
    n = bool(flags & TH_SYN) + bool(flags & TH_FIN) + bool(flags & TH_RST)
    if n > 1:
        if flags & TH_FIN and flags & TH_RST:
            return H_FINRST, "I"
        return H_MULTI, "Q"
    if flags & TH_SYN:
        return (H_SYNACK, "H") if flags & TH_ACK else (H_SYN, "S")
    if flags & TH_FIN:
        return H_FIN, "F"
    if flags & TH_RST:
        return H_RST, "R"
    return None


#: The flags control_letter reads, and its answer for each of their combinations
#: (a table lookup on the per-packet path).
LETTER_FLAGS: Final = TH_SYN | TH_FIN | TH_RST | TH_ACK
CONTROL_LETTER: Final = tuple(control_letter(f) for f in range(LETTER_FLAGS + 1))

REPEATABLE: Final = frozenset({"S", "H", "F", "R"})


def is_log_threshold(count: int) -> bool:
    """True at counts 1, 10, 100, ... (Zeek's logarithmic t/w/g letters)."""
    while count >= 10 and count % 10 == 0:
        count //= 10
    return count == 1
