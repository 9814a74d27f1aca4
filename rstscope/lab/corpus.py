"""The calibration corpus: lab sweeps by seed, split into a development and a held-out part.

THE RULE: the held-out part is for judging only.  No rule, weight, threshold or
confidence cap is ever tuned while looking at held-out verdicts; tune on
``dev``, then run the held-out part once to report the figures.  The split is by
seed (whole sweeps), never by case, so nothing of a held-out network shape
leaks into development.  The seed lists live in
``rstscope/lab/calibration/seeds.json`` (README.md beside it says the same).

Regenerate a part (root, Linux; see docs/lab.md "Calibration corpus")::

    sudo .venv/bin/python -m rstscope.lab.corpus build dev OUT/
    sudo .venv/bin/python -m rstscope.lab.corpus build heldout OUT/

which writes ``OUT/<part>/seed-<S>/`` per seed.  Then, from Python::

    from rstscope.lab.corpus import iter_part
    for item in iter_part("OUT", "dev"):
        item.pcap, item.labels, item.variables

``digest`` rewrites the committed label digest from a built corpus;
``check`` compares a built corpus with it.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rstscope.errors import UsageError

PARTS: tuple[str, ...] = ("dev", "heldout")
DATA = Path(__file__).resolve().parent / "calibration"
SEEDS_FILE = DATA / "seeds.json"
#: The fields of a label the digest keeps: what the classifier is judged on, and
#: what a regeneration reproduces (ports, sequence numbers and times do not).
DIGEST_FIELDS: tuple[str, ...] = ("frame", "emitter", "origin", "sender", "cause", "ttl")


def seed_table() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(SEEDS_FILE.read_text())
    return data


def seeds(part: str) -> tuple[int, ...]:
    if part not in PARTS:
        raise UsageError(f"corpus part must be one of {', '.join(PARTS)}")
    return tuple(int(s) for s in seed_table()[part])


@dataclass(frozen=True, slots=True)
class CorpusItem:
    """One capture of the corpus with its truth labels and its case's variables."""

    part: str
    case: str
    vantage: str
    pcap: Path
    labels: list[dict[str, Any]]
    variables: dict[str, Any]


def part_dir(root: str | Path, part: str, seed: int) -> Path:
    return Path(root) / part / f"seed-{seed}"


def iter_part(root: str | Path, part: str, *,
              vantages: Sequence[str] = ("client", "server", "client-any")) -> Iterator[CorpusItem]:
    """Every capture of ``part`` built under ``root``, with its labels (a capture with
    no RST is yielded too, with ``labels == []``).  Raises if a seed is missing."""
    for seed in seeds(part):
        d = part_dir(root, part, seed)
        if not d.is_dir():
            raise UsageError(f"{d} is missing: build it with "
                             f"'python -m rstscope.lab.corpus build {part} {root}'")
        for manifest in sorted(d.glob("*.manifest.json")):
            stem = manifest.name.removesuffix(".manifest.json")
            variables = json.loads(manifest.read_text()).get("sweep", {}).get("variables", {})
            for v in vantages:
                pcap = d / f"{stem}.{v}.pcap"
                lab = d / f"{stem}.{v}.labels.json"
                if pcap.exists() and lab.exists():
                    yield CorpusItem(part, stem, v, pcap, json.loads(lab.read_text()), variables)


def digest_case(manifest: Path) -> dict[str, Any]:
    """The compact record of one case: its variables and, per vantage, its labels."""
    m = json.loads(manifest.read_text())
    stem = manifest.name.removesuffix(".manifest.json")
    labels = {}
    for v in m.get("vantages", []):
        rows = json.loads((manifest.parent / v["labels"]).read_text())
        labels[v["name"]] = [[r[k] for k in DIGEST_FIELDS] for r in rows]
    sw = m["sweep"]
    return {"case": stem, "seed": sw["seed"], "index": sw["index"],
            "variables": sw["variables"], "labels": labels}


