"""``rstscope report`` through click's runner (the lead registers it in the main CLI)."""

from __future__ import annotations

import os

from click.testing import CliRunner

from rstscope.errors import InputMissingError, UsageError
from rstscope.report.cli import report
from tests.report.pagecheck import offline_problems, parse


def test_report_command_writes_one_file(report_capture, tmp_path):
    out = tmp_path / "r.html"
    res = CliRunner().invoke(report, [str(report_capture.path), "-o", str(out), "--max-sections",
                                      "1", "--image-format", "svg"])
    assert res.exit_code == 0, res.output
    assert res.output.strip() == str(out)
    html = out.read_text()
    assert offline_problems(html) == []
    assert len(parse(html).all("section", "reset")) == 1
    assert "data:image/svg+xml;base64," in html


def test_report_max_timelines(report_capture, tmp_path):
    out = tmp_path / "r.html"
    res = CliRunner().invoke(report, [str(report_capture.path), "-o", str(out),
                                      "--max-timelines", "1"])
    assert res.exit_code == 0, res.output
    page = parse(out.read_text())
    assert len(page.all("figure", "timeline")) == 1 and len(page.all("p", "timeline-capped")) == 1
    res = CliRunner().invoke(report, [str(report_capture.path), "-o", str(out),
                                      "--max-timelines", "-1"])
    assert res.exit_code == 2


def test_report_default_name(report_capture, tmp_path):
    cwd = os.getcwd()
    try:
        os.chdir(tmp_path)
        res = CliRunner().invoke(report, [str(report_capture.path), "--max-sections", "0"])
    finally:
        os.chdir(cwd)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "mix-report.html").is_file()


def test_report_errors(report_capture, tmp_path):
    # --keylog implies --enrich now (as in analyze); a missing key log is a usage error.
    res = CliRunner().invoke(report, [str(report_capture.path), "--keylog", "k.log"])
    assert res.exit_code == 2 and "k.log" in res.output
    # --flow N narrows the report (issue 14); a flow that is not there is a usage error
    # that names the flows there are.
    res = CliRunner().invoke(report, [str(report_capture.path), "--flow", "1",
                                      "-o", str(tmp_path / "one.html")])
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(report, [str(report_capture.path), "--flow", "99999",
                                      "-o", str(tmp_path / "none.html")])
    assert isinstance(res.exception, UsageError) and res.exception.exit_code == 2
    assert "no flow 99999" in str(res.exception) and "flows: 1" in str(res.exception)
    res = CliRunner().invoke(report, [str(tmp_path / "nope.pcap"), "-o", str(tmp_path / "r.html")])
    assert isinstance(res.exception, InputMissingError) and res.exception.exit_code == 66
    res = CliRunner().invoke(report, [])  # no FILES and no -r: rstscope's usage error
    assert isinstance(res.exception, UsageError) and res.exception.exit_code == 2
