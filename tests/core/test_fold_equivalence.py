"""The tracker's fold (its vectorised bulk path) against its packet-by-packet
reference, on real captures: every sample, every shared public capture (when
``../shared`` is there) and a generated one, each cut into small and large
batches.  ``TrackerConfig(packet_path_only=True)`` runs every packet through
``Flow.packet``: whatever the fold does must leave the same flows, resets,
stalls and counts (the hand-made mixes in test_tracker.py test the same on
staged cases).  Flows and verdicts are compared in order: the order is part of
analyze's output."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from rstscope.catalog import make_config
from rstscope.core import Tracker
from rstscope.ingest import open_capture
from rstscope.schema import PACKET_DTYPE
from tests.conftest import SAMPLES, make_capture, shared_path

BATCH_SIZES = (7, 65536)


def _captures(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file()
                  and (p.suffix in (".pcap", ".pcapng") or p.name.endswith(".gz")))


def _packets(path: Path) -> np.ndarray:
    with open_capture(path) as reader:
        batches = list(reader)
    return np.concatenate(batches) if batches else np.zeros(0, dtype=PACKET_DTYPE)


def _track(packets: np.ndarray, batch_size: int, *, packet_path_only: bool) -> Tracker:
    tr = Tracker(make_config(packet_path_only=packet_path_only))
    for i in range(0, len(packets), batch_size):
        tr.feed(packets[i:i + batch_size])
    tr.finish()
    return tr


def _assert_fold_equals_reference(packets: np.ndarray) -> None:
    for bs in BATCH_SIZES:
        # The same batches for both: verdicts settle at the end of a batch, so the
        # cuts may order them differently on either path (see test_tracker's
        # midstream property); this compares the fold with the packet path.
        slow = _track(packets, bs, packet_path_only=True)
        fast = _track(packets, bs, packet_path_only=False)
        assert fast.flows() == slow.flows(), f"flows differ at batch size {bs}"
        assert fast.resets() == slow.resets(), f"resets differ at batch size {bs}"
        assert fast.stalls() == slow.stalls(), f"stalls differ at batch size {bs}"
        assert fast.vantage == slow.vantage, f"vantage differs at batch size {bs}"
        # Which path took a packet is the point of the comparison, not part of it.
        assert (dataclasses.replace(fast.stats, packet_path=0, bulk_path=0)
                == dataclasses.replace(slow.stats, packet_path=0, bulk_path=0))


def _shared() -> list[Path]:
    root = shared_path() / "captures"
    return _captures(root) if root.is_dir() else []


@pytest.mark.parametrize("path", _captures(SAMPLES), ids=lambda p: p.name)
def test_fold_equals_packet_path_on_samples(path: Path) -> None:
    _assert_fold_equals_reference(_packets(path))


def test_fold_equals_packet_path_on_shared_captures(shared_captures: list[Path]) -> None:
    # One test for all of them: they skip together when ../shared is missing.
    for path in shared_captures:
        try:
            _assert_fold_equals_reference(_packets(path))
        except AssertionError as e:
            raise AssertionError(f"{path.relative_to(shared_path())}: {e}") from e


def test_fold_equals_packet_path_on_a_generated_capture(tmp_path: Path) -> None:
    _assert_fold_equals_reference(_packets(make_capture(tmp_path / "gen.pcap", 20_000)))
