"""Regenerate the tables of docs/verdicts.md from the classifier itself.

    python scripts/gen_verdicts_doc.py            # rewrite the generated sections
    python scripts/gen_verdicts_doc.py --check    # exit 1 if any is out of date

The evidence table comes from the rules' declarations (rstscope.core.classify:
RULES, KIND_RULES) and the weight table from rstscope.core.scoring, so the page
cannot drift from the code.  Each generated section sits between
``<!-- begin NAME -->`` and ``<!-- end NAME -->``; the prose around it is
hand-written.  (The calibration section has its own script, calibrate.py.)
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

DOC = Path(__file__).resolve().parents[1] / "docs" / "verdicts.md"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ").strip()


def evidence_table() -> str:
    from rstscope.core.classify import KIND_RULES, RULES

    out = ["| name | rule | what it measures | reads as |", "|---|---|---|---|"]
    for rule in (*RULES, *KIND_RULES):
        for e in rule.evidence:
            out.append(f"| `{e.name}` | `{rule.name}` | {_cell(e.measures)} | "
                       f"{_cell(e.reads_as)} |")
    out.append("")
    out.append("| rule | reads tags | sets tags |")
    out.append("|---|---|---|")
    for rule in (*RULES, *KIND_RULES):
        reads = ", ".join(f"`{t}`" for t in sorted(rule.reads)) or "–"
        sets = ", ".join(f"`{t}`" for t in sorted(rule.sets)) or "–"
        out.append(f"| `{rule.name}` | {reads} | {sets} |")
    return "\n".join(out)


def scoring_table() -> str:
    from rstscope.core.scoring import table_rows

    out = ["| group | name | value | why |", "|---|---|---:|---|"]
    for grp, name, value, why in table_rows():
        out.append(f"| {grp} | `{name}` | {value:g} | {_cell(why)} |")
    return "\n".join(out)


SECTIONS = {"evidence": evidence_table, "scoring": scoring_table}


def _keep_marks(body: str) -> Callable[[re.Match[str]], str]:
    """A replacement that keeps the begin/end marks around ``body`` (a function, not a
    template: ``body`` may hold backslashes)."""
    def sub(m: re.Match[str]) -> str:
        return m.group(1) + body + "\n" + m.group(2)
    return sub


def render(text: str, sections: dict[str, object] | None = None) -> str:
    for name, make in (sections or SECTIONS).items():
        pat = re.compile(rf"(<!-- begin {name} -->\n)(?:.*?\n)?(<!-- end {name} -->)", re.S)
        if not pat.search(text):
            raise SystemExit(f"docs/verdicts.md has no '<!-- begin {name} -->' section")
        body = make() if callable(make) else str(make)
        text = pat.sub(_keep_marks(body), text)
    return text


def main() -> int:
    old = DOC.read_text("utf-8")
    new = render(old)
    if "--check" in sys.argv[1:]:
        return 0 if new == old else 1
    DOC.write_text(new, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
