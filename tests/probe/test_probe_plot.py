"""--plot: the path drawn from lab-recorded probe results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from rstscope.errors import OutputError
from rstscope.probe.model import result_from_dict

pytest.importorskip("matplotlib")
from rstscope.probe.path_figure import plot_path  # noqa: E402

DATA = Path(__file__).parent / "data"


def _result(name: str):  # type: ignore[no-untyped-def]
    return result_from_dict(json.loads((DATA / f"{name}.probe.json").read_text()))


def test_svg_marks_the_resetting_hop(tmp_path: Path) -> None:
    out = plot_path(_result("dpi-rtr"), tmp_path / "p.svg")
    svg = out.read_text()
    assert "reset: on-path firewall (hop 2)" in svg
    assert "RST ttl 63" in svg and "198.51.100.2" in svg


def test_svg_shades_a_silent_drop(tmp_path: Path) -> None:
    svg = plot_path(_result("fw-drop"), tmp_path / "d.svg").read_text()
    assert "silent after hop 1" in svg and "reset:" not in svg


def test_png_is_written(tmp_path: Path) -> None:
    out = plot_path(_result("l4lb"), tmp_path / "p.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_unwritable_plot_is_an_output_error(tmp_path: Path) -> None:
    with pytest.raises(OutputError):
        plot_path(_result("l4lb"), tmp_path / "missing-dir" / "p.png")
