"""The everyday twins of the middlebox scenarios and their draw (no root needed)."""

from __future__ import annotations

from collections import Counter

import pytest

from rstscope.errors import UsageError
from rstscope.lab import SCENARIOS, run_scenario, topology
from rstscope.lab.sweep import FAMILIES, FAMILY_SETS, TWIN_FAMILIES, draw_case, draw_cases
from rstscope.lab.twins import TWIN_OF


def test_every_twin_and_its_look_alikes_are_registered_and_drawn_together():
    for twin, (_vantage, alikes) in TWIN_OF.items():
        assert twin in SCENARIOS and twin in TWIN_FAMILIES
        assert twin not in FAMILIES  # the default set (and so every old seed) has none
        for alike in alikes:
            assert alike in SCENARIOS and alike in FAMILIES and alike in TWIN_FAMILIES
    # Nothing else: each scenario of the set is a twin or a look-alike of one.
    alikes = {a for _v, al in TWIN_OF.values() for a in al}
    assert set(TWIN_FAMILIES) == set(TWIN_OF) | alikes
    assert FAMILY_SETS["default"] is FAMILIES


def test_lan_client_stays_on_the_servers_link():
    scen = SCENARIOS["lan-client-read-timeout-abort"]
    p = scen.params()
    assert (p["hops_client"], p["hops_server"]) == (0, 0)
    with pytest.raises(UsageError):
        scen.plan(scen.params({"hops_client": "2", "hops_server": "1"}))


def test_scenarios_that_need_a_middlebox_refuse_the_lan_path():
    # Refused before anything is checked or created (so no root is needed here).
    for name, extra in (("fw-policy-reject", {}), ("haproxy-timeout", {}),
                        ("server-abort", {"front": "l4"})):
        with pytest.raises(UsageError, match="server's link"):
            run_scenario(name, {"hops_client": "0", "hops_server": "0", **extra}, ".")


def test_late_data_kinds():
    scen = SCENARIOS["server-close-then-late-data"]
    req = scen.plan(scen.params({"late": "request", "late_s": "0.5"}))
    assert req.client_args[:4] == ("--requests", "2", "--reuse-after-s", "0.5")
    cn = scen.plan(scen.params({"late": "close-notify", "late_s": "0.5"}))
    assert "--done-delay-s" in cn.client_args and "--on-done" in cn.client_args
    assert req.server_schedule.endswith(",close") and req.causes == {"srv": "data-after-close"}
    with pytest.raises(UsageError):
        scen.plan(scen.params({"late": "never"}))


@pytest.mark.parametrize("seed", [105, 207, 3])
def test_twin_draws_are_valid_runs_and_hold_both_sides_of_each_pair(seed):
    cases = draw_cases(seed, 60, max_timeout_s=30, families="twins")
    assert cases == draw_cases(seed, 60, max_timeout_s=30, families="twins")
    for c in cases:
        scen = SCENARIOS[c.scenario]
        p = scen.params(c.params)  # raises UsageError on a bad draw
        plan = scen.plan(p)
        v = c.variables
        path = topology.path_for(v["hops_client"], v["hops_server"], v["fw_at"],
                                 with_rtr=v["inject_ttl"] is not None or v["hops_client"] >= 2)
        if c.scenario == "lan-client-read-timeout-abort":
            assert path is topology.LAN_PATH and v["lb"] == "none" and "front" not in c.params
        else:
            assert (v["hops_client"], v["hops_server"]) == (
                path.hops_between("client", "lb"), path.hops_between("lb", "srv") + 1)
        assert (v["timeout_s"] or 0) <= 30 and plan.duration_s < 60
    got = Counter(c.scenario for c in cases)
    if seed in (105, 207):  # the corpus's twin seeds: every pair has both sides
        for twin, (_vantage, alikes) in TWIN_OF.items():
            if twin.startswith("keepalive-race"):
                assert got["keepalive-race-fin-first"] + got["keepalive-race-request-first"]
            else:
                assert got[twin], twin
            assert sum(got[a] for a in alikes), alikes
        # Half of haproxy's timeouts sit right in front of the server, like the LAN client.
        assert any(c.variables["hops_server"] == 1 for c in cases
                   if c.scenario == "haproxy-timeout")


def test_default_set_is_the_default():
    assert draw_case(9, 4) == draw_case(9, 4, families="default")
    with pytest.raises(UsageError):
        draw_case(9, 4, families="nope")
