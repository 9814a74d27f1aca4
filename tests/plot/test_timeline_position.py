"""The timeline's TTL track says where a box's RST was made (issue 13, section 1)."""

from __future__ import annotations

import dataclasses

import pytest

pytest.importorskip("matplotlib")

from rstscope.api import analyze  # noqa: E402
from rstscope.plot.timeline import _ttl_text  # noqa: E402
from tests.conftest import SAMPLES  # noqa: E402


def test_timeline_ttl_track_names_where_a_box_made_its_rst():
    # A real reset record with the TTL facts of a box's RST put in.
    base = analyze(SAMPLES / "dpi-inject-single.client.pcap").typed_resets()[0]
    rec = dataclasses.replace(base, ttl=255, expected_ttl=61, hop_delta=3,
                              path_position="made 1 hop from the client, 3 hops before the server")
    assert _ttl_text(rec).endswith("made 1 hop from the client, 3 hops before the server")
    assert "made" not in _ttl_text(dataclasses.replace(rec, path_position=None))
