"""Everyday look-alikes ("twins") of the middlebox scenarios: traffic a rule must NOT catch.

Each of these ends with a RST made by an endpoint, yet seen from one side it looks
like a scenario whose RST a middlebox made.  A rule fitted to the middlebox cases
alone can score well on them and still misfire on the everyday traffic below, so
the calibration corpus holds both sides of each pair (docs/lab.md, "Calibration
corpus"):

- **server-port-closed**: nothing listens on the port the client dials; the
  server's kernel answers the SYN with a RST.  From the client it looks like
  ``fw-policy-reject`` (a REJECT with tcp-reset, no baseline before it).
- **keep-alive race**: already in :mod:`rstscope.lab.everyday`
  (``keepalive-race-fin-first``, ``keepalive-race-request-first``); the twin of
  ``l4lb-idle-expiry`` / ``fw-idle-expiry-client-next`` (an idle connection,
  the client's next request, a RST).
- **server-close-then-late-data**: the server sends a complete response and
  closes at once (``Connection: close``: close_notify + FIN); the client then
  sends more (its own close_notify, or its next request) into the closed socket
  and the server's kernel resets.  From the client it looks like a proxy that
  closed after its backend aborted (``haproxy/nginx-backend-abort``: a FIN, then
  a RST from the far side).
- **lan-client-read-timeout-abort**: a client on the server's own link (no
  router between them) gives up after its read timeout and aborts.  From the
  server it looks like haproxy's ``timeout server`` (``haproxy-timeout``: a
  silence, then a RST from a peer 0 hops away).

Registered into :data:`rstscope.lab.scenarios.SCENARIOS` on import, like the
everyday family.
"""

from __future__ import annotations

from types import MappingProxyType

from rstscope.errors import UsageError
from rstscope.lab.scenarios import Params, Plan, Scenario, register

#: What the client sends into the server's closed socket.
LATE_KINDS: tuple[str, ...] = ("close-notify", "request")


def _args(*a: object) -> tuple[str, ...]:
    return tuple(str(x) for x in a)


def _server_port_closed(p: Params) -> Plan:
    # No server program at all: nothing listens on the port, and no rule anywhere
    # rejects it; the server's own stack answers the SYN.
    return Plan("", _args("--read-timeout-s", 5, "--linger-s", 1), server_module="",
                causes={"srv": "refused"}, duration_s=3)


def _server_close_then_late_data(p: Params) -> Plan:
    late = str(p["late"])
    late_s = float(p["late_s"])
    if late not in LATE_KINDS:
        raise UsageError(f"late must be one of {', '.join(LATE_KINDS)}")
    if late == "request":
        # A client that does not notice the FIN before reusing the connection.
        client = _args("--requests", 2, "--reuse-after-s", late_s, "--read-timeout-s", 5,
                       "--linger-s", 0.5)
    else:
        # A client that closes a moment after the response, with its own close_notify.
        client = _args("--read-timeout-s", 5, "--on-done", "graceful",
                       "--done-delay-s", late_s, "--linger-s", 0.5)
    return Plan("d,d,d,close", client, causes={"srv": "data-after-close"},
                duration_s=late_s + 4)


def _lan_client_read_timeout(p: Params) -> Plan:
    if (p["hops_client"], p["hops_server"]) != (0, 0):
        raise UsageError("lan-client-read-timeout-abort puts the client on the server's "
                         "link: hops_client and hops_server must stay 0")
    t = float(p["read_timeout_s"])
    return Plan(f"d,s{t + 2.5},d,d,end",
                _args("--read-timeout-s", t, "--on-timeout", "abort", "--linger-s", 1),
                causes={"client": "client-read-timeout"}, timeouts={"client": t},
                duration_s=t + 8)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("server-port-closed",
             "nothing listens on the dialled port at the server: its kernel answers the "
             "SYN with a RST (no firewall rule); the twin of fw-policy-reject",
             {}, _server_port_closed),
    Scenario("server-close-then-late-data",
             "the server closes (close_notify + FIN) right after a complete response; "
             "the client's late close_notify or next request draws a server RST",
             {"late": "close-notify", "late_s": 0.2}, _server_close_then_late_data),
    Scenario("lan-client-read-timeout-abort",
             "a client on the server's own link (no router between) aborts after its "
             "read timeout; from the server, the twin of haproxy-timeout",
             {"read_timeout_s": 3.0, "hops_client": 0, "hops_server": 0},
             _lan_client_read_timeout),
)

#: Each twin and the middlebox scenarios it looks like (from the vantage named).
TWIN_OF: MappingProxyType[str, tuple[str, tuple[str, ...]]] = MappingProxyType({
    "server-port-closed": ("client", ("fw-policy-reject",)),
    "keepalive-race-fin-first": ("client", ("l4lb-idle-expiry", "fw-idle-expiry-client-next")),
    "keepalive-race-request-first": ("client",
                                     ("l4lb-idle-expiry", "fw-idle-expiry-client-next")),
    "server-close-then-late-data": ("client", ("haproxy-backend-abort", "nginx-backend-abort")),
    "lan-client-read-timeout-abort": ("server", ("haproxy-timeout",)),
})

#: What to look for in each capture (samples/twins/README.md's last column).
LOOK_FOR: dict[str, str] = {
    "server-port-closed": "SYN answered by RST+ACK from the server's stack (the server's "
                          "TTL and hops, no rule involved): from the client, a firewall "
                          "REJECT looks the same but for TTL and hops",
    "server-close-then-late-data": "a complete response, the server's close_notify + FIN "
                                   "(Connection: close), the client's close_notify "
                                   "0.2 s later, and the server's RST answering it",
    "lan-client-read-timeout-abort": "at the server: request, one chunk, silence, then a "
                                     "RST from the client on the same link (TTL 128 "
                                     "unchanged, 0 hops) at its read timeout",
}

register(*SCENARIOS)
