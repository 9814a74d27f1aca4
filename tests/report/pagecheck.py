"""Static checks of a report page: structure, and nothing that could fetch from a network."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html.parser import HTMLParser

# Tags that load or run something; a self-contained report needs none of them.
FORBIDDEN_TAGS = {"script", "link", "iframe", "frame", "object", "embed", "base", "video",
                  "audio", "source", "track", "form", "applet", "portal"}
URL_ATTRS = {"src", "href", "srcset", "action", "poster", "data", "background", "xlink:href",
             "formaction", "ping", "manifest", "cite", "longdesc", "usemap"}


@dataclass
class Page(HTMLParser):
    tags: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    styles: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    _in_style: bool = False

    def __post_init__(self) -> None:
        HTMLParser.__init__(self, convert_charrefs=True)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, {k: v or "" for k, v in attrs}))
        self._in_style = tag == "style"

    def handle_endtag(self, tag):
        if tag == "style":
            self._in_style = False

    def handle_data(self, data):
        (self.styles if self._in_style else self.text).append(data)

    @property
    def ids(self) -> set[str]:
        return {a["id"] for _t, a in self.tags if "id" in a}

    def all(self, tag: str, cls: str | None = None) -> list[dict[str, str]]:
        return [a for t, a in self.tags
                if t == tag and (cls is None or cls in a.get("class", "").split())]


def parse(html: str) -> Page:
    p = Page()
    p.feed(html)
    p.close()
    return p


def offline_problems(html: str) -> list[str]:
    """Everything in the page that could make a browser fetch something."""
    page = parse(html)
    bad = [f"<{t}>" for t, _a in page.tags if t in FORBIDDEN_TAGS]
    for t, attrs in page.tags:
        for k, v in attrs.items():
            if k.startswith("on"):
                bad.append(f"<{t} {k}=...> event handler")
            if k in URL_ATTRS:
                ok = v.startswith("#") if k == "href" else v.startswith("data:image/")
                if not ok:
                    bad.append(f"<{t} {k}={v[:60]!r}>")
            if k == "style" and re.search(r"url\s*\(|@import", v, re.I):
                bad.append(f"<{t} style> with url()")
    css = "\n".join(page.styles)
    if re.search(r"url\s*\(|@import|@font-face", css, re.I):
        bad.append("CSS url()/@import/@font-face")
    csp = [a for t, a in page.tags if t == "meta" and a.get("http-equiv") == "Content-Security-Policy"]
    if not csp or "default-src 'none'" not in csp[0].get("content", ""):
        bad.append("no default-src 'none' Content-Security-Policy")
    return bad
