"""Calibration against the lab corpus's held-out part (issue 13, section 5).

The figures come from ``tests/calibration/verdicts-<part>.jsonl``, written by
``python scripts/calibrate.py run CORPUS_ROOT``: one row per labelled RST with the
lab's truth (by provenance) and the verdict.  The held-out part was never tuned
on.  With ``RSTSCOPE_CORPUS`` pointing at a built corpus, the committed rows are
also checked against what the classifier says today.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import calibrate  # noqa: E402

HELDOUT = calibrate.load("heldout")


def test_calibration_table_in_the_docs_is_current() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "calibrate.py"), "doc",
                           "--check"])
    assert proc.returncode == 0, "docs/verdicts.md is stale: run python scripts/calibrate.py doc"


def _heldout() -> list[dict]:
    if not HELDOUT:
        pytest.skip("no held-out calibration run committed")
    return HELDOUT


def test_heldout_part_is_large_enough() -> None:
    assert len(_heldout()) >= 300


def test_heldout_no_wrong_verdict_at_high_confidence() -> None:
    wrong = [r for r in _heldout() if r["origin"] != r["truth"] and r["confidence"] >= 0.8]
    assert not wrong, wrong[:5]


def test_heldout_every_populated_bin_is_at_least_its_lower_edge() -> None:
    assert calibrate.bins_failing(calibrate.figures(_heldout())) == []


@pytest.mark.xfail(strict=True, reason=(
    "issue 13's bar is NOT met: held-out origin accuracy is 85.7 % with the twin seed 207 "
    "(88.3 % on seeds 201-206 alone, 2026-12-07; 85.4 % on 2026-12-06).  The misses are cases the wire does not separate (a REJECT vs a closed "
    "port with no baseline of the server's anywhere in the capture, a load balancer vs a "
    "firewall expiry at the same place on the path, a proxy whose backend failed "
    "mid-response vs a server ending a response, a balancer's timeout vs a client's read "
    "timeout seen from the server); the truth is the first alternative in every one, at "
    "capped confidence.  strict: this flips to a failure when the bar is met."))
def test_heldout_origin_accuracy() -> None:
    fig = calibrate.figures(_heldout())
    assert fig["accuracy"] >= 0.95, f"held-out origin accuracy {fig['accuracy']:.3f}"


#: The seeds of the held-out part before the twin seed (207) was added.
FIRST_HELDOUT_SEEDS = ("s201-", "s202-", "s203-", "s204-", "s205-", "s206-")


def test_heldout_origin_accuracy_does_not_regress() -> None:
    # The figures reached: a change to the classifier must not make them worse.  Raise,
    # never lower.  The first six seeds keep their own floor (88.3 % on 2026-12-07,
    # 85.4 % when the held-out part was first run; a rebuild of them on 2026-12-07
    # scored 88.3 % again).  The twin seed 207 draws the hard middlebox scenarios beside
    # their everyday look-alikes, so the whole part scores lower (85.7 %): that is a
    # harder part, not a worse classifier, and it has its own floor.
    rows = _heldout()
    first = [r for r in rows if str(r["case"]).startswith(FIRST_HELDOUT_SEEDS)]
    assert len(first) >= 600
    fig_first = calibrate.figures(first)
    assert fig_first["accuracy"] >= 0.88, f"seeds 201-206: {fig_first['accuracy']:.3f}"
    fig = calibrate.figures(rows)
    assert fig["accuracy"] >= 0.857, f"held-out origin accuracy {fig['accuracy']:.3f}"


def test_heldout_truth_is_origin_or_first_alternative() -> None:
    fig = calibrate.figures(_heldout())
    assert fig["top2"] >= 0.99, f"held-out truth in top 2: {fig['top2']:.3f}"


@pytest.mark.parametrize("part", ["dev", "heldout"])
def test_committed_verdicts_are_the_classifiers(part: str) -> None:
    root = os.environ.get("RSTSCOPE_CORPUS")
    if not root or not (Path(root) / part).is_dir():
        pytest.skip("set RSTSCOPE_CORPUS to a built corpus to re-check the committed verdicts")
    committed = calibrate.load(part)
    assert committed, f"no committed verdicts for {part}"
    assert calibrate.run(Path(root), part) == committed, (
        "the classifier changed: rerun python scripts/calibrate.py run")
