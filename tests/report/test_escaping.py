"""Every string from a capture or the analysis is HTML-escaped in the report.

Three sources of hostile text: a capture *file name* with markup, a real
ClientHello whose SNI is ``<script>alert(1)</script>`` (written by our own
client to a real listener on 127.0.0.1 and captured by tcpdump, both in a
private user + network namespace: no root), and the
analysis' own strings (cause, advice, evidence, alternatives, timeout names)
replaced by markup in otherwise real records.
"""

from __future__ import annotations

import dataclasses
import shutil

from rstscope.api import Analysis, analyze
from rstscope.core.records import Evidence
from rstscope.report import ReportLimits, build_report
from tests.loopback import hello_then_server_abort
from tests.report.pagecheck import offline_problems, parse

XSS = "<script>alert(1)</script>"
XSS_ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
IMG = "<img src=x onerror=alert(2)>"
IMG_ESCAPED = "&lt;img src=x onerror=alert(2)&gt;"


def _no_live_markup(html: str) -> None:
    page = parse(html)
    assert not [t for t, _a in page.tags if t == "script"]
    assert not [a for t, a in page.tags if t == "img" and not a.get("src", "").startswith("data:")]
    assert offline_problems(html) == []


def test_file_name_with_markup(report_capture, tmp_path):
    hostile = tmp_path / f"{IMG}.pcap"
    shutil.copy(report_capture.path, hostile)
    html = build_report([analyze(hostile)], title=f"report {XSS}")
    assert IMG not in html and XSS not in html
    assert IMG_ESCAPED in html and XSS_ESCAPED in html
    _no_live_markup(html)


def test_sni_with_markup_from_a_real_client_hello(tmp_path, tshark):
    ex = hello_then_server_abort(tmp_path / "sni.pcap", XSS.encode())
    a = analyze(ex.path)
    assert len(a.reset_records()) == 1  # the server's abort right after the ClientHello
    html = build_report([a])
    assert XSS not in html
    _no_live_markup(html)
    # With TLS context (tshark dissects the ClientHello) the SNI is shown: in the
    # TLS table and in the refined cause/advice, always as text.
    html = build_report([a], limits=ReportLimits(tls=True, max_sections=1))
    assert "TLS context unavailable" not in html
    assert XSS not in html
    tls_table = html.split('<table class="tls">')[1].split("</table>")[0]
    assert f"<td>sni</td><td>{XSS_ESCAPED}</td>" in tls_table
    assert html.count(XSS_ESCAPED) >= 2
    _no_live_markup(html)


class _Marked(Analysis):
    """A real analysis whose text fields are replaced by markup (the data under test)."""

    def typed_resets(self):
        # The records the report reads (plot and report take typed records).
        return [dataclasses.replace(
            r, cause=f"cause {XSS}", advice=(f"advice {IMG}",),
            alternatives=(("server", f"why {XSS}"),), cause_alternatives=(f"other {IMG}",),
            timeout_candidates=(f"60.0 s: {IMG}",),
            evidence=(Evidence(f"ev {IMG}", XSS, '"quoted"', 1.0),), flags='"><b>R')
            for r in super().typed_resets()]


def test_analysis_strings_with_markup(report_analysis):
    marked = _Marked(**{f.name: getattr(report_analysis, f.name)
                        for f in dataclasses.fields(report_analysis)})
    html = build_report([marked])
    assert XSS not in html and IMG not in html and '"><b>R' not in html
    n = len(marked.reset_records())
    # cause in the table and in each section; alternatives and evidence value per section.
    assert html.count(f"cause {XSS_ESCAPED}") == 2 * n
    assert html.count(f"advice {IMG_ESCAPED}") == n
    assert html.count(f"why {XSS_ESCAPED}") == n
    assert html.count(f"ev {IMG_ESCAPED}") == n
    assert html.count(f"other {IMG_ESCAPED}") == 2 * n  # the table's "or" column and each section
    assert html.count("&quot;quoted&quot;") == n
    assert html.count("&quot;&gt;&lt;b&gt;R") >= 2 * n  # table cell and section facts
    _no_live_markup(html)
