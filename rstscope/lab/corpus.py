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
import tarfile
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rstscope.errors import UsageError
from rstscope.lab.sweep import Case, CaseOutcome, draw_case, run_case, run_sweeps
from rstscope.lab.topology import path_for

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


def seed_draw(seed: int) -> tuple[str, int]:
    """How ``seed``'s cases are drawn: (family set, longest timeout).  A seed listed
    under ``families`` in seeds.json draws that set with its own longest timeout;
    every other seed draws the default set, exactly as before sets existed."""
    table = seed_table()
    for name, fam in table.get("families", {}).items():
        if seed in fam["seeds"]:
            return str(name), int(fam.get("max_timeout_s", table["max_timeout_s"]))
    return "default", int(table["max_timeout_s"])


def case_seed_index(case: str) -> tuple[int, int]:
    """(seed, index) of a case's stem, ``s<seed>-<index>-<scenario>``."""
    seed, index = case.split("-")[:2]
    return int(seed[1:]), int(index)


def draw(seed: int, index: int) -> Case:
    """Case ``index`` of corpus seed ``seed``, drawn as seeds.json says for that seed."""
    families, max_s = seed_draw(seed)
    return draw_case(seed, index, max_timeout_s=max_s, families=families)


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
              vantages: Sequence[str] = ("client", "server", "client-any"),
              seed_list: Sequence[int] | None = None) -> Iterator[CorpusItem]:
    """Every capture of ``part`` built under ``root``, with its labels (a capture with
    no RST is yielded too, with ``labels == []``).  Raises if a seed is missing.
    ``seed_list`` replaces the part's seeds (tests, quick looks at one sweep)."""
    for seed in (seeds(part) if seed_list is None else seed_list):
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
    return {"case": stem, "seed": sw["seed"], "index": sw["index"], "labels": labels}


def digest_part(root: str | Path, part: str, *,
                only: Sequence[int] | None = None) -> list[dict[str, Any]]:
    out = []
    for seed in seeds(part):
        if only is not None and seed not in only:
            continue
        d = part_dir(root, part, seed)
        index = json.loads((d / f"sweep-{seed}.json").read_text())
        ok = {c["stem"] for c in index["cases"] if c["ok"]}
        for c in index["cases"]:
            if c["stem"] in ok:
                out.append(digest_case(d / f"{c['stem']}.manifest.json"))
            else:
                out.append({"case": c["stem"], "seed": seed, "index": c["index"],
                            "failed": c["error"]})
    return out


def digest_path(part: str) -> Path:
    return DATA / f"digest-{part}.jsonl"


def read_digest(part: str, *, with_variables: bool = False) -> list[dict[str, Any]]:
    """The committed digest of ``part``.  The case variables are not stored (the draw
    is a pure function of seed and index, and a test holds it to that);
    ``with_variables`` adds them from the draw."""
    path = digest_path(part)
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    if with_variables:
        for r in rows:
            r["variables"] = draw(r["seed"], r["index"]).variables
    return rows


def write_digest(part: str, rows: list[dict[str, Any]]) -> None:
    digest_path(part).write_text("".join(json.dumps(r, separators=(",", ":")) + "\n"
                                         for r in rows))


def ttl_mismatches(rows: list[dict[str, Any]]) -> list[tuple[str, str, int]]:
    """Labels whose TTL is not the emitter's drawn initial TTL minus the drawn path's
    hops to the vantage: (case, vantage, frame).  Rows need their ``variables``."""
    bad = []
    for r in rows:
        if "failed" in r:
            continue
        v = r["variables"]
        path = path_for(v["hops_client"], v["hops_server"], v["fw_at"],
                        with_rtr=v["inject_ttl"] is not None or v["hops_client"] >= 2)
        ttl = {"client": v["ttl_client"], "fw": v["ttl_fw"], "lb": v["ttl_lb"],
               "srv": v["ttl_srv"], "rtr": v["inject_ttl"]}
        for vantage, labels in r["labels"].items():
            at = "srv" if vantage == "server" else "client"
            for frame, emitter, *_rest, seen in labels:
                hops = 0 if emitter == at else path.hops_between(emitter, at)
                if ttl.get(emitter) is None or seen != ttl[emitter] - hops:
                    bad.append((r["case"], vantage, frame))
    return bad


