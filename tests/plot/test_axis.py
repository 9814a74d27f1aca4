"""The gap-compressing time axis, against hand-computed positions."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rstscope.plot.axis import build_time_axis

S = 1_000_000_000  # ns per second


def test_no_gaps_is_identity_in_seconds():
    ax = build_time_axis(5 * S, 15 * S)
    assert ax.to_x([5 * S, 7 * S, 15 * S]).tolist() == [0.0, 2.0, 10.0]
    assert ax.compressed_gaps == ()


def test_gap_is_compressed_with_log_inside_and_activity_kept_linear():
    # 0..2 s active, 2..3602 s idle, 3602..3603 s active: 3 s of activity.
    ax = build_time_axis(0, 3603 * S, [(2 * S, 3602 * S)], gap_width_fraction=0.5)
    width = 0.5 * 3.0
    x = ax.to_x([0, 1 * S, 2 * S, 3602 * S, 3603 * S])
    assert x.tolist() == pytest.approx([0.0, 1.0, 2.0, 2.0 + width, 3.0 + width])
    # Inside the gap: x = 2 + w * log1p(t - 2) / log1p(3600).
    t = 2 + 60.0
    assert ax.x_of_seconds([t])[0] == pytest.approx(2 + width * math.log1p(60) / math.log1p(3600))
    # 60 s and 350 s after the last activity stay clearly apart.
    x60, x350 = ax.x_of_seconds([62.0, 352.0])
    assert x350 - x60 > 0.15 * width
    assert len(ax.compressed_gaps) == 1


def test_inverse_round_trips_everywhere_including_outside():
    ax = build_time_axis(0, 100 * S, [(10 * S, 90 * S), (92 * S, 99 * S)])
    t = np.array([-5.0, 0.0, 3.3, 10.0, 11.0, 50.0, 89.9, 91.0, 95.0, 100.0, 130.0])
    back = ax.seconds_of_x(ax.x_of_seconds(t))
    assert back == pytest.approx(t, rel=1e-9, abs=1e-9)


def test_mapping_is_monotonic():
    ax = build_time_axis(0, 10_000 * S, [(1 * S, 5_000 * S), (5_001 * S, 9_999 * S)])
    x = ax.x_of_seconds(np.linspace(-10, 10_010, 5001))
    assert np.all(np.diff(x) > 0)


def test_all_idle_flow_gets_unit_gap():
    # Two packets 3 h apart: no activity time at all; the gap still has a width.
    ax = build_time_axis(0, 10_800 * S, [(0, 10_800 * S)])
    assert ax.to_x([0, 10_800 * S]).tolist() == pytest.approx([0.0, 1.0])
