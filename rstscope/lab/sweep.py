"""``rstscope lab sweep``: many lab runs over random network shapes, deterministic per seed.

Each case draws a scenario and what real networks vary: path length on each
side, where the firewall sits, an L4 balancer in front or not, every device's
initial TTL from {64, 128, 255}, IPv4 or IPv6, and a timeout that is on the
catalog, off it, or on another category's row (a firewall at a load balancer's
value and the reverse).  Case ``i`` of seed ``S`` depends on ``(S, i)`` only,
so a larger ``--count`` extends a sweep without changing its first cases.

Cases run in parallel: each is its own set of namespaces, and most of a case
is sleeping through an idle timeout.  Longest cases start first.  Every case
writes ``<stem>.<vantage>.pcap`` + labels and a manifest whose ``sweep`` key
holds the case's variables; ``sweep-<seed>.json`` indexes the cases, and
failed cases are listed there with their error (never silently dropped).
How the draw is weighted is documented in docs/lab.md ("Sweeps").
"""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from types import FrameType
from typing import Any

from rstscope.catalog import load_timeouts
from rstscope.errors import LabError, OutputError, UsageError
from rstscope.lab.runner import run_scenario
from rstscope.lab.scenarios import SCENARIOS
from rstscope.lab.session import BASE_TOOLS, Session, require_root, require_tools

TTLS: tuple[int, ...] = (64, 128, 255)

#: Scenario -> (weight, timeout parameter or None, catalog category of the device whose
#: timeout it is).  Middlebox scenarios weigh more: firewall vs load balancer is where
#: attribution is hard.
FAMILIES: Mapping[str, tuple[float, str | None, str | None]] = {
    "server-abort": (4, None, None),
    "server-idle-abort": (4, "idle_timeout_s", "server"),
    "client-read-timeout-abort": (4, "read_timeout_s", "client"),
    "client-read-timeout-graceful": (2, "read_timeout_s", "client"),
    "client-close-unread": (2, None, None),
    "fw-idle-expiry-client-next": (8, "conntrack_timeout_s", "firewall"),
    "fw-idle-expiry-server-next": (6, "conntrack_timeout_s", "firewall"),
    "fw-policy-reject": (5, None, None),
    "nat-rebind-after-idle": (4, "conntrack_timeout_s", "nat"),
    "l4lb-idle-expiry": (8, "conntrack_timeout_s", "load-balancer"),
    "haproxy-timeout": (5, "proxy_timeout_s", "proxy"),
    "nginx-proxy-timeout": (5, "proxy_timeout_s", "proxy"),
    "dpi-inject-single": (3, None, None),
    "dpi-inject-storm": (2, None, None),
    "haproxy-backend-refused": (2, None, None),
    "haproxy-backend-connect-timeout": (2, "connect_timeout_s", "proxy"),
    "haproxy-backend-abort": (2, None, None),
    "nginx-backend-refused": (1, None, None),
    "nginx-backend-connect-timeout": (1, "connect_timeout_s", "proxy"),
    "nginx-backend-abort": (2, None, None),
    "graceful-close": (1, None, None),
}

#: The everyday look-alikes (rstscope.lab.twins; the keep-alive races are in
#: rstscope.lab.everyday) beside the middlebox scenarios each one looks like, about
#: as many cases on each side of every pair: the traffic a middlebox rule must not
#: catch, next to what it must.  Drawn only for seeds that ask for this set (the
#: calibration corpus's twin seeds), so no other seed's draw changes.
TWIN_FAMILIES: Mapping[str, tuple[float, str | None, str | None]] = {
    # Client vantage: a RST answering the SYN, no baseline before it.
    "server-port-closed": (4, None, None),
    "fw-policy-reject": (4, None, None),
    # Client vantage: an idle connection, the client's next request, a RST.
    "keepalive-race-fin-first": (2, "keepalive_s", "server"),
    "keepalive-race-request-first": (2, "keepalive_s", "server"),
    "l4lb-idle-expiry": (2, "conntrack_timeout_s", "load-balancer"),
    "fw-idle-expiry-client-next": (2, "conntrack_timeout_s", "firewall"),
    # Client vantage: a complete exchange, a FIN from the far side, then its RST.
    "server-close-then-late-data": (4, None, None),
    "haproxy-backend-abort": (2, None, None),
    "nginx-backend-abort": (2, None, None),
    # Server vantage: a silence, then a RST from a peer with no router in between.
    "lan-client-read-timeout-abort": (4, "read_timeout_s", "client"),
    "haproxy-timeout": (4, "proxy_timeout_s", "proxy"),
}
#: The scenario sets a sweep can draw from (``--families``).
FAMILY_SETS: Mapping[str, Mapping[str, tuple[float, str | None, str | None]]] = {
    "default": FAMILIES,
    "twins": TWIN_FAMILIES,
}

