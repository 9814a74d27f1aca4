"""Idle-gap finding (hand-made timestamps) and the gap histogram on a real capture."""

from __future__ import annotations

import numpy as np
import pytest

from rstscope.plot.gaps import default_min_gap_s, find_idle_gaps, idle_gap_histogram
from rstscope.plot.timeout_lines import KnownTimeout

S = 1_000_000_000


def test_finds_gaps_above_threshold_in_time_order():
    ts = np.array([0, 1, 2, 10, 11, 70, 71]) * S // 10  # gaps of 0.8 s and 5.9 s
    gaps = find_idle_gaps(ts, 0.5)
    assert [(g.start_ns, g.end_ns) for g in gaps] == [(2 * S // 10, S), (11 * S // 10, 7 * S)]
    assert gaps[1].duration_s == pytest.approx(5.9)


def test_keeps_longest_and_the_gap_before_a_reset():
    ts = np.cumsum([0, 10, 1, 9, 1, 8, 1, 2]) * S  # gaps 10, 9, 8, 2 s (+ 1 s spacing)
    gaps = find_idle_gaps(ts, 1.5, max_gaps=2, keep_ending_at=[int(ts[-1])])
    assert [g.duration_s for g in gaps] == [10.0, 9.0, 2.0]


def test_default_threshold_scales_with_packet_rate():
    assert default_min_gap_s(np.arange(100) * S // 1000) == 1.0  # 1 ms spacing: 1 s floor
    assert default_min_gap_s(np.arange(100) * S) == pytest.approx(20.0)  # 1 s spacing


def test_histogram_marks_named_timeouts(abort_analysis, abort_capture):
    from matplotlib.figure import Figure

    # Both lab timers were 3 s; 350 s is far outside anything observed.
    ax = idle_gap_histogram(abort_analysis, Figure().subplots(),
                            known=[KnownTimeout(3.0, ("lab timer",)), KnownTimeout(350.0, ("AWS NLB",))])
    patches = [p for p in ax.patches if p.get_gid() == "gap-hist"]
    assert sum(p.get_height() for p in patches) == 2  # two aborted flows, one gap each
    # Timeout names are in the legend box (never rotated text across the bars).
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("lab timer" in t for t in labels)
    assert not any("AWS NLB" in t for t in labels)  # far outside the observed gaps
    assert ax.get_title().startswith("Idle gap before each RST (2 of 2 RSTs)")


def test_histogram_counts_sub_second_gaps():
    from matplotlib.figure import Figure

    from rstscope.api import analyze
    from tests.samplemix import single_capture

    ex = single_capture("server-abort")
    ax = idle_gap_histogram(analyze(ex.path), Figure().subplots())
    # The server resets within a millisecond of the request: a gap well under a
    # second is still a gap (the histogram shows it), so there must be exactly one entry.
    assert sum(p.get_height() for p in ax.patches if p.get_gid() == "gap-hist") == 1


def test_histogram_without_resets_says_so():
    from matplotlib.figure import Figure

    from rstscope.api import analyze
    from tests.samplemix import single_capture

    ex = single_capture("graceful-close")  # one gracefully closed flow
    ax = idle_gap_histogram(analyze(ex.path), Figure().subplots())
    assert [t.get_text() for t in ax.texts if t.get_gid() == "empty-note"] == [
        "no idle gaps before resets"]
    assert ax.get_title() == "Idle gap before each RST (0 of 0 RSTs)"
