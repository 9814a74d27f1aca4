"""The HTML report: structure, self-containment, size caps, errors (static checks).

Frame numbers of the resets are checked against tshark, not rstscope.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from html import escape as html_escape

import pytest

from rstscope.api import analyze
from rstscope.errors import InputMissingError, OutputError, UsageError
from rstscope.report import ReportLimits, build_report
from rstscope.report.files import write_report
from tests.conftest import SAMPLES
from tests.report.pagecheck import offline_problems, parse


def _tshark_rst_frames(path):
    if shutil.which("tshark") is None:
        pytest.skip("tshark is not installed")
    out = subprocess.run(["tshark", "-r", str(path), "-Y", "tcp.flags.reset == 1", "-T", "fields",
                          "-e", "frame.number"], capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.split()]


@pytest.fixture(scope="module")
def default_html(report_analysis):
    return build_report([report_analysis])


def test_report_structure(default_html, report_capture):
    html = default_html
    assert html.startswith("<!DOCTYPE html>")
    assert offline_problems(html) == []
    page = parse(html)
    ids = page.ids
    assert {"report-header", "toc", "capture-1", "summary-1", "resets-1", "reset-1-1",
            "reset-1-2"} <= ids
    # Every in-page link resolves.
    for a in page.all("a"):
        assert a["href"][1:] in ids, a
    # The reset table lists the RSTs tshark sees, in frame order.
    frames = _tshark_rst_frames(report_capture.path)
    assert len(frames) == 2
    rows = html.split('id="resets-1"')[1].split("</table>")[0].split("<tr>")[2:]
    assert [int(r.split("<td")[2].split(">")[1].split("<")[0]) for r in rows] == frames
    # One section per reset, each with its own timeline (two different flows),
    # evidence table; figures are inline data: images.
    assert len(page.all("section", "reset")) == 2
    assert len(page.all("figure", "timeline")) == 2
    assert len(page.all("table", "evidence")) + html.count("No evidence recorded") == 2
    imgs = page.all("img")
    assert len(imgs) == 4  # overview, gap histogram, two timelines
    assert all(i["src"].startswith("data:image/png;base64,") for i in imgs)
    assert len(html) < 2_000_000


def test_section_cap_and_note(report_analysis):
    html = build_report([report_analysis], limits=ReportLimits(max_sections=1))
    page = parse(html)
    assert len(page.all("section", "reset")) == 1
    assert "omitted-1" in page.ids
    assert "1 more resets are in the table above" in html
    # The table still lists both; only the first row links to a section.
    assert html.count('href="#reset-1-') == 1


def test_timeline_cap_says_so_and_keeps_the_sections(report_analysis):
    """Past --max-timelines a section keeps its text and says how to draw its timeline;
    the page says once, above the sections, that not every flow was drawn."""
    html = build_report([report_analysis], limits=ReportLimits(max_timelines=1))
    page = parse(html)
    assert len(page.all("section", "reset")) == 2
    assert len(page.all("figure", "timeline")) == 1
    assert "timelines-capped-1" in page.ids
    capped = page.all("p", "timeline-capped")
    assert len(capped) == 1
    second = html.split('id="reset-1-2"')[1].split("</section>")[0]
    flow = second.split("flow ")[1].split(" ")[0]
    assert "Timeline not drawn" in second and f"--flow {flow}</code>" in second
    note = html.split('id="timelines-capped-1"')[1].split("</p>")[0]
    assert "for the first flow of the 2 " in note and "--max-timelines" in note
    # The commands name the capture itself (shell-quoted, HTML-escaped), ready to copy.
    cmd = f"rstscope plot {html_escape(shlex.quote(str(report_analysis.file)))} --flow"
    assert f"{cmd} {flow}</code>" in second and f"{cmd} ID</code>" in note
    assert "plot FILE" not in html
    assert offline_problems(html) == []
    # None drawn: no figure and no packets read again, every section still there.
    html = build_report([report_analysis], limits=ReportLimits(max_timelines=0))
    page = parse(html)
    assert len(page.all("figure", "timeline")) == 0 and len(page.all("p", "timeline-capped")) == 2
    assert "none of the flows" in html and len(page.all("section", "reset")) == 2
    assert "the report draws none per capture" in html
    # Under the cap: no note at all.
    html = build_report([report_analysis], limits=ReportLimits(max_timelines=2))
    assert "timelines-capped" not in html and "timeline-capped" not in html
    with pytest.raises(UsageError):
        ReportLimits(max_timelines=-1)


def test_report_size_cap_drops_figures_not_content(report_analysis):
    html = build_report([report_analysis], limits=ReportLimits(max_report_bytes=5_000))
    page = parse(html)
    assert len(page.all("img")) == 0
    assert html.count("report size cap is reached") == 4
    assert len(page.all("section", "reset")) == 2  # text sections are kept
    assert len(html) < 60_000
    html = build_report([report_analysis], limits=ReportLimits(max_image_bytes=1_000, max_sections=0))
    assert len(parse(html).all("img")) == 0
    assert "larger than the per-image cap" in html


def test_svg_images(report_analysis):
    html = build_report([report_analysis], limits=ReportLimits(image_format="svg", max_sections=1))
    imgs = parse(html).all("img")
    assert imgs and all(i["src"].startswith("data:image/svg+xml;base64,") for i in imgs)
    assert offline_problems(html) == []
    with pytest.raises(UsageError):
        ReportLimits(image_format="gif")


def test_two_captures_in_one_report(report_analysis, tmp_path, report_capture):
    out = write_report([report_capture.path, report_capture.path], tmp_path / "r.html",
                       limits=ReportLimits(max_sections=1))
    page = parse(out.read_text())
    assert {"capture-1", "capture-2", "reset-2-1"} <= page.ids
    assert len(page.all("a")) >= 4  # two TOC entries + one linked row per capture


def test_write_report_errors(report_capture, tmp_path):
    with pytest.raises(InputMissingError):
        write_report([tmp_path / "missing.pcap"], tmp_path / "r.html")
    with pytest.raises(OutputError):
        write_report([report_capture.path], tmp_path / "no-such-dir" / "r.html")


def test_capture_without_resets(tmp_path):
    from tests.samplemix import single_capture

    ex = single_capture("graceful-close")  # one gracefully closed flow
    html = build_report([analyze(ex.path)])
    assert "No TCP resets in this capture." in html
    assert offline_problems(html) == []


def test_sections_say_what_is_sure_and_the_alternatives():
    """Each section says what is certain apart from the guess, the other origins with
    their reasons and the other causes; the table names the alternatives (issue 14)."""
    html = build_report([analyze(SAMPLES / "l4lb-idle-expiry.client.pcap"),
                         analyze(SAMPLES / "proxy-buffering.client-any.pcap")])
    lb = html.split('id="reset-1-1"')[1].split("</section>")[0]
    assert '<p class="sure">sure: a box on the path made it, not the server</p>' in lb
    others = lb.split('<ul class="alternatives">')[1].split("</ul>")[0]
    assert others.startswith("<li>firewall: ") and others.count("<li>") == 1
    table = html.split('id="resets-1"')[1].split("</table>")[0]
    assert "<th>or</th>" in table and table.endswith("<td>firewall</td></tr></tbody>")
    buf = html.split('id="reset-2-1"')[1].split("</section>")[0]
    assert ('<p class="sure">sure: it came from the client&#x27;s side (its TTL and IP ID)</p>'
            in buf)
    assert '<h4>Other possible causes</h4><ul class="cause-alternatives"><li>idle-timeout</li>' \
        in buf.replace("\n", "")
    assert "<td>idle-timeout</td></tr>" in html.split('id="resets-2"')[1].split("</table>")[0]
    assert offline_problems(html) == []
