"""The one CLI layer: options and parsers every subcommand shares.

``analyze``, ``plot``, ``report`` and ``watch`` take the same filter, vantage,
timeout-catalog and time-window options with the same names, because they are
applied from here (:func:`filter_options`, :func:`verdict_options`).  Values are
checked when parsed, so bad input is one line and exit 2, never a traceback.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import click

from rstscope import errors
from rstscope.catalog import known_stacks, load_timeouts_file, make_config, with_stack
from rstscope.core.records import FlowRecord, ResetRecord
from rstscope.core.ttl import INITIAL_TTLS
from rstscope.core.vocab import Origin, Vantage, values
from rstscope.errors import UsageError
from rstscope.results import ShownReset
from rstscope.textfit import sure_wordings_of

F = TypeVar("F", bound=Callable[..., Any])

VANTAGES = values(Vantage)
ORIGINS = values(Origin)
#: Below this confidence a verdict's origin is shown as ``unknown (best guess: X)``,
#: counted as unknown and ignored by ``--fail-on X``.  Right-but-weak verdicts on
#: the lab samples score 0.32-0.36 and a lone RST 0.30: calling those firm would
#: overstate what the packets show.
DEFAULT_MIN_CONFIDENCE = 0.4


# -- exit codes -------------------------------------------------------------

_EXIT_WORDS = {
    "EXIT_OK": "ok (resets found is ok)",
    "EXIT_FAIL_ON": "--fail-on matched",
    "EXIT_USAGE": "usage",
    "EXIT_DATAERR": "corrupt capture",
    "EXIT_NOINPUT": "missing input",
    "EXIT_UNAVAILABLE": "missing tool",
    "EXIT_SOFTWARE": "internal error",
    "EXIT_OSERR": "lab failure",
    "EXIT_IOERR": "output not writable",
    "EXIT_NOPERM": "no capture privilege",
}


def exit_codes_epilog() -> str:
    """The ``Exit codes:`` help epilog, generated from :mod:`rstscope.errors`."""
    codes = sorted((getattr(errors, name), name) for name in dir(errors)
                   if name.startswith("EXIT_"))
    parts = [f"{code} {_EXIT_WORDS.get(name, name.removeprefix('EXIT_').lower())}"
             for code, name in codes]
    return "Exit codes: " + ", ".join(parts) + "."


# -- parsers ----------------------------------------------------------------

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgG]?)(?:iB)?\s*$")


def parse_size(text: str) -> int:
    """A size as tcpdump's ``-C`` reads it, for every rstscope option that takes one.

    A bare number is millions of bytes (decimal MB: ``1`` = 1,000,000); ``k``, ``m``,
    ``g`` (or ``KiB``, ``MiB``, ``GiB``) mean 1024, 1024**2, 1024**3 bytes.
    Fractions are allowed (``0.5``).
    """
    m = _SIZE_RE.match(text)
    if not m or (text.strip().endswith("iB") and not m.group(2)):
        raise UsageError(f"bad size {text!r}: expected a number (millions of bytes) "
                         "with an optional k/m/g suffix (KiB/MiB/GiB), as tcpdump -C")
    unit = {"": 1_000_000, "k": 1024, "m": 1024**2, "g": 1024**3}[m.group(2).lower()]
    size = int(float(m.group(1)) * unit)
    if size <= 0:
        raise UsageError(f"bad size {text!r}: must be positive")
    return size


_HOSTNAME_RE = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)"
                          r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$")


def parse_host(text: str) -> tuple[str, ...]:
    """``--host`` value: an address, a CIDR network, or a host name.

    Returns network strings (``192.0.2.7/32``).  A name is resolved once, with the
    system resolver, into every address it has; a malformed one is rejected
    without asking any resolver.
    """
    t = text.strip()
    try:
        return (str(ipaddress.ip_network(t, strict=False)),)
    except ValueError:
        pass
    if "/" in t or not _HOSTNAME_RE.match(t) or t.replace(".", "").isdigit():
        raise UsageError(f"bad --host {text!r}: expected an address, a CIDR network "
                         "(192.0.2.0/24) or a host name")
    # lazy: only a host name needs the resolver (its module is ~2 ms of start-up)
    import socket

    try:
        infos = socket.getaddrinfo(t, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"--host {text!r}: cannot resolve this name ({exc})") from exc
    addrs = sorted({str(info[4][0]).split("%")[0] for info in infos})
    return tuple(str(ipaddress.ip_network(a)) for a in addrs)


def parse_time(text: str, *, local: bool = False) -> int:
    """``--start/--end`` value to epoch nanoseconds.

    Accepts epoch seconds (``1795765285.5``) or an ISO-8601 date-time
    (``2026-11-27T07:41:25``, ``2026-11-27 07:41:25.626+01:00``).  A date-time
    without a zone is UTC, or local time with ``-t local``.
    """
    t = text.strip()
    try:
        secs = float(t)
    except ValueError:
        pass
    else:
        if not 0 <= secs < 2**33:
            raise UsageError(f"bad time {text!r}: epoch seconds out of range")
        return int(round(secs * 1e9))
    try:
        dt = _dt.datetime.fromisoformat(t)
    except ValueError as exc:
        raise UsageError(f"bad time {text!r}: expected epoch seconds or ISO 8601 "
                         "(2026-11-27T07:41:25, zone optional, UTC by default)") from exc
    try:
        if dt.tzinfo is None:
            dt = dt.astimezone() if local else dt.replace(tzinfo=_dt.UTC)
        return int(dt.timestamp() * 1e9)
    except (OverflowError, OSError, ValueError) as exc:
        raise UsageError(f"bad time {text!r}: out of range") from exc


def parse_stack(text: str | None) -> tuple[str, ...]:
    """``--stack nginx,aws`` to names, checked against the prevalence table."""
    if not text:
        return ()

    names = tuple(dict.fromkeys(s.strip().lower() for s in text.split(",") if s.strip()))
    unknown = [n for n in names if n not in known_stacks()]
    if unknown:
        raise UsageError(f"unknown --stack name(s) {', '.join(unknown)}; "
                         f"known: {', '.join(known_stacks())}")
    return names


# -- option groups ----------------------------------------------------------

def _apply(f: F, options: Sequence[Callable[[F], F]]) -> F:
    for opt in reversed(options):
        f = opt(f)
    return f


_PORT = click.option("--port", "ports", type=click.IntRange(0, 65535), multiple=True,
                     help="Only packets to/from this TCP port (repeatable).")
_HOST = click.option("--host", "hosts", multiple=True,
                     help="Only packets to/from this address, CIDR network or host name "
                          "(repeatable).")


def address_options(f: F) -> F:
    """``--port``, ``--host`` alone: for live commands, where flows and times do not exist yet."""
    return _apply(f, [_PORT, _HOST])


def bpf_of(ports: Sequence[int], hosts: Sequence[str]) -> str:
    """``--port``/``--host`` as a BPF expression, for the kernel filter of live capture."""
    parts = []
    if ports:
        parts.append("(" + " or ".join(f"port {p}" for p in ports) + ")")
    if hosts:
        parts.append("(" + " or ".join(f"net {n}" for h in hosts for n in parse_host(h)) + ")")
    return " and ".join(parts)


def filter_options(f: F) -> F:
    """``--port``, ``--host``, ``--flow``, ``--start``, ``--end``: what to look at."""
    return _apply(f, [
        _PORT,
        _HOST,
        click.option("--flow", "flows", type=click.IntRange(1), multiple=True,
                     help="Only this flow id (see `rstscope analyze`; repeatable)."),
        click.option("--start", "start", default=None, metavar="TIME",
                     help="Only packets at or after TIME (epoch seconds or ISO 8601; "
                          "UTC unless it has a zone or -t local), like editcap -A."),
        click.option("--end", "end", default=None, metavar="TIME",
                     help="Only packets before TIME, like editcap -B."),
    ])


def live_filter_options(f: F) -> F:
    """``filter_options`` for a live stream (``watch``): the same names and meaning,
    with help that says what a flow id and a time window are when packets are still
    arriving."""
    return _apply(f, [
        _PORT,
        _HOST,
        click.option("--flow", "flows", type=click.IntRange(1), multiple=True,
                     help="Only verdicts and warnings of this flow id: flows are numbered "
                          "1, 2, ... in the order watch first sees them, as `rstscope "
                          "analyze` numbers the flows of the capture written with -w "
                          "(repeatable)."),
        click.option("--start", "start", default=None, metavar="TIME",
                     help="Analyse only packets at or after TIME (epoch seconds or ISO "
                          "8601; UTC unless it has a zone): earlier packets "
                          "are captured (and written with -w) but not analysed."),
        click.option("--end", "end", default=None, metavar="TIME",
                     help="Stop watching at TIME (as --duration would; must be in the "
                          "future)."),
    ])


def verdict_options(f: F) -> F:
    """``--vantage``, ``--timeouts``, ``--stack``: what the verdicts assume."""
    return _apply(f, [
        click.option("--vantage", type=click.Choice(VANTAGES), default="auto",
                     show_default=True,
                     help="Where the capture was taken (auto: inferred from TTLs and timing)."),
        click.option("--timeouts", "timeouts_file", type=click.Path(dir_okay=False),
                     default=None, metavar="FILE",
                     help="CSV of your own devices' timeouts (columns as the packaged "
                          "idle-timeouts.csv); a stated timeout that fits beats the catalog."),
        click.option("--stack", "stack", default=None, metavar="NAMES",
                     help="Products in front of your service, comma-separated "
                          "(e.g. nginx,aws): they are named first when timeouts match."),
    ])


#: ``--join``: the same flag, with the same meaning, on analyze, plot and report.
JOIN_HELP = ("FILES are two captures of one incident (near the client, then near the "
             "server): pair their connections and tell one story.")


def join_option(f: F) -> F:
    """``--join``: two captures of one incident read as one story."""
    return click.option("--join", "do_join", is_flag=True, help=JOIN_HELP)(f)


def display_options(f: F) -> F:
    """``--min-confidence``, ``-t``: how verdicts are printed."""
    return _apply(f, [
        click.option("--min-confidence", "min_confidence",
                     type=click.FloatRange(0.0, 1.0), default=DEFAULT_MIN_CONFIDENCE,
                     show_default=True,
                     help="Below this, an origin is shown as 'unknown (best guess: X)', "
                          "counted as unknown and ignored by --fail-on X."),
        click.option("-t", "--time-zone", "tz", type=click.Choice(["utc", "local"]),
                     default="utc", show_default=True,
                     help="Print times in UTC (labelled) or local time, as tcpdump -t does."),
    ])


@dataclasses.dataclass(frozen=True, slots=True)
class Selection:
    """The parsed filter and verdict options, ready for :func:`rstscope.api.analyze`."""

    ports: tuple[int, ...] = ()
    hosts: tuple[str, ...] = ()
    flows: tuple[int, ...] = ()
    start_ns: int | None = None
    end_ns: int | None = None
    vantage: str = "auto"
    timeouts_file: str | None = None
    stack: tuple[str, ...] = ()
    min_confidence: float = DEFAULT_MIN_CONFIDENCE
    tz: str = "utc"

    def analyze_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of :func:`rstscope.api.analyze` for this selection."""
        return {"ports": self.ports, "hosts": self.hosts, "start_ns": self.start_ns,
                "end_ns": self.end_ns, "config": self.config()}

    def config(self) -> Any:
        cfg = make_config(self.vantage)
        entries = tuple(cfg.timeouts)
        if self.timeouts_file:
            entries = entries + load_timeouts_file(self.timeouts_file)
        return dataclasses.replace(cfg, timeouts=with_stack(entries, self.stack))


