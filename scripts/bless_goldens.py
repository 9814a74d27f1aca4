"""Regenerate the golden analyzer outputs of the committed samples.

    python scripts/bless_goldens.py          # rewrite samples/golden/*.json
    python scripts/bless_goldens.py --check  # exit 1 and list the captures whose output changed

Run it after a deliberate change to the classifier, and review the diff: every
changed verdict is a behaviour change that the commit message should explain.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "samples"
GOLDEN = SAMPLES / "golden"

# The fields a golden pins down: the verdict and the key evidence numbers.  Free
# text that only rewords (cause, advice) is pinned too, so wording changes are reviewed.
RESET_FIELDS = ("frame", "direction", "flags", "origin", "sender", "sender_hops", "confidence",
                "cause", "conn_state", "seq_status", "triggered", "trigger_frame", "ttl",
                "expected_ttl", "hop_delta", "idle_gap_s", "silence_s", "timeout_candidates", "advice")
FLOW_FIELDS = ("flow_id", "orig_h", "orig_p", "resp_h", "resp_p", "conn_state", "history",
               "orientation", "vantage", "resets")


def _round(v: Any) -> Any:
    return round(v, 3) if isinstance(v, float) else v


def golden_of(capture: Path) -> dict[str, Any]:
    from rstscope.api import analyze

    doc = analyze(capture).to_document()
    return {
        "capture": capture.name,
        "summary": {k: doc["summary"][k] for k in ("packets", "flows", "resets",
                                                   "resets_by_origin", "vantage")},
        "flows": [{k: _round(f[k]) for k in FLOW_FIELDS} for f in doc["flows"]],
        "resets": [{k: _round(r[k]) for k in RESET_FIELDS} for r in doc["resets"]],
    }


def captures() -> list[Path]:
    return sorted(p for p in SAMPLES.glob("*.pcap") if p.with_suffix(".labels.json").exists())


def main() -> int:
    check = "--check" in sys.argv[1:]
    GOLDEN.mkdir(exist_ok=True)
    stale = []
    for cap in captures():
        text = json.dumps(golden_of(cap), indent=1, sort_keys=False) + "\n"
        target = GOLDEN / (cap.stem + ".json")
        if check:
            if not target.exists() or target.read_text() != text:
                stale.append(cap.name)
        else:
            target.write_text(text)
    for name in stale:
        print(f"golden output differs: {name}")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
