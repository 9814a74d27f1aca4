"""Tags: the named facts rules set about one RST, and that later rules and the wording read.

A tag is set by exactly the rules that declare it (``Rule.sets`` in
:mod:`rstscope.core.classify`), and a rule may only read tags that an earlier rule
sets; the order is checked when the module loads, not left to chance.  Tags end up
on the :class:`~rstscope.core.records.ResetRecord` (``tags``), so tests and users
can see which facts a verdict stood on.  Values are the JSON spelling.
"""

from __future__ import annotations

from enum import StrEnum


class Tag(StrEnum):
    # TTL
    NO_BASELINE = "no-baseline"  # no non-RST packet from the claimed sender
    TTL_MISMATCH = "ttl-mismatch"  # the RST's TTL is not the sender's
    TTL_MULTIMODAL = "ttl-multimodal"  # the sender used two TTLs; the RST matched its SYN
    HOST_BASELINE = "host-baseline"  # compared with the sender address's other flows
    # IP ID
    RECYCLED = "recycled"  # the RST carries the trigger's IP ID
    IPID0_DF = "ipid0-df"  # IP ID 0 + DF: a socket-less Linux RST
    IPID_CONTINUOUS = "ipid-continuous"  # continues the sender's counter
    IPID_BREAK = "ipid-break"  # breaks the sender's counter
    # timing, sequence, bursts
    TOO_FAST = "too-fast"  # sooner than the path to the sender allows
    SEQ_OOW = "seq-oow"  # out of the receiver's window
    RACE = "race"  # the sender kept talking after its RST
    STORM = "storm"  # a burst of differing RSTs
    BIDIRECTIONAL = "bidirectional"  # RSTs to both ends at once
    # context
    AFTER_FIN = "after-fin"
    AFTER_ALERT = "after-alert"
    AFTER_CLIENTHELLO = "after-clienthello"
    REFUSED = "refused"  # the RST answers a SYN
    NO_SOCKET = "no-socket"  # the kernel had no socket for the data it answered
    UNANSWERED = "unanswered"  # the sender gave up after unanswered retransmissions
    TIMEOUT_RST_DEVICE = "timeout-rst-device"  # the silence fits a catalog box that resets
    # the kind of box (set by the verdict stage)
    CATALOG_AMBIGUOUS = "catalog-ambiguous"  # fitting catalog rows of both kinds
    NEAR_SERVER = "near-server"  # made one link before the server
    CLIENT_EDGE = "client-edge"  # made one link from the client
    MID_PATH = "mid-path"  # made neither at an edge nor next to the server
    KIND_UNSURE = "kind-unsure"  # the wire barely separates load balancer from firewall
    # leans toward a proxy in front of an endpoint
    PROXY_CLOSE = "proxy-close"  # closed after a proxy-like silence, then reset
    SAME_LINK_PEER = "same-link-peer"  # a peer on the server's own link reset after silence
    PROXY_NO_ANSWER = "proxy-no-answer"  # accepted, never answered the request, gave up
    FAR_CLOSE = "far-close"  # the far side closed promptly, then reset: server or proxy


#: Signs of an injector (DPI/IPS, censorship) rather than a box that kept state: a
#: box with state (a balancer or firewall whose entry expired) answers with the
#: trigger's own acknowledgement number, so its RST is in the window; one that is
#: out of it was guessed.
INJECTION: frozenset[Tag] = frozenset({Tag.RACE, Tag.STORM, Tag.AFTER_CLIENTHELLO,
                                       Tag.RECYCLED, Tag.SEQ_OOW})

__all__ = ["INJECTION", "Tag"]
