"""Calibration of the verdicts against the lab corpus, and its table in docs/verdicts.md.

    python scripts/calibrate.py run CORPUS_ROOT [--part dev|heldout ...]
        analyze every capture of the part(s) (rstscope.lab.corpus layout) and write
        one compact row per labelled RST to tests/calibration/verdicts-<part>.jsonl
    python scripts/calibrate.py report [--part dev]
        print the figures of a part (accuracy, wrong at >= 0.8, truth in top 2, bins)
    python scripts/calibrate.py doc            # rewrite the calibration section
    python scripts/calibrate.py doc --check    # exit 1 if it is out of date
    python scripts/calibrate.py twins CORPUS_ROOT [--part dev] [--without FIELD ...]
    python scripts/calibrate.py twins SCRATCH_DIR --committed   # the committed dev captures
        group the labelled RSTs by their wire signature (scripts/wire_twins.py, read from
        the captures alone): per scenario the RSTs, the wire twins (a signature that
        holds several truths) and the ceiling any decision on the signature can reach;
        --groups lists the twin groups, --nearest what sets each miss apart from the
        nearest RST of another truth, --reference DIR the RSTs of unlabelled real
        captures that share a miss's signature, --doc [--check] the docs' section

THE RULE (rstscope/lab/calibration/seeds.json): tune only while looking at the
``dev`` part.  The ``heldout`` part is run once to report, never to tune.

Only the ``client`` and ``server`` captures count: ``client-any`` sees the client's
packets a second time and would count the same RST twice.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "calibration"
DOC = ROOT / "docs" / "verdicts.md"
ORIGINS = ("client", "server", "load-balancer", "firewall", "unknown")
BINS = ((0.0, 0.4), (0.4, 0.5), (0.5, 0.6), (0.6, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01))
#: Sweep variables the accuracy is broken down by.
BREAKDOWN = ("scenario", "ip_v", "hops_client", "hops_server", "fw_at", "lb", "ttl_fw", "ttl_lb",
             "timeout_pool", "timeout_collision")


def verdict_path(part: str) -> Path:
    return OUT / f"verdicts-{part}.jsonl"


def _items(root: Path, part: str, seeds: Sequence[int] | None) -> Iterable[Any]:
    from rstscope.lab.corpus import iter_part
    from rstscope.lab.corpus import seeds as part_seeds

    if seeds is None:
        yield from iter_part(root, part, vantages=("client", "server"))
        return
    unknown = set(seeds) - set(part_seeds(part))
    if unknown:
        raise SystemExit(f"seed(s) {sorted(unknown)} are not in the {part} part")
    # A slice of a part (while the rest is still building): same layout, fewer seeds.
    import rstscope.lab.corpus as corpus

    saved = corpus.seeds
    corpus.seeds = lambda _part: tuple(seeds)  # type: ignore[assignment]
    try:
        yield from iter_part(root, part, vantages=("client", "server"))
    finally:
        corpus.seeds = saved


def run(root: Path, part: str, seeds: Sequence[int] | None = None) -> list[dict[str, Any]]:
    from rstscope.api import analyze

    rows = []
    for item in _items(root, part, seeds):
        if not item.labels:
            continue
        recs = {r["frame"]: r for r in analyze(item.pcap).to_document()["resets"]}
        manifest = item.pcap.parent / f"{item.case}.manifest.json"
        # The lab's path counts routers *between* (0 = adjacent); records count links.
        path = {n["node"]: (n["hops_from_client"] + 1, n["hops_to_server"] + 1)
                for n in json.loads(manifest.read_text()).get("path", [])}
        for lab in item.labels:
            r = recs.get(lab["frame"])
            truth_pos = path.get(lab.get("emitter", ""))
            alts = [a[0] for a in r["alternatives"]] if r else []
            rows.append({
                "case": item.case, "vantage": item.vantage, "frame": lab["frame"],
                "truth": lab["origin"], "truth_sender": lab.get("sender"),
                "origin": r["origin"] if r else "missing",
                "sender": r["sender"] if r else "missing",
                "confidence": r["confidence"] if r else 0.0,
                "alt": alts[0] if alts else None,
                "tags": r["tags"] if r else [],
                "pos": ([r["emitter_hops_from_client"], r["emitter_hops_to_server"]]
                        if r and r["sender"] == "middlebox" else None),
                "truth_pos": (list(truth_pos) if truth_pos and lab.get("sender") == "middlebox"
                              else None),
                "vars": {k: item.variables.get(k) for k in BREAKDOWN},
            })
    return rows


def load(part: str) -> list[dict[str, Any]]:
    path = verdict_path(part)
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def figures(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n = len(rows)
    right = sum(r["origin"] == r["truth"] for r in rows)
    top2 = sum(r["truth"] in (r["origin"], r["alt"]) for r in rows)
    wrong_hi = [r for r in rows if r["origin"] != r["truth"] and r["confidence"] >= 0.8]
    bins = []
    for lo, hi in BINS:
        inbin = [r for r in rows if lo <= r["confidence"] < hi]
        ok = sum(r["origin"] == r["truth"] for r in inbin)
        bins.append((lo, min(hi, 1.0), len(inbin), ok))
    return {"n": n, "accuracy": right / n if n else 0.0, "top2": top2 / n if n else 0.0,
            "wrong_at_0.8": len(wrong_hi), "bins": bins}


def bins_failing(fig: dict[str, Any], min_n: int = 20) -> list[tuple[float, float, int, int]]:
    """Bins with at least ``min_n`` verdicts whose accuracy is below their lower edge."""
    return [b for b in fig["bins"] if b[2] >= min_n and b[3] / b[2] < b[0]]


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def part_table(part: str, rows: Sequence[dict[str, Any]]) -> str:
    fig = figures(rows)
    out = [f"**{part}** part: {fig['n']} labelled RSTs; origin accuracy "
           f"{_pct(fig['accuracy'])}; wrong verdicts at confidence ≥ 0.8: "
           f"{fig['wrong_at_0.8']}; truth is the origin or the first alternative: "
           f"{_pct(fig['top2'])}.", ""]
    placed = [r for r in rows if r.get("pos") and r.get("truth_pos")]
    if placed:
        both = [r for r in placed if None not in r["pos"]]
        exact = sum(r["pos"] == r["truth_pos"] for r in both)
        one = [r for r in placed if r["pos"][0] is not None]
        exact_c = sum(r["pos"][0] == r["truth_pos"][0] for r in one)
        out[0] += (f"  Position of the {len(placed)} box RSTs called `middlebox`: hops from "
                   f"the client right for {exact_c} of {len(one)} with a client baseline; "
                   f"both ends right for {exact} of {len(both)} with both baselines.")
    # confusion matrix: rows truth, columns verdict
    cols = [o for o in ORIGINS if any(r["origin"] == o or r["truth"] == o for r in rows)]
    out.append("| truth \\ verdict | " + " | ".join(cols) + " | accuracy |")
    out.append("|---|" + "---:|" * (len(cols) + 1))
    for t in cols:
        these = [r for r in rows if r["truth"] == t]
        if not these:
            continue
        c = Counter(r["origin"] for r in these)
        acc = c[t] / len(these)
        out.append(f"| {t} | " + " | ".join(str(c[o]) for o in cols) + f" | {_pct(acc)} |")
    out.append("")
    out.append("| confidence | verdicts | right | observed accuracy |")
    out.append("|---|---:|---:|---:|")
    for lo, hi, n, ok in fig["bins"]:
        shown = _pct(ok / n) if n else "–"
        out.append(f"| {lo:.1f}–{hi:.1f} | {n} | {ok} | {shown} |")
    out.append("")
    out.append("| variable | value | RSTs | accuracy |")
    out.append("|---|---|---:|---:|")
    for var in BREAKDOWN:
        groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            groups[str(r["vars"].get(var))].append(r)
        for val in sorted(groups, key=_natural):
            g = groups[val]
            acc = sum(r["origin"] == r["truth"] for r in g) / len(g)
            out.append(f"| {var} | {val} | {len(g)} | {_pct(acc)} |")
    return "\n".join(out)


def _natural(v: str) -> tuple[int, float | str]:
    try:
        return (0, float(v))
    except ValueError:
        return (1, v)


def doc_section() -> str:
    parts = []
    for part in ("heldout", "dev"):
        rows = load(part)
        if rows:
            parts.append(part_table(part, rows))
    if not parts:
        return "_No calibration run committed yet (`python scripts/calibrate.py run`)._"
    return "\n\n".join(parts)


def write(part: str, rows: Iterable[dict[str, Any]]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    verdict_path(part).write_text("".join(json.dumps(r, separators=(",", ":"), sort_keys=True)
                                          + "\n" for r in rows))


def twins(args: argparse.Namespace) -> int:
    import wire_twins as wt

    unknown = set(args.without) - set(wt.FIELDS)
    if unknown:
        raise SystemExit(f"unknown field(s) {sorted(unknown)}; fields: {', '.join(wt.FIELDS)}")
    rows: list[wt.Row] = []
    for part in (["dev"] if args.committed else args.part or ["dev"]):
        if args.committed:
            from rstscope.lab.corpus import iter_committed

            items: Iterable[Any] = iter_committed(args.root)
        else:
            items = _items(args.root, part, None)
        # The committed verdicts name the classifier's answer (the coarseness check);
        # only of the part asked for.
        said = {(r["case"], r["vantage"], r["frame"]): r["origin"] for r in load(part)}
        rows += wt.rows_of((it for it in items if it.labels), said)
    without = frozenset(args.without)
    if args.doc:
        from gen_verdicts_doc import render

        if not args.committed or without:
            raise SystemExit("--doc describes the committed dev part with the whole signature")
        old = DOC.read_text("utf-8")
        new = render(old, {"twins": wt.doc_block(rows)})
        if args.check:
            return 0 if new == old else 1
        DOC.write_text(new, "utf-8")
        return 0
    print(wt.report(rows, without=without, show_groups=args.groups))
    if args.nearest:
        print()
        print(wt.nearest_report(rows))
    if args.reference is not None:
        paths = sorted(p for p in args.reference.rglob("*")
                       if p.is_file() and ".pcap" in p.name)
        ref = wt.reference_rows(paths)
        print()
        print(f"Reference: {len(ref)} RSTs in {len({r.case for r in ref})} captures")
        print(wt.reference_report(rows, ref, without))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    sys.path.insert(0, str(ROOT / "scripts"))
    from gen_verdicts_doc import render

    ap = argparse.ArgumentParser(prog="python scripts/calibrate.py")
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("root", type=Path)
    r.add_argument("--part", action="append", choices=("dev", "heldout"))
    r.add_argument("--seeds", type=int, nargs="*", default=None,
                   help="only these seeds of the part (a slice; default: all)")
    rep = sub.add_parser("report")
    rep.add_argument("--part", default="dev", choices=("dev", "heldout"))
    rep.add_argument("--misses", action="store_true")
    d = sub.add_parser("doc")
    d.add_argument("--check", action="store_true")
    tw = sub.add_parser("twins")
    tw.add_argument("root", type=Path, help="a built corpus, or with --committed a scratch "
                    "directory to unpack the committed dev captures into")
    tw.add_argument("--part", action="append", choices=("dev", "heldout"))
    tw.add_argument("--committed", action="store_true")
    tw.add_argument("--without", nargs="*", default=[], metavar="FIELD",
                    help="leave these signature fields out (a coarser signature)")
    tw.add_argument("--groups", action="store_true", help="list the twin groups")
    tw.add_argument("--nearest", action="store_true", help="per miss of the classifier, the "
                    "fields that set it apart from the nearest RST of another truth")
    tw.add_argument("--doc", action="store_true", help="rewrite the twins section of "
                    "docs/verdicts.md (the committed dev part only)")
    tw.add_argument("--check", action="store_true", help="with --doc: exit 1 if it is stale")
    tw.add_argument("--reference", type=Path, default=None, metavar="DIR",
                    help="unlabelled real captures (e.g. the public set): per miss, the RSTs "
                    "there that share its signature")
    args = ap.parse_args(argv)
    if args.cmd == "run":
        for part in args.part or ["dev"]:
            rows = run(args.root, part, args.seeds)
            write(part, rows)
            print(f"{part}: {len(rows)} labelled RSTs -> {verdict_path(part).relative_to(ROOT)}")
        return 0
    if args.cmd == "report":
        rows = load(args.part)
        print(part_table(args.part, rows))
        if args.misses:
            for row in rows:
                if row["origin"] != row["truth"]:
                    print(f"MISS {row['case']}.{row['vantage']}#{row['frame']}: truth "
                          f"{row['truth']}, said {row['origin']} {row['confidence']} "
                          f"alt {row['alt']} {row['tags']}")
        return 0
    if args.cmd == "twins":
        return twins(args)
    old = DOC.read_text("utf-8")
    new = render(old, {"calibration": doc_section()})
    if args.check:
        return 0 if new == old else 1
    DOC.write_text(new, "utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
