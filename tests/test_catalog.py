"""The packaged idle-timeout table and user tables."""

from __future__ import annotations

import pytest

from rstscope.catalog import load_timeouts, load_timeouts_file, parse_timeouts
from rstscope.core.config import EXPIRY_BEHAVIOURS
from rstscope.errors import InputMissingError, UsageError

HEADER = "product,category,setting,default_s,expiry_behaviour,full_proxy,source\n"


def test_packaged_catalog_loads():
    entries = load_timeouts()
    assert len(entries) > 100
    assert all(e.timeout_s > 0 and e.expiry_behaviour in EXPIRY_BEHAVIOURS for e in entries)
    nlb = [e for e in entries if e.product.startswith("AWS Network Load Balancer")]
    assert any(e.timeout_s == 350 and e.expiry_behaviour == "rst-next-packet" for e in nlb)


def test_rows_without_numbers_are_skipped_and_proxy_flag_parsed():
    text = HEADER + ("X,proxy,a,none,fin,yes,src\n"
                     "Y,proxy,b,75,fin,yes,src\n"
                     "Z,nat,c,7440,unknown,unknown,src\n")
    y, z = parse_timeouts(text)
    assert (y.product, y.timeout_s, y.full_proxy) == ("Y", 75.0, True)
    assert z.full_proxy is None


def test_bad_tables_raise_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="lacks column"):
        parse_timeouts("product,category\nX,proxy\n")
    with pytest.raises(UsageError, match="unknown expiry_behaviour"):
        parse_timeouts(HEADER + "X,proxy,a,60,explodes,yes,src\n")
    with pytest.raises(InputMissingError):
        load_timeouts_file(tmp_path / "missing.csv")
    p = tmp_path / "mine.csv"
    p.write_text(HEADER + "Mine,firewall,idle,900,rst-both,no,me\n")
    assert load_timeouts_file(p)[0].timeout_s == 900