def selection(*, ports: Sequence[int] = (), hosts: Sequence[str] = (),
              flows: Sequence[int] = (), start: str | None = None, end: str | None = None,
              vantage: str = "auto", timeouts_file: str | None = None,
              stack: str | None = None, min_confidence: float = DEFAULT_MIN_CONFIDENCE,
              tz: str = "utc") -> Selection:
    """Check and parse the shared options (one line and exit 2 on bad input)."""
    nets = tuple(n for h in hosts for n in parse_host(h))
    local = tz == "local"
    start_ns = parse_time(start, local=local) if start else None
    end_ns = parse_time(end, local=local) if end else None
    if start_ns is not None and end_ns is not None and end_ns <= start_ns:
        raise UsageError(f"--end {end} is not after --start {start}")
    return Selection(tuple(ports), nets, tuple(flows), start_ns, end_ns, vantage,
                     timeouts_file, parse_stack(stack), min_confidence, tz)


def check_flows(wanted: Sequence[int], existing: Sequence[int], where: str) -> None:
    """``--flow N`` that is not in the capture: say which flows exist (exit 2)."""
    missing = sorted(set(wanted) - set(existing))
    if not missing:
        return
    ids = sorted(set(existing))
    shown = ", ".join(str(i) for i in ids[:20]) + (f", ... ({len(ids)} flows)" if len(ids) > 20 else "")
    raise UsageError(f"no flow {', '.join(map(str, missing))} in {where}; "
                     + (f"flows: {shown}" if ids else "it has no TCP flows"))


