"""Content identity: any changed byte changes it, names do not."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from rstscope.errors import InputMissingError
from rstscope.scale.identity import content_hash, input_id


def test_hash_follows_bytes_not_names(samples: list[Path], tmp_path: Path) -> None:
    a = tmp_path / "a.pcap"
    shutil.copy(samples[0], a)
    renamed = tmp_path / "sub" / "renamed.pcap"
    renamed.parent.mkdir()
    shutil.copy(a, renamed)
    assert content_hash([a]) == content_hash([renamed])
    # One byte in the middle, same size (an in-place edit a sampled hash would miss).
    data = bytearray(a.read_bytes())
    data[len(data) // 2] ^= 0x01
    b = tmp_path / "b.pcap"
    b.write_bytes(bytes(data))
    assert b.stat().st_size == a.stat().st_size
    assert content_hash([b]) != content_hash([a])


def test_group_hash_depends_on_order_and_boundaries(samples: list[Path], tmp_path: Path) -> None:
    x, y = samples[0], samples[1]
    assert content_hash([x, y]) != content_hash([y, x])
    # Moving the boundary between two files keeps the concatenation but not the input.
    joined = x.read_bytes() + y.read_bytes()
    p1, p2 = tmp_path / "p1", tmp_path / "p2"
    p1.write_bytes(joined[:10])
    p2.write_bytes(joined[10:])
    assert content_hash([p1, p2]) != content_hash([x, y])


def test_hash_is_sha256_of_the_bytes(samples: list[Path]) -> None:
    # Independent recomputation of the documented construction.
    data = samples[0].read_bytes()
    inner = hashlib.sha256(data).digest()
    outer = hashlib.sha256(b"rstscope-input-v1")
    outer.update(len(data).to_bytes(8, "little") + inner)
    assert content_hash([samples[0]]) == outer.hexdigest()
    assert input_id(outer.hexdigest()) == outer.hexdigest()[:16]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputMissingError):
        content_hash([tmp_path / "gone.pcap"])