#: The timeout draw: (weight, pool).  A pool names where the value comes from.
TIMEOUT_POOLS: tuple[tuple[float, str], ...] = (
    (0.40, "off-catalog"),   # short values no catalog row has
    (0.25, "own-short"),     # the device's own category, <= 30 s
    (0.15, "cross"),         # another category's value (collisions across categories)
    (0.12, "own-medium"),    # own category, 31..120 s
    (0.08, "own-long"),      # own category, 121..max_timeout_s (e.g. 350 s: NLB / NAT gw)
)
#: Off-catalog values: no row of any category has them (checked in tests).
OFF_CATALOG_S: tuple[int, ...] = (6, 7, 8, 9, 11, 12, 13, 14, 25, 45)
#: Whose values a device borrows for a cross-category draw.
CROSS: Mapping[str, tuple[str, ...]] = {
    "firewall": ("load-balancer", "proxy"),
    "nat": ("load-balancer", "proxy"),
    "load-balancer": ("firewall", "nat"),
    "proxy": ("firewall", "nat"),
    "server": ("client",),
    "client": ("server",),
}
#: A proxy's connect timeout is drawn small (haproxy tries 4 times).
CONNECT_TIMEOUTS_S: tuple[int, ...] = (1, 2, 3, 4, 5)
DEFAULT_MAX_TIMEOUT_S = 350


@lru_cache(maxsize=1)
def catalog_values() -> dict[str, tuple[int, ...]]:
    """Integer catalog timeouts per category (the packaged idle-timeout table)."""
    out: dict[str, set[int]] = {}
    for e in load_timeouts():
        if e.timeout_s == int(e.timeout_s):
            out.setdefault(e.category, set()).add(int(e.timeout_s))
    return {k: tuple(sorted(v)) for k, v in out.items()}


def catalog_categories(timeout_s: float) -> list[str]:
    """Every category with a catalog row at exactly this timeout."""
    return sorted(c for c, vals in catalog_values().items() if timeout_s in vals)


@dataclass(frozen=True, slots=True)
class Case:
    """One drawn lab run: its scenario, parameter overrides and labelled variables."""

    seed: int
    index: int
    scenario: str
    params: dict[str, str]
    variables: dict[str, Any] = field(default_factory=dict)

    @property
    def stem(self) -> str:
        return f"s{self.seed}-{self.index:04d}-{self.scenario}"

    @property
    def expected_s(self) -> float:
        """Roughly how long the case takes (for longest-first scheduling)."""
        scen = SCENARIOS[self.scenario]
        return scen.plan(scen.params(self.params)).duration_s + 5.0


def _weighted(rng: random.Random, items: Sequence[tuple[float, str]]) -> str:
    return rng.choices([name for _, name in items], weights=[w for w, _ in items])[0]


def _draw_timeout(rng: random.Random, category: str, max_s: int) -> tuple[int, str]:
    cat = catalog_values()
    for _ in range(20):
        pool = _weighted(rng, TIMEOUT_POOLS)
        if pool == "off-catalog":
            choices = [v for v in OFF_CATALOG_S if v <= max_s]
        elif pool == "cross":
            own = set(cat.get(category, ()))
            choices = sorted({v for c in CROSS[category] for v in cat.get(c, ())
                              if v not in own and v <= min(max_s, 120)})
        else:
            lo, hi = {"own-short": (1, 30), "own-medium": (31, 120),
                      "own-long": (121, max_s)}[pool]
            choices = [v for v in cat.get(category, ()) if lo <= v <= min(hi, max_s)]
        if choices:
            return rng.choice(choices), pool
    # Only a tiny --max-timeout-s gets here (no pool has a value under it): say so.
    return rng.choice([v for v in OFF_CATALOG_S if v <= max_s] or [2]), "fallback"


