"""The verdict vocabulary, defined once: who a RST came from, who sent it, where we stood.

Every other place that names an origin, a sender or a capture point (the record
types, the CLI choices, the plot colours, the lab's truth roles) derives from
these enums.  The string values are the wire format of the JSON output and the
DataFrames and never change; :class:`enum.StrEnum` members compare equal to them.
"""

from __future__ import annotations

from enum import StrEnum


class Origin(StrEnum):
    """The role behind a RST: an endpoint, or the kind of box on the path."""

    CLIENT = "client"
    SERVER = "server"
    LOAD_BALANCER = "load-balancer"  # L4/L7 load balancers, reverse proxies, CDNs
    FIREWALL = "firewall"  # firewalls, NAT, DPI/IPS and censorship devices
    UNKNOWN = "unknown"


#: The two endpoints and the two kinds of box on the path (no ``unknown``).
ENDPOINT_ORIGINS: tuple[Origin, ...] = (Origin.CLIENT, Origin.SERVER)
MIDDLEBOX_ORIGINS: tuple[Origin, ...] = (Origin.LOAD_BALANCER, Origin.FIREWALL)


class Sender(StrEnum):
    """Who put the RST on the wire, by the evidence."""

    CLIENT_ENDPOINT = "client-endpoint"
    SERVER_ENDPOINT = "server-endpoint"
    MIDDLEBOX = "middlebox"


class Vantage(StrEnum):
    """Where the capture was taken (``auto``: inferred per flow)."""

    AUTO = "auto"
    CLIENT = "client"
    SERVER = "server"
    MIDDLE = "middle"


class Side(StrEnum):
    """The endpoint a RST claims to come from (its source address)."""

    CLIENT = "client"
    SERVER = "server"

    @property
    def origin(self) -> Origin:
        return Origin(self.value)

    @property
    def sender(self) -> Sender:
        return Sender(f"{self.value}-endpoint")

    @property
    def other(self) -> Side:
        return Side.SERVER if self is Side.CLIENT else Side.CLIENT


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The string values of an enum, in declaration order (for CLI choices)."""
    return tuple(m.value for m in enum)


__all__ = ["ENDPOINT_ORIGINS", "MIDDLEBOX_ORIGINS", "Origin", "Sender", "Side", "Vantage",
           "values"]
