"""The sweep's draw (no root): deterministic per seed, and it covers what it promises."""

from __future__ import annotations

from collections import Counter

import pytest

from rstscope.errors import UsageError
from rstscope.lab import SCENARIOS, topology
from rstscope.lab.sweep import (
    FAMILIES,
    OFF_CATALOG_S,
    TTLS,
    catalog_categories,
    catalog_values,
    draw_case,
    draw_cases,
    run_sweep,
)


def test_draw_is_deterministic_and_prefix_stable():
    a = draw_cases(7, 40)
    assert a == draw_cases(7, 40)
    # A longer sweep extends a shorter one; --start continues it.
    assert draw_cases(7, 60)[:40] == a
    assert draw_cases(7, 20, start=40) == draw_cases(7, 60)[40:]
    assert a != draw_cases(8, 40)


def test_every_case_is_a_valid_scenario_run():
    for c in draw_cases(3, 300):
        scen = SCENARIOS[c.scenario]
        p = scen.params(c.params)  # raises UsageError on a bad draw
        plan = scen.plan(p)
        path = topology.path_for(int(p["hops_client"]), int(p["hops_server"]), str(p["fw_at"]),
                                 with_rtr=plan.middlebox.startswith("inject-")
                                 or int(p["hops_client"]) >= 2)
        assert c.variables["hops_client"] == path.hops_between("client", "lb")
        assert c.stem.startswith(f"s3-{c.index:04d}-")


def test_draw_covers_what_real_networks_vary():
    cases = draw_cases(11, 400)
    v = [c.variables for c in cases]
    assert set(FAMILIES) <= set(SCENARIOS)
    assert {x["scenario"] for x in v} == set(FAMILIES)
    assert {x["ip_v"] for x in v} == {4, 6}
    assert {x["hops_client"] for x in v} == set(range(1, 7))
    assert {x["hops_server"] for x in v} == set(range(1, 7))
    assert {x["fw_at"] for x in v} == set(topology.FW_PLACEMENTS)
    assert {x["lb"] for x in v} == {"none", "l4", "haproxy", "nginx"}
    for dev in ("client", "fw", "lb", "srv"):
        assert {x[f"ttl_{dev}"] for x in v} == set(TTLS)
    # The hard combinations the issue names.
    lb_cases = [x for x in v if x["lb"] != "none"]
    fw_cases = [x for x in v if x["scenario"].startswith("fw-")]
    assert any(x["ttl_lb"] == 255 for x in lb_cases)
    assert any(x["ttl_fw"] == 64 for x in fw_cases)
    assert any(x["fw_at"] == "mid-path" and x["ttl_lb"] == 255 for x in fw_cases)
    # Timeouts on and off the catalog, and collisions across categories.
    timed = [x for x in v if x["timeout_s"] is not None and x["timeout_pool"] != "connect"]
    assert any(not x["timeout_catalog_categories"] for x in timed)
    assert any(x["timeout_on_catalog"] for x in timed)
    assert any(x["timeout_category"] == "firewall"
               and "load-balancer" in x["timeout_catalog_categories"]
               and not x["timeout_on_catalog"] for x in timed)
    assert any(x["timeout_category"] == "load-balancer"
               and "firewall" in x["timeout_catalog_categories"]
               and not x["timeout_on_catalog"] for x in timed)
    assert any(x["timeout_collision"] for x in timed)


def test_off_catalog_values_are_off_every_catalog_row():
    for s in OFF_CATALOG_S:
        assert catalog_categories(s) == []
    assert 350 in catalog_values()["load-balancer"] and 350 in catalog_values()["nat"]
    assert catalog_categories(350) == ["firewall", "load-balancer", "nat"]


def test_long_timeouts_are_rare_and_capped():
    cases = draw_cases(5, 500)
    pools = Counter(c.variables["timeout_pool"] for c in cases)
    timed = sum(n for p, n in pools.items() if p is not None)
    assert pools["own-long"] / timed < 0.15
    assert max(c.variables["timeout_s"] or 0 for c in cases) <= 350
    short = draw_cases(5, 200, max_timeout_s=30)
    assert max(c.variables["timeout_s"] or 0 for c in short) <= 30


def test_case_records_its_variables_in_its_params():
    c = draw_case(2, 17)
    for key in ("hops_client", "hops_server", "fw_at"):
        assert str(c.variables[key]) == c.params[key]
    for dev in ("client", "fw", "lb", "srv"):
        assert str(c.variables[f"ttl_{dev}"]) == c.params[f"ttl_{dev}"]


def test_bad_counts_are_usage_errors():
    with pytest.raises(UsageError):
        run_sweep(1, 0, ".")


def test_pool_names_tell_the_truth_about_the_catalog():
    for max_s in (5, 30, 350):
        for c in draw_cases(9, 200, max_timeout_s=max_s):
            v = c.variables
            if v["timeout_pool"] == "off-catalog":
                assert v["timeout_catalog_categories"] == [], v
            elif v["timeout_pool"] in ("own-short", "own-medium", "own-long"):
                assert v["timeout_on_catalog"], v
            elif v["timeout_pool"] == "cross":
                assert v["timeout_catalog_categories"] and not v["timeout_on_catalog"], v
    # With the corpus's settings no draw needs the fallback.
    assert all(c.variables["timeout_pool"] != "fallback" for c in draw_cases(1, 2000))
