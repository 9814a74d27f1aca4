"""The report in a real browser: it renders, makes no network request, keeps its sections.

See ``browser.py`` for the method: headless Chromium inside an empty network
namespace, with a NetLog to list every request the page makes, and a
positive control proving such requests are seen.
"""

from __future__ import annotations

from PIL import Image

from rstscope.report import build_report
from tests.report.browser import open_page
from tests.report.pagecheck import parse
from tests.report.test_escaping import XSS, _Marked


def test_control_page_requests_are_detected(tmp_path):
    page = tmp_path / "control.html"
    page.write_text('<!DOCTYPE html><html><body><p>control</p>'
                    '<img src="http://192.0.2.1/x.png">'
                    '<link rel="stylesheet" href="https://198.51.100.7/s.css"></body></html>')
    run = open_page(page, tmp_path)
    assert "http://192.0.2.1/x.png" in run.page_requests
    assert "https://198.51.100.7/s.css" in run.page_requests


def test_report_renders_offline_with_all_sections(report_analysis, tmp_path):
    import dataclasses

    marked = _Marked(**{f.name: getattr(report_analysis, f.name)
                        for f in dataclasses.fields(report_analysis)})
    out = tmp_path / "report.html"
    out.write_text(build_report([marked]), encoding="utf-8")
    run = open_page(out, tmp_path)
    assert run.page_requests == []
    img = Image.open(run.screenshot)
    assert img.size == (1200, 2000)
    # Not a blank page: text, tables and figures give many distinct colours.
    colours = img.convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50
    dom = parse(run.dom)
    assert {"summary-1", "resets-1", "reset-1-1", "reset-1-2", "toc"} <= dom.ids
    assert len(dom.all("figure", "timeline")) == 2
    # The browser parsed the hostile strings as text: no script element exists,
    # and the text content holds the literal markup.
    assert not [t for t, _a in dom.tags if t == "script"]
    assert any(XSS in t for t in dom.text)