# -- verdict presentation ---------------------------------------------------

def apply_min_confidence(reset: ResetRecord, min_confidence: float, *, file: str,
                         probe: dict[str, Any] | None = None) -> ShownReset:
    """The reset as shown: ``best_guess`` (the classifier's origin) and ``origin``
    thresholded, with what the packets prove (``sure``)."""
    guess = str(reset.origin)
    origin = guess
    # Compared as printed (two decimals), so a row never shows "0.40" yet says unknown.
    if guess != "unknown" and round(reset.confidence, 2) < min_confidence:
        origin = "unknown"
    # What the packets prove (nothing, without a packet of the sender's to compare).
    sure = sure_wordings_of(
        str(reset.direction), str(reset.sender), frozenset(reset.tags),
        frozenset(e.name for e in reset.evidence))[0] if reset.sender else None
    return ShownReset(reset, file, origin, guess, sure, probe)


def ttl_vantage(flows: Sequence[FlowRecord]) -> str | None:
    """The capture point the TTLs show, whatever ``--vantage`` said (majority of flows).

    A host's own packets leave with an undecremented initial TTL (64/128/255), so a
    flow whose originator TTL is initial was captured on the client, and the reverse.
    """
    votes: Counter[str] = Counter()
    for f in flows:
        o_local = f.orig_ttl_mode in INITIAL_TTLS
        r_local = f.resp_ttl_mode in INITIAL_TTLS
        if o_local != r_local:
            votes["client" if o_local else "server"] += 1
    if not votes:
        return None
    side, n = votes.most_common(1)[0]
    return side if n * 2 > sum(votes.values()) else None


def vantage_warning(flows: Sequence[FlowRecord], stated: str) -> str | None:
    """A warning when ``--vantage`` contradicts what the TTLs show."""
    if stated == "auto":
        return None
    seen = ttl_vantage(flows)
    if seen is not None and seen != stated:
        return (f"--vantage {stated} contradicts the TTLs, which show a {seen}-side "
                f"capture (undecremented {seen} TTL); verdicts follow --vantage")
    return None


__all__ = [
    "DEFAULT_MIN_CONFIDENCE", "ORIGINS", "VANTAGES", "Selection", "address_options",
    "apply_min_confidence", "bpf_of",
    "check_flows", "display_options", "exit_codes_epilog", "filter_options",
    "live_filter_options", "parse_host",
    "parse_size", "parse_stack", "parse_time", "selection", "ttl_vantage", "vantage_warning",
    "verdict_options",
]
