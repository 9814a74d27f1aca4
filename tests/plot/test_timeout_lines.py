"""Parsing the core's timeout candidates and grouping the catalog for plots."""

from __future__ import annotations

from rstscope.plot.timeout_lines import KnownTimeout, catalog_by_value, nearest, parse_candidates


def test_parse_candidates():
    got = parse_candidates(["350 s: AWS NLB", "60.0 s: nginx proxy_read_timeout; AWS ALB idle timeout",
                            "no number here", "60 s: Tomcat connectionTimeout"])
    assert got == [KnownTimeout(60.0, ("nginx proxy_read_timeout", "AWS ALB idle timeout",
                                       "Tomcat connectionTimeout")),
                   KnownTimeout(350.0, ("AWS NLB",))]
    assert got[0].label(1) == "1 min: nginx proxy_read_timeout +2"


def test_catalog_has_the_well_known_values():
    values = {k.timeout_s for k in catalog_by_value()}
    # From the packaged table (rstscope/data/idle-timeouts.csv): AWS NLB 350 s, nginx 60 s.
    assert {60.0, 350.0} <= values
    nlb = next(k for k in catalog_by_value() if k.timeout_s == 350.0)
    assert any("Network Load Balancer" in n for n in nlb.names)


def test_nearest_on_log_scale():
    table = [KnownTimeout(v, ()) for v in (30.0, 60.0, 240.0, 350.0)]
    assert [k.timeout_s for k in nearest(table, 330.0, 2)] == [240.0, 350.0]