def draw_case(seed: int, index: int, *, max_timeout_s: int = DEFAULT_MAX_TIMEOUT_S,
              families: str = "default") -> Case:
    """Case ``index`` of sweep ``seed``: a pure function of its arguments.

    ``families`` names the scenario set (:data:`FAMILY_SETS`).  Everything a twin
    set adds to the draw comes after the draws every case makes, and only for its
    own scenarios, so the default set draws exactly what it always drew."""
    if families not in FAMILY_SETS:
        raise UsageError(f"families must be one of {', '.join(FAMILY_SETS)}")
    table = FAMILY_SETS[families]
    rng = random.Random(f"rstscope-sweep:{seed}:{index}")
    scenario = _weighted(rng, [(w, name) for name, (w, _, _) in table.items()])
    _, tparam, category = table[scenario]
    scen = SCENARIOS[scenario]
    plan = scen.plan(scen.params())
    needs_rtr = plan.middlebox.startswith("inject-")
    hops_client = rng.randint(2 if needs_rtr else 1, 6)
    hops_server = rng.randint(1, 6)
    placements = ["client-edge", "before-lb"] + (["mid-path"] if hops_client >= 3 else [])
    fw_at = rng.choice(placements)
    # The client on the server's own link (its scenario's defaults say so): no router,
    # no firewall, no balancer between them.  The draws above are made all the same.
    lan = (scen.defaults.get("hops_client"), scen.defaults.get("hops_server")) == (0, 0)
    if lan:
        hops_client, hops_server, fw_at = 0, 0, "client-edge"
    ttl = {n: rng.choice(TTLS) for n in ("client", "fw", "lb", "srv")}
    params: dict[str, str] = {
        "ip_v": str(rng.choice((4, 6))),
        "hops_client": str(hops_client), "hops_server": str(hops_server), "fw_at": fw_at,
        **{f"ttl_{n}": str(v) for n, v in ttl.items()},
    }
    lb_kind = {"l4lb": "l4", "haproxy": "haproxy", "nginx": "nginx"}.get(plan.middlebox, "none")
    if plan.target == "srv" and not lan and rng.random() < 0.3:
        params["front"] = "l4"
        lb_kind = "l4"
    if needs_rtr:
        params["inject_ttl"] = str(rng.choice(TTLS))
        params["ttl_rtr"] = params["inject_ttl"]
    timeout_s: int | None = None
    pool = None
    if tparam == "connect_timeout_s":
        timeout_s, pool = rng.choice(CONNECT_TIMEOUTS_S), "connect"
    elif tparam is not None and category is not None:
        timeout_s, pool = _draw_timeout(rng, category, max_timeout_s)
    if tparam is not None and timeout_s is not None:
        params[tparam] = str(timeout_s)
    if "extra_idle_s" in scen.defaults:
        params["extra_idle_s"] = f"{rng.uniform(0.5, 3.0):.2f}"
    if "fw_action" in scen.defaults and rng.random() < 0.2:
        # A firewall that drops silently: no firewall RST, the client gives up and resets.
        params["fw_action"] = "drop"
    if families != "default":
        hops_server = _draw_twin_extras(rng, scenario, scen.defaults, params, hops_server)
    cats = catalog_categories(timeout_s) if timeout_s is not None else []
    variables: dict[str, Any] = {
        "scenario": scenario,
        "ip_v": int(params["ip_v"]),
        "hops_client": hops_client,
        "hops_server": hops_server,
        "fw_at": fw_at,
        "lb": lb_kind,
        "fw_action": params.get("fw_action", "reject" if "fw_action" in scen.defaults else None),
        **{f"ttl_{n}": v for n, v in ttl.items()},
        "inject_ttl": int(params["inject_ttl"]) if needs_rtr else None,
        "timeout_param": tparam,
        "timeout_category": category,
        "timeout_s": timeout_s,
        "timeout_pool": pool,
        "timeout_catalog_categories": cats,
        "timeout_on_catalog": bool(category and category in cats),
        "timeout_collision": bool(cats and (len(cats) > 1 or category not in cats)),
    }
    return Case(seed=seed, index=index, scenario=scenario, params=params, variables=variables)


def _draw_twin_extras(rng: random.Random, scenario: str,
                      defaults: Mapping[str, int | float | str], params: dict[str, str],
                      hops_server: int) -> int:
    """The twin set's own draws (made after every common one); returns hops_server."""
    if scenario == "haproxy-timeout" and rng.random() < 0.5:
        # Half the haproxy cases sit right in front of the server, as the LAN client
        # does: the pair then differs in nothing a path length shows.
        hops_server = 1
        params["hops_server"] = "1"
    if "late_s" in defaults:
        params["late_s"] = f"{rng.uniform(0.1, 1.0):.2f}"
    if "early_s" in defaults:
        params["early_s"] = f"{rng.uniform(0.1, 0.5):.2f}"
    if "late" in defaults:
        params["late"] = rng.choice(("close-notify", "request"))
    return hops_server


def draw_cases(seed: int, count: int, *, start: int = 0,
               max_timeout_s: int = DEFAULT_MAX_TIMEOUT_S,
               families: str = "default") -> list[Case]:
    return [draw_case(seed, i, max_timeout_s=max_timeout_s, families=families)
            for i in range(start, start + count)]


@dataclass(frozen=True, slots=True)
class CaseOutcome:
    stem: str
    scenario: str
    ok: bool
    error: str | None
    wall_s: float
    rsts: dict[str, int]


