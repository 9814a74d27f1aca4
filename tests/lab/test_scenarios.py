"""The scenario catalogue: parameters, validation, plans (no root needed)."""

from __future__ import annotations

import pytest

from rstscope.errors import UsageError
from rstscope.lab import SCENARIOS
from rstscope.lab.scenarios import COMMON_DEFAULTS, get

REQUIRED = {
    "server-abort", "server-idle-abort", "client-read-timeout-abort",
    "client-read-timeout-graceful", "client-close-unread", "fw-idle-expiry-client-next",
    "fw-idle-expiry-server-next", "fw-policy-reject", "nat-rebind-after-idle",
    "l4lb-idle-expiry", "haproxy-timeout", "nginx-proxy-timeout", "dpi-inject-single",
    "dpi-inject-storm", "graceful-close",
}


def test_catalogue_has_every_required_scenario():
    assert set(SCENARIOS) >= REQUIRED


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_scenario_has_description_and_a_plan(name):
    scen = SCENARIOS[name]
    assert scen.description and "\n" not in scen.description
    plan = scen.plan(scen.params())
    # What the server does: a schedule for the lab server, arguments for another
    # endpoint module, or a set-up that starts a real server (gunicorn).
    if plan.server_module == "server":
        assert plan.server_schedule
    elif plan.server_module:
        assert plan.server_args
    else:
        # ... or nothing at all: no server program, so the port is closed (the kernel
        # refuses the SYN; rstscope.lab.twins).
        assert plan.setup is not None or plan.causes == {"srv": "refused"}
    # Default timeouts stay short so the suite fits in CI.  Proxy buffering needs
    # longer: two whole buffers flushed by nginx (a 7 s busy phase), then a slow
    # phase the client times out in (issue 17), so it has its own bound.
    assert plan.duration_s <= (15 if name == "proxy-buffering" else 12)
    # Every cause names a node of the topology.
    assert set(plan.causes) <= {"client", "fw", "rtr", "lb", "srv"}


def test_overrides_are_typed_like_defaults():
    p = get("fw-idle-expiry-client-next").params({"conntrack_timeout_s": "60", "ip_v": "6"})
    assert p["conntrack_timeout_s"] == 60.0 and isinstance(p["conntrack_timeout_s"], float)
    assert p["ip_v"] == 6
    plan = get("fw-idle-expiry-client-next").plan(p)
    assert plan.timeouts == {"fw": 60.0}
    # The client must stay idle longer than the conntrack timeout to see the expiry.
    idle = float(plan.client_args[plan.client_args.index("--reuse-after-s") + 1])
    assert idle > 60


@pytest.mark.parametrize("overrides", [
    {"nope": "1"}, {"ip_v": "5"}, {"ttl_fw": "300"}, {"ttl_fw": "x"},
    {"conntrack_timeout_s": "-1"},
])
def test_bad_overrides_are_usage_errors(overrides):
    with pytest.raises(UsageError):
        get("fw-idle-expiry-client-next").params(overrides)


def test_unknown_scenario_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown lab scenario"):
        get("no-such-scenario")


def test_common_parameters_cover_every_device_ttl():
    assert {f"ttl_{n}" for n in ("client", "fw", "rtr", "lb", "srv")} <= set(COMMON_DEFAULTS)


def test_full_proxy_flag():
    assert get("haproxy-timeout").plan(get("haproxy-timeout").params()).full_proxy
    assert get("nginx-proxy-timeout").plan(get("nginx-proxy-timeout").params()).full_proxy
    assert not get("l4lb-idle-expiry").plan(get("l4lb-idle-expiry").params()).full_proxy
