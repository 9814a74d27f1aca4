"""The timeline's TTL track says where a box's RST was made (issue 13, section 1)."""

from __future__ import annotations

import pytest

pytest.importorskip("matplotlib")

from rstscope.plot.timeline import _ttl_text  # noqa: E402


def test_timeline_ttl_track_names_where_a_box_made_its_rst():
    rec = {"ttl": 255, "expected_ttl": 61, "hop_delta": 3,
           "path_position": "made 1 hop from the client, 3 hops before the server"}
    assert _ttl_text(rec).endswith("made 1 hop from the client, 3 hops before the server")
    assert "made" not in _ttl_text({**rec, "path_position": None})
