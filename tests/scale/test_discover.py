"""Input discovery and ring-buffer grouping, on files written by real tcpdump and editcap."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from rstscope.errors import InputMissingError
from rstscope.scale.discover import discover, expand_paths, group_siblings


def _touch(d: Path, *names: str) -> list[Path]:
    out = []
    for n in names:
        p = d / n
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"")
        out.append(p)
    return out


def test_tcpdump_C_rotation_is_one_input_in_order(generated: Path, tmp_path: Path, h) -> None:
    # tcpdump -C 1 rotates every 1,000,000 bytes: x.pcap, x.pcap1, x.pcap2, ...
    h.run([*h.tcpdump_cmd(), "-r", str(generated), "-w", str(tmp_path / "x.pcap"), "-C", "1"])
    files = sorted(tmp_path.iterdir())
    assert len(files) >= 11  # enough to make x.pcap10 sort lexically before x.pcap2
    inputs = discover([tmp_path])
    assert len(inputs) == 1
    inp = inputs[0]
    assert inp.scheme == "tcpdump"
    names = [Path(f).name for f in inp.files]
    assert names == ["x.pcap"] + [f"x.pcap{i}" for i in range(1, len(files))]


def test_tcpdump_W_ring_that_wrapped_starts_at_oldest_file(generated: Path,
                                                           tmp_path: Path, h) -> None:
    # -W 3 keeps 3 files x.pcap0..2 and overwrites them in a cycle; ~50 MB at 1 MB
    # per file wraps many times, so file 0 is unlikely to hold the oldest packets.
    h.run([*h.tcpdump_cmd(), "-r", str(generated), "-w", str(tmp_path / "r.pcap"), "-C", "1",
         "-W", "3"])
    capinfos = h.need_tool("capinfos")
    firsts = {}
    for f in sorted(tmp_path.iterdir()):
        out = h.run([capinfos, "-a", "-T", "-r", "-S", str(f)]).stdout.strip().split("\t")
        firsts[f.name] = float(out[-1])
    expected = sorted(firsts, key=lambda n: firsts[n])
    # The cyclic order of a ring is 0,1,2; the oldest file starts it.
    start = expected[0]
    cyc = ["r.pcap0", "r.pcap1", "r.pcap2"]
    i = cyc.index(start)
    assert expected == cyc[i:] + cyc[:i]
    (inp,) = discover([tmp_path])
    assert [Path(f).name for f in inp.files] == expected


def test_editcap_split_uses_dumpcap_names_and_is_grouped(samples: list[Path],
                                                         tmp_path: Path, h) -> None:
    editcap = h.need_tool("editcap")
    src = max(samples, key=lambda p: p.stat().st_size)
    h.run([editcap, "-c", "3", str(src), str(tmp_path / "part.pcap")])
    made = sorted(p.name for p in tmp_path.iterdir())
    assert len(made) >= 4 and made[0].startswith("part_00000_")
    (inp,) = discover([tmp_path])
    assert inp.scheme == "dumpcap"
    assert [Path(f).name for f in inp.files] == made


def test_naming_rules(tmp_path: Path) -> None:
    files = _touch(
        tmp_path,
        "a/x.pcap2", "a/x.pcap", "a/x.pcap10", "a/x.pcap1",  # tcpdump -C
        "a/y.pcap",  # a different stem
        "b/x.pcap1",  # same name, other directory: another capture
        "a/z.pcapng.gz", "a/z.pcapng1.gz",  # gzipped tcpdump siblings
        "a/cap_00002_20240101120002.pcapng", "a/cap_00001_20240101120000.pcapng",
        "a/cap_00001_20240101120000.pcap",  # other extension: other dumpcap set
        "a/notes.txt", "a/.hidden.pcap",
    )
    found = expand_paths([tmp_path])
    assert {p.name for p in found} == {
        f.name for f in files if f.name not in ("notes.txt", ".hidden.pcap")}
    groups = {tuple(Path(f).relative_to(tmp_path).as_posix() for f in g.files)
              for g in group_siblings(found)}
    assert groups == {
        ("a/x.pcap", "a/x.pcap1", "a/x.pcap2", "a/x.pcap10"),
        ("a/y.pcap",),
        ("b/x.pcap1",),
        ("a/z.pcapng.gz", "a/z.pcapng1.gz"),
        ("a/cap_00001_20240101120000.pcapng", "a/cap_00002_20240101120002.pcapng"),
        ("a/cap_00001_20240101120000.pcap",),
    }
    assert all(len(g.files) == 1 for g in group_siblings(found, group=False))


def test_globs_files_and_errors(samples: list[Path], tmp_path: Path) -> None:
    for s in samples[:3]:
        shutil.copy(s, tmp_path / s.name)
    with gzip.open(tmp_path / "extra.pcap.gz", "wb") as fh:
        fh.write(samples[0].read_bytes())
    odd = tmp_path / "capture.bin"  # a named file is taken whatever its extension
    odd.write_bytes(samples[0].read_bytes())
    got = expand_paths([str(tmp_path / "*.pcap*"), odd, str(tmp_path / "*.pcap")])
    names = [p.name for p in got]
    assert "extra.pcap.gz" in names and "capture.bin" in names
    assert len(names) == len(set(names)) == 5
    with pytest.raises(InputMissingError):
        expand_paths([tmp_path / "nope.pcap"])
    with pytest.raises(InputMissingError):
        expand_paths([str(tmp_path / "*.nothing")])
