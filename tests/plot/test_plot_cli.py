"""``rstscope plot`` through click's runner (the lead registers it in the main CLI)."""

from __future__ import annotations

import os

import pytest
from click.testing import CliRunner

from rstscope.errors import UsageError
from rstscope.plot.cli import default_output, plot

PNG = b"\x89PNG\r\n\x1a\n"


def test_default_output_name():
    assert str(default_output("dir/customer.pcapng.gz", "flow3", "png")) == "customer-flow3.png"
    assert str(default_output("x.cap", "report", "html")) == "x-report.html"


def test_plot_flow_to_png(abort_analysis, abort_capture, tmp_path):
    out = tmp_path / "t.png"
    fid = abort_analysis.flow_records()[0]["flow_id"]
    res = CliRunner().invoke(plot, [str(abort_capture.path), "--flow", str(fid), "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert out.read_bytes()[:8] == PNG and out.stat().st_size > 5_000


def test_plot_reset_to_svg_and_default_name(abort_capture, tmp_path):
    runner = CliRunner()
    out = tmp_path / "r.svg"
    res = runner.invoke(plot, [str(abort_capture.path), "--reset", "2", "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert b"<svg" in out.read_bytes()[:500]
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        res = runner.invoke(plot, [str(abort_capture.path), "--reset", "1"])
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.output
    name = res.output.strip()
    assert name.startswith("mix-flow") and (tmp_path / name).read_bytes()[:8] == PNG


def test_plot_by_frame_number(abort_analysis, abort_capture, tmp_path):
    frame = abort_analysis.reset_records()[0]["frame"]
    res = CliRunner().invoke(plot, [str(abort_capture.path), "--frame", str(frame), "-o",
                                    str(tmp_path / "f.png")])
    assert res.exit_code == 0, res.output


@pytest.mark.parametrize("args, message", [
    # Two resets: nothing to choose by default, so the message says how to choose.
    ([], "has 2 resets: choose one with --reset N (1..2)"),
    (["--flow", "1", "--reset", "1"], "only one of"),
    (["--reset", "99"], "no reset 99"),
    (["--flow", "424242"], "no flow 424242"),
    (["--frame", "1"], "frame 1 is not a RST"),
    (["--flow", "1", "-o", "x.gif"], "must end in .png or .svg"),
])
def test_plot_usage_errors(abort_capture, args, message):
    # Each case is a distinct usage mistake; all exit 2 via the main CLI boundary.
    res = CliRunner().invoke(plot, [str(abort_capture.path), *args])
    assert isinstance(res.exception, UsageError), res.output
    assert message in str(res.exception)
    assert res.exception.exit_code == 2


def test_plot_rejects_stdin():
    res = CliRunner().invoke(plot, ["-", "--flow", "1"])
    assert isinstance(res.exception, UsageError)
    assert "needs a capture file" in str(res.exception)