def run_case(case: Case, out: Path) -> CaseOutcome:
    """Run one case into ``out`` (never raises for a lab failure: it is recorded)."""
    t0 = time.monotonic()
    try:
        res = run_scenario(case.scenario, case.params, out, stem=case.stem,
                           manifest_extra={"sweep": {"seed": case.seed, "index": case.index,
                                                     "variables": case.variables}})
    except (LabError, OSError) as exc:
        return CaseOutcome(case.stem, case.scenario, False, str(exc)[:300],
                           round(time.monotonic() - t0, 1), {})
    return CaseOutcome(case.stem, case.scenario, True, None, round(time.monotonic() - t0, 1),
                       {v.name: v.rst_count for v in res.vantages})


def run_sweep(seed: int, count: int, out_dir: str | Path, *, jobs: int = 16,
              start: int = 0, max_timeout_s: int = DEFAULT_MAX_TIMEOUT_S,
              families: str = "default",
              progress: Callable[[CaseOutcome, int, int], None] | None = None
              ) -> list[CaseOutcome]:
    """Draw ``count`` cases of ``seed`` and run them, ``jobs`` at a time (root)."""
    if count < 1:
        raise UsageError("--count must be at least 1")
    return run_sweeps([(seed, Path(out_dir))], count, jobs=jobs, start=start,
                      max_timeout_s=max_timeout_s, progress=progress,
                      draws={seed: (families, max_timeout_s)})[seed]


def run_sweeps(sweeps: Sequence[tuple[int, Path]], count: int, *, jobs: int = 16,
               start: int = 0, max_timeout_s: int = DEFAULT_MAX_TIMEOUT_S,
               progress: Callable[[CaseOutcome, int, int], None] | None = None,
               draws: Mapping[int, tuple[str, int]] | None = None
               ) -> dict[int, list[CaseOutcome]]:
    """Run several seeds' cases in one pool (so one seed's long cases overlap the
    next seed's short ones), each seed into its own directory with its index.
    ``draws`` gives a seed its own (family set, longest timeout); the others draw
    the default set up to ``max_timeout_s``."""
    if jobs < 1:
        raise UsageError("--jobs must be at least 1")
    require_root()
    require_tools([*BASE_TOOLS, "haproxy", "nginx"])
    for _, out in sweeps:
        try:
            out.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"cannot create {out}: {exc.strerror}") from exc
    how = {seed: (draws or {}).get(seed, ("default", max_timeout_s)) for seed, _ in sweeps}
    cases = {seed: draw_cases(seed, count, start=start, max_timeout_s=how[seed][1],
                              families=how[seed][0])
             for seed, _ in sweeps}
    dirs = dict(sweeps)
    order = sorted(((c, dirs[seed]) for seed, cs in cases.items() for c in cs),
                   key=lambda co: -co[0].expected_s)
    total = len(order)
    outcomes: dict[str, CaseOutcome] = {}
    t0 = time.monotonic()
    old = _interrupt_on_term()
    pool = ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="sweep")
    try:
        futures: dict[Future[CaseOutcome], Case] = {}
        for c, out in order:
            futures[pool.submit(run_case, c, out)] = c
        for fut in _as_completed(futures):
            oc = fut.result()
            outcomes[oc.stem] = oc
            if progress is not None:
                progress(oc, len(outcomes), total)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        Session.close_all()
        pool.shutdown(wait=True, cancel_futures=True)
        Session.allow_new()
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _restore(old)
    wall_s = round(time.monotonic() - t0, 1)
    result: dict[int, list[CaseOutcome]] = {}
    for seed, cs in cases.items():
        result[seed] = [outcomes[c.stem] for c in cs]
        index = {
            "seed": seed, "start": start, "count": count, "max_timeout_s": how[seed][1],
            **({"families": how[seed][0]} if how[seed][0] != "default" else {}),
            "wall_s": wall_s, "jobs": jobs,
            "cases": [asdict(c) | asdict(o) for c, o in zip(cs, result[seed], strict=True)],
        }
        suffix = f"-{start}" if start else ""
        (dirs[seed] / f"sweep-{seed}{suffix}.json").write_text(json.dumps(index, indent=1) + "\n")
    return result


def _as_completed(futures: Mapping[Future[CaseOutcome], Case]) -> Iterator[Future[CaseOutcome]]:
    """Yield futures as they finish.  Polls, so SIGINT/SIGTERM reach the main thread
    promptly (a blocking wait would delay them until a case ends)."""
    pending = set(futures)
    while pending:
        finished = [f for f in pending if f.done()]
        pending.difference_update(finished)
        yield from finished
        if not finished:
            time.sleep(0.2)


def _interrupt_on_term() -> object:
    if threading.current_thread() is not threading.main_thread():
        return None

    def on_term(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    return signal.signal(signal.SIGTERM, on_term)


def _restore(old: object) -> None:
    if old is not None:
        signal.signal(signal.SIGTERM, old)  # type: ignore[arg-type]