def digest_part(root: str | Path, part: str) -> list[dict[str, Any]]:
    out = []
    for seed in seeds(part):
        d = part_dir(root, part, seed)
        index = json.loads((d / f"sweep-{seed}.json").read_text())
        ok = {c["stem"] for c in index["cases"] if c["ok"]}
        for c in index["cases"]:
            if c["stem"] in ok:
                out.append(digest_case(d / f"{c['stem']}.manifest.json"))
            else:
                out.append({"case": c["stem"], "seed": seed, "index": c["index"],
                            "variables": c["variables"], "failed": c["error"]})
    return out


def digest_path(part: str) -> Path:
    return DATA / f"digest-{part}.jsonl"


def read_digest(part: str) -> list[dict[str, Any]]:
    path = digest_path(part)
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_digest(part: str, rows: list[dict[str, Any]]) -> None:
    digest_path(part).write_text("".join(json.dumps(r, separators=(",", ":")) + "\n"
                                         for r in rows))


def count_rsts(rows: list[dict[str, Any]], *, vantages: Sequence[str] = ("client", "server")
               ) -> int:
    """Labelled RSTs in a digest.  ``client-any`` sees the client's packets again, so
    it is left out of the count by default."""
    return sum(len(r.get("labels", {}).get(v, [])) for r in rows for v in vantages)


def build(part: str, root: str | Path, *, jobs: int = 24,
          only: Sequence[int] | None = None) -> None:
    """Run every seed of ``part`` (or the ``only`` ones) that is not built yet."""
    from rstscope.lab.sweep import CaseOutcome, run_sweeps

    table = seed_table()

    def progress(oc: CaseOutcome, done: int, total: int) -> None:
        what = f"{sum(oc.rsts.values())} RST" if oc.ok else f"FAILED: {oc.error}"
        print(f"[{done}/{total}] {oc.stem} {oc.wall_s:g}s {what}", flush=True)

    todo = [seed for seed in seeds(part) if (only is None or seed in only)
            and not (part_dir(root, part, seed) / f"sweep-{seed}.json").exists()]
    unknown = set(only or ()) - set(seeds(part))
    if unknown:
        raise UsageError(f"seed(s) {sorted(unknown)} are not in the {part} part")
    if not todo:
        return
    run_sweeps([(seed, part_dir(root, part, seed)) for seed in todo],
               int(table["count_per_seed"]), jobs=jobs,
               max_timeout_s=int(table["max_timeout_s"]), progress=progress)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rstscope.lab.corpus")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="run every seed of a part (root)")
    b.add_argument("part", choices=PARTS)
    b.add_argument("root", type=Path)
    b.add_argument("--jobs", type=int, default=24)
    b.add_argument("--seeds", type=int, nargs="*", default=None,
                   help="only these seeds of the part (default: all not built yet)")
    d = sub.add_parser("digest", help="rewrite the committed label digest from a built part")
    d.add_argument("part", choices=PARTS)
    d.add_argument("root", type=Path)
    c = sub.add_parser("check", help="compare a built part with the committed digest")
    c.add_argument("part", choices=PARTS)
    c.add_argument("root", type=Path)
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(args.part, args.root, jobs=args.jobs, only=args.seeds)
        return 0
    rows = digest_part(args.root, args.part)
    if args.cmd == "digest":
        write_digest(args.part, rows)
        print(f"{args.part}: {len(rows)} cases, {count_rsts(rows)} labelled RSTs "
              f"(client + server vantages), {count_rsts(rows, vantages=('client-any',))} "
              f"more at client-any")
        return 0
    committed = {r["case"]: r for r in read_digest(args.part)}
    diff = [r["case"] for r in rows if committed.get(r["case"]) != r]
    for case in diff:
        print(f"differs from the digest: {case}")
    return 1 if diff else 0


if __name__ == "__main__":
    raise SystemExit(main())
