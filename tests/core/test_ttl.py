from __future__ import annotations

import pytest

from rstscope.core.ttl import hops, initial_ttl, ttl_mode_spread


@pytest.mark.parametrize(("ttl", "base", "n"), [(64, 64, 0), (52, 64, 12), (1, 32, 31),
                                                 (33, 64, 31), (113, 128, 15), (251, 255, 4),
                                                 (255, 255, 0)])
def test_initial_ttl_and_hops(ttl: int, base: int, n: int):
    assert initial_ttl(ttl) == base and hops(ttl) == n


def test_mode_spread():
    assert ttl_mode_spread({}) is None
    assert ttl_mode_spread({61: 4}) == (61, 0)
    assert ttl_mode_spread({52: 10, 51: 2, 60: 1}) == (52, 9)
