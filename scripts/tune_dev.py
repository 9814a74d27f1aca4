"""Coordinate search over the scoring table on the corpus's DEVELOPMENT part only.

    python scripts/tune_dev.py CORPUS_ROOT [--seeds 101 102] [--group kind] [--rounds 2]
    python scripts/tune_dev.py SCRATCH_DIR --committed ...   # the committed dev captures

Prints, per table entry of the chosen group(s), the value that maximises dev origin
accuracy without any wrong verdict at confidence >= 0.8, and the figures before and
after.  It never reads the held-out part (the rule in rstscope/lab/calibration/
seeds.json); it changes nothing: copy the values you accept into
rstscope/core/scoring.py, then rerun scripts/calibrate.py.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

import calibrate  # noqa: E402

from rstscope.api import analyze, make_config  # noqa: E402
from rstscope.core.scoring import Scoring  # noqa: E402

STEPS = (-2.0, -1.0, -0.5, -0.25, 0.25, 0.5, 1.0, 2.0)


def evaluate(items: list[Any], scoring: Scoring) -> tuple[float, int, float]:
    cfg = replace(make_config(), scoring=scoring)
    right = wrong_hi = top2 = n = 0
    for item in items:
        recs = {r["frame"]: r for r in analyze(item.pcap, config=cfg).to_document()["resets"]}
        for lab in item.labels:
            r = recs[lab["frame"]]
            n += 1
            ok = r["origin"] == lab["origin"]
            right += ok
            alt = r["alternatives"][0][0] if r["alternatives"] else None
            top2 += lab["origin"] in (r["origin"], alt)
            wrong_hi += (not ok) and r["confidence"] >= 0.8
    return right / n, wrong_hi, top2 / n


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("root", type=Path, help="a built corpus, or with --committed a scratch "
                    "directory to unpack the committed dev captures into (no root needed)")
    ap.add_argument("--committed", action="store_true")
    ap.add_argument("--seeds", type=int, nargs="*", default=None)
    ap.add_argument("--group", action="append", default=None,
                    choices=("weights", "kind", "thresholds", "caps"))
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--freeze", nargs="*", default=[], metavar="NAME",
                    help="entries never to move, e.g. prior_endpoint: the corpus's mix of "
                    "scenarios is not real traffic's, so a prior fitted to it means nothing")
    args = ap.parse_args()
    if args.committed:
        from rstscope.lab.corpus import iter_committed

        items = [it for it in iter_committed(args.root) if it.labels
                 and (args.seeds is None or int(it.case[1:4]) in args.seeds)]
    else:
        items = [it for it in calibrate._items(args.root, "dev", args.seeds) if it.labels]
    best = Scoring()
    base = evaluate(items, best)
    print(f"start: accuracy {base[0]:.3f}, wrong>=0.8 {base[1]}, top2 {base[2]:.3f}")
    score = base
    for _ in range(args.rounds):
        for grp in args.group or ["kind"]:
            part = getattr(best, grp)
            for f in fields(part):
                if f.name in args.freeze:
                    continue
                cur = float(getattr(part, f.name))
                for step in STEPS:
                    if f.name == "prior_endpoint" and not 0 < cur + step < 1:
                        continue  # a probability, not log-odds
                    trial_part = replace(getattr(best, grp), **{f.name: cur + step})
                    trial = replace(best, **{grp: trial_part})
                    got = evaluate(items, trial)
                    if got[1] == 0 and (got[0], got[2]) > (score[0], score[2]):
                        best, score = trial, got
                        print(f"  {grp}.{f.name}: {cur:g} -> {cur + step:g}: accuracy "
                              f"{got[0]:.3f}, top2 {got[2]:.3f}", flush=True)
                cur = float(getattr(getattr(best, grp), f.name))
    print(f"end: accuracy {score[0]:.3f}, wrong>=0.8 {score[1]}, top2 {score[2]:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