def rerun(part: str, root: str | Path, cases: Sequence[str], *, jobs: int = 24) -> None:
    """Run these cases of ``part`` again (same draw), replacing their files and their
    rows in the seed's index."""
    todo = []
    for stem in cases:
        seed, index = case_seed_index(stem)
        if seed not in seeds(part):
            raise UsageError(f"{stem} is not a case of the {part} part")
        todo.append((draw(seed, index), part_dir(root, part, seed)))
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        outcomes = list(pool.map(lambda cd: run_case(*cd), todo))
    for (case, d), oc in zip(todo, outcomes, strict=True):
        ipath = d / f"sweep-{case.seed}.json"
        index = json.loads(ipath.read_text())
        for row in index["cases"]:
            if row["stem"] == case.stem:
                row.update(ok=oc.ok, error=oc.error, wall_s=oc.wall_s, rsts=oc.rsts, rerun=True)
        ipath.write_text(json.dumps(index, indent=1) + "\n")
        print(f"{case.stem}: {'ok' if oc.ok else 'FAILED ' + str(oc.error)}", flush=True)


def count_rsts(rows: list[dict[str, Any]], *, vantages: Sequence[str] = ("client", "server")
               ) -> int:
    """Labelled RSTs in a digest.  ``client-any`` sees the client's packets again, so
    it is left out of the count by default."""
    return sum(len(r.get("labels", {}).get(v, [])) for r in rows for v in vantages)


#: The committed captures of the dev part (client and server vantages; client-any sees
#: the client's packets again).  Never of the held-out part.
PACKED_PART = "dev"
PACKED_VANTAGES: tuple[str, ...] = ("client", "server")


def packed_path() -> Path:
    return DATA / f"captures-{PACKED_PART}.tar.xz"


def pack(root: str | Path) -> Path:
    """Write the dev part's client and server captures (snaplen 128) into one xz tarball."""
    out = packed_path()
    with tarfile.open(out, "w:xz", preset=9) as tar:
        for seed in seeds(PACKED_PART):
            d = part_dir(root, PACKED_PART, seed)
            for pcap in sorted(d.glob("*.pcap")):
                if pcap.name.rsplit(".", 2)[-2] in PACKED_VANTAGES:
                    info = tar.gettarinfo(str(pcap), arcname=f"seed-{seed}/{pcap.name}")
                    # Reproducible archive: no owner, no times.
                    info.uid = info.gid = 0
                    info.uname = info.gname = ""
                    info.mtime = 0
                    with open(pcap, "rb") as fh:
                        tar.addfile(info, fh)
    return out


def iter_committed(dest: str | Path) -> Iterator[CorpusItem]:
    """The committed dev captures, unpacked under ``dest``, with labels from the digest
    (the fields of :data:`DIGEST_FIELDS`) and variables from the draw.  No root needed."""
    dest = Path(dest)
    with tarfile.open(packed_path(), "r:xz") as tar:
        if hasattr(tarfile, "data_filter"):  # Python >= 3.11.4: refuse odd members
            tar.extractall(dest, filter="data")
        else:  # pragma: no cover - our own archive of plain files
            tar.extractall(dest)  # noqa: S202
    for row in read_digest(PACKED_PART, with_variables=True):
        if "failed" in row:
            continue
        for v in PACKED_VANTAGES:
            pcap = dest / f"seed-{row['seed']}" / f"{row['case']}.{v}.pcap"
            labels = [dict(zip(DIGEST_FIELDS, lab, strict=True)) for lab in row["labels"][v]]
            yield CorpusItem(PACKED_PART, row["case"], v, pcap, labels, row["variables"])


def unpack(root: str | Path) -> int:
    """Lay the committed dev captures out as a built dev part under ``root``
    (``root/dev/seed-<S>/``): each case's client and server captures, its labels (the
    digest's fields) and a manifest with its drawn variables and path.  That is what
    ``iter_part`` and the calibration script read, so the committed part can be
    analysed, and extended by a newly built seed beside it, without rebuilding it
    (no root).  Returns the number of cases laid out."""
    n = 0
    tmp = Path(root) / PACKED_PART
    for item in iter_committed(tmp):
        seed, index = case_seed_index(item.case)
        d = part_dir(root, PACKED_PART, seed)
        labels = d / f"{item.case}.{item.vantage}.labels.json"
        labels.write_text(json.dumps(item.labels, indent=1) + "\n")
        manifest = d / f"{item.case}.manifest.json"
        if manifest.exists():
            continue
        v = item.variables
        path = path_for(v["hops_client"], v["hops_server"], v["fw_at"],
                        with_rtr=v["inject_ttl"] is not None or v["hops_client"] >= 2)
        ttl = {"client": v["ttl_client"], "fw": v["ttl_fw"], "lb": v["ttl_lb"],
               "srv": v["ttl_srv"], "rtr": v["inject_ttl"]}
        manifest.write_text(json.dumps({
            "scenario": v["scenario"],
            "unpacked": "from the committed digest and captures (labels hold the digest's "
                        "fields only)",
            "path": path.manifest_rows(ttl),
            "vantages": [{"name": vn, "labels": f"{item.case}.{vn}.labels.json"}
                         for vn in PACKED_VANTAGES],
            "sweep": {"seed": seed, "index": index, "variables": v},
        }, indent=1) + "\n")
        n += 1
    return n


def merge_digest(part: str, rows: list[dict[str, Any]], only: Sequence[int]) -> list[dict[str, Any]]:
    """The committed digest of ``part`` with the rows of the ``only`` seeds replaced by
    ``rows``' (a seed built alone, beside the others' committed rows), in seed order."""
    keep = [r for r in read_digest(part) if r["seed"] not in only]
    new = [r for r in rows if r["seed"] in only]
    order = {s: i for i, s in enumerate(seeds(part))}
    return sorted(keep + new, key=lambda r: (order[r["seed"]], r["index"]))


def build(part: str, root: str | Path, *, jobs: int = 24,
          only: Sequence[int] | None = None) -> None:
    """Run every seed of ``part`` (``all``: both parts, in one pool) or the ``only``
    ones, that is not built yet."""
    table = seed_table()

    def progress(oc: CaseOutcome, done: int, total: int) -> None:
        what = f"{sum(oc.rsts.values())} RST" if oc.ok else f"FAILED: {oc.error}"
        print(f"[{done}/{total}] {oc.stem} {oc.wall_s:g}s {what}", flush=True)

    parts = PARTS if part == "all" else (part,)
    todo = [(p, seed) for p in parts for seed in seeds(p) if (only is None or seed in only)
            and not (part_dir(root, p, seed) / f"sweep-{seed}.json").exists()]
    unknown = set(only or ()) - {seed for p in parts for seed in seeds(p)}
    if unknown:
        raise UsageError(f"seed(s) {sorted(unknown)} are not in the {part} part")
    if not todo:
        return
    run_sweeps([(seed, part_dir(root, p, seed)) for p, seed in todo],
               int(table["count_per_seed"]), jobs=jobs,
               max_timeout_s=int(table["max_timeout_s"]), progress=progress,
               draws={seed: seed_draw(seed) for _, seed in todo})


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rstscope.lab.corpus")
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="run every seed of a part (root)")
    b.add_argument("part", choices=(*PARTS, "all"))
    b.add_argument("root", type=Path)
    b.add_argument("--jobs", type=int, default=24)
    b.add_argument("--seeds", type=int, nargs="*", default=None,
                   help="only these seeds of the part (default: all not built yet)")
    d = sub.add_parser("digest", help="rewrite the committed label digest from a built part")
    d.add_argument("part", choices=PARTS)
    d.add_argument("root", type=Path)
    d.add_argument("--seeds", type=int, nargs="*", default=None,
                   help="only these seeds' rows (built under ROOT); the others' "
                        "committed rows stay as they are")
    up = sub.add_parser("unpack", help="lay the committed dev captures, labels and "
                        "variables out as a built dev part (no root)")
    up.add_argument("root", type=Path)
    pk = sub.add_parser("pack", help="rewrite the committed dev captures from a built dev part")
    pk.add_argument("root", type=Path)
    rp = sub.add_parser("repair", help="rerun the cases of a built part whose labels "
                        "contradict their drawn path (root)")
    rp.add_argument("part", choices=PARTS)
    rp.add_argument("root", type=Path)
    c = sub.add_parser("check", help="compare a built part with the committed digest")
    c.add_argument("part", choices=PARTS)
    c.add_argument("root", type=Path)
    for sp in (rp, c):
        sp.add_argument("--seeds", type=int, nargs="*", default=None,
                        help="only these seeds of the part (default: all)")
    args = ap.parse_args(argv)
    if args.cmd == "build":
        build(args.part, args.root, jobs=args.jobs, only=args.seeds)
        return 0
    if args.cmd == "unpack":
        print(f"{unpack(args.root)} committed dev cases under {args.root}")
        return 0
    if args.cmd == "pack":
        out = pack(args.root)
        print(f"{out.name}: {out.stat().st_size} bytes")
        return 0
    only = getattr(args, "seeds", None)
    rows = digest_part(args.root, args.part, only=only)
    if args.cmd == "repair":
        for r in rows:
            r["variables"] = draw(r["seed"], r["index"]).variables
        bad = sorted({case for case, _, _ in ttl_mismatches(rows)}
                     | {r["case"] for r in rows if "failed" in r})
        print(f"{len(bad)} case(s) to rerun: {' '.join(bad)}", flush=True)
        if bad:
            rerun(args.part, args.root, bad)
        return 0
    if args.cmd == "digest":
        if only:
            rows = merge_digest(args.part, rows, only)
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
