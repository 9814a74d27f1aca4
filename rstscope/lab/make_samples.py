"""Regenerate the committed sample captures: every scenario, every vantage.

    sudo .venv/bin/python -m rstscope.lab.make_samples samples/

Writes ``<scenario>.<vantage>.pcap`` + ``.labels.json`` per vantage, one
manifest and TLS keylog per scenario, and ``README.md`` with the table of what
each capture shows (generated from the labels, so it never drifts from them).
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path

from rstscope.lab.everyday import LOOK_FOR as EVERYDAY_LOOK_FOR
from rstscope.lab.everyday import STALL_SCENARIOS, stall_truth
from rstscope.lab.runner import LabResult, run_scenario
from rstscope.lab.scenarios import SCENARIOS
from rstscope.lab.twins import LOOK_FOR as TWIN_LOOK_FOR

#: What an analyst should look for in each scenario (the README's last column).
LOOK_FOR: dict[str, str] = {
    "server-abort": "RST from the server right after data, no FIN; server TTL/hops",
    "server-idle-abort": "RST from the server after a silence equal to its idle timeout",
    "client-read-timeout-abort": "RST from the client after a silence equal to its read timeout",
    "client-read-timeout-graceful": "client FIN, then the server's late data draws a client RST",
    "client-close-unread": "client RST instead of FIN while data is still arriving",
    "fw-idle-expiry-client-next": "client's request after idle answered by a RST with the "
                                  "firewall's TTL, never reaching the server",
    "fw-idle-expiry-server-next": "server's data after idle answered by a firewall RST (server side)",
    "fw-policy-reject": "SYN answered by RST+ACK from the firewall (TTL 255, 0 hops)",
    "nat-rebind-after-idle": "at the server the next segment arrives from a new source port "
                             "and is reset; client sees a server RST",
    "l4lb-idle-expiry": "request after idle reset by the L4 balancer (VIP address, lb's TTL)",
    "haproxy-timeout": "haproxy ends both sides timeout after the last byte: RST to the "
                       "server; FIN (and a RST unless the client closes first) to the client",
    "nginx-proxy-timeout": "client reset by nginx at proxy_read_timeout; upstream closed",
    "dpi-inject-single": "RST 'from the server' right after the ClientHello, before any "
                         "ServerHello, with the injector's TTL (63) not the server's (61)",
    "dpi-inject-storm": "three RSTs each way with stepped sequence numbers after the ClientHello",
    "haproxy-backend-refused": "server RSTs haproxy's SYNs (4 tries); haproxy then closes the "
                               "client's connection (FIN, and a RST if the client's data races it)",
    "haproxy-backend-connect-timeout": "no SYN-ACK from the backend; after 4 x timeout connect "
                                       "haproxy closes the client (lb RST, lb's TTL)",
    "haproxy-backend-abort": "backend RST mid-stream at the server; the client gets haproxy's "
                             "RST (lb's TTL and hops, not the server's)",
    "nginx-backend-refused": "server RSTs nginx's SYN; the client gets a 502 and a clean close",
    "nginx-backend-connect-timeout": "no SYN-ACK from the backend; the client gets a 504 after "
                                     "proxy_connect_timeout, no RST",
    "nginx-backend-abort": "backend RST mid-stream at the server; nginx resets the client "
                           "(lb's TTL)",
    "graceful-close": "control: close_notify + FIN both ways, no RST",
    **EVERYDAY_LOOK_FOR,
    **TWIN_LOOK_FOR,
}


#: Story samples: a scenario with realistic settings, under its own name.  The
#: notebooks and the README's first command use them.  Each takes about as long
#: as its timeout to record.
STORIES: dict[str, tuple[str, dict[str, str], str]] = {
    "llm-stream-60s": ("nginx-proxy-timeout", {"proxy_timeout_s": "60"},
                       "an LLM-style stream silent for 60 s behind nginx (default "
                       "proxy_read_timeout): close_notify, then RST"),
}


def _record_story(story: str, out: Path) -> LabResult:
    """Run a story's scenario in a scratch dir and copy its files as ``<story>.*``."""
    scenario, params, _ = STORIES[story]
    with tempfile.TemporaryDirectory(prefix="rstscope-story-") as tmp:
        result = run_scenario(scenario, params, tmp)
        for f in Path(tmp).iterdir():
            if f.name.startswith(scenario + "."):
                shutil.copyfile(f, out / (story + f.name[len(scenario):]))
    return result


#: Scenarios whose samples live in a subdirectory of the samples dir, with their own
#: README and index.  ``proxy-backend``: the full-proxy backend failures, kept out of
#: the top-level golden/accuracy set until the classifier names the proxy for them
#: (issue 13, section 3); moving them up is a ``git mv`` plus a golden bless.
#: ``twins``: the everyday look-alikes of middlebox scenarios (rstscope.lab.twins),
#: samples for reading, not (yet) goldens: the classifier's verdicts on them are the
#: calibration corpus's business (its twin seeds).
SUBDIR: dict[str, str] = {
    **{f"{proxy}-backend-{kind}": "proxy-backend"
       for proxy in ("haproxy", "nginx")
       for kind in ("refused", "connect-timeout", "abort")},
    **{name: "twins" for name in TWIN_LOOK_FOR},
}


def sample_dir(samples: Path, name: str) -> Path:
    """Where the samples of scenario ``name`` live."""
    return samples / SUBDIR[name] if name in SUBDIR else samples


def _truth(result: LabResult, vantage: str) -> str:
    labels = result.labels(vantage)
    stall = ""
    if result.scenario in STALL_SCENARIOS:
        # A stall scenario: its cause is the truth even where no RST carries it.
        stall = "stall: " + ", ".join(sorted(stall_truth(json.loads(
            result.manifest.read_text()))))
    if not labels:
        return f"no RST; {stall}" if stall else "no RST"
    parts = []
    for lb in labels:
        parts.append(f"#{lb['frame']} {lb['emitter']} ({lb['origin']}, {lb['cause']})")
    return "; ".join(parts + ([stall] if stall else []))


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m rstscope.lab.make_samples")
    ap.add_argument("out", type=Path)
    ap.add_argument("--only", nargs="*", default=None,
                    help="scenarios or stories to regenerate")
    args = ap.parse_args(argv)
    names = args.only or [*SCENARIOS, *STORIES]
    by_dir: dict[Path, list[str]] = {}
    for name in names:
        by_dir.setdefault(sample_dir(args.out, name), []).append(name)
    heads = {"proxy-backend": PROXY_BACKEND_HEAD, "twins": TWINS_HEAD}
    for out, group in by_dir.items():
        _record(out, group, head=README_HEAD if out == args.out else heads[out.name])


def _record(out: Path, names: list[str], *, head: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    index_path = out / "index.json"
    index: dict[str, dict[str, str]] = (json.loads(index_path.read_text())
                                        if index_path.exists() else {})
    for name in names:
        if name in STORIES:
            result = _record_story(name, out)
            look_for = STORIES[name][2]
        else:
            result = run_scenario(name, {}, out)
            look_for = LOOK_FOR.get(name, "")
        for v in result.vantages:
            index[f"{name}.{v.name}"] = {"scenario": result.scenario, "vantage": v.name,
                                         "truth": _truth(result, v.name),
                                         "look_for": look_for}
        print(f"{name}: emitters {', '.join(result.emitters) or 'none'}", flush=True)
    index_path.write_text(json.dumps(dict(sorted(index.items())), indent=1) + "\n")
    for key in sorted(index, key=lambda k: (list(SCENARIOS).index(index[k]["scenario"]), k)):
        row = index[key]
        rows.append(f"| {row['scenario']} | {row['vantage']} | `{key}.pcap` | {row['truth']} "
                    f"| {row['look_for']} |")
    (out / "README.md").write_text(head + "\n".join(rows) + "\n")


README_HEAD = """\
# Sample captures from the reset lab

Generated by `rstscope lab` (real Linux TCP stacks, netfilter, haproxy, nginx and
a scapy injector in network namespaces; see `docs/lab.md`).  Every RST is
labelled with the namespace that emitted it, found by provenance (it left that
namespace without having arrived there), not by what the packet looks like.

Files per scenario: `<scenario>.<vantage>.pcap` (snaplen 128, nanosecond
pcap), `<scenario>.<vantage>.labels.json` (one entry per RST: frame, emitter,
role, expected origin and sender, cause, configured timeout, idle gap),
`<scenario>.manifest.json` (parameters, addresses, initial TTLs, every emitted
RST, client/server event logs) and `<scenario>.keylog` (TLS secrets,
SSLKEYLOGFILE format).  Vantages: `client` (client's Ethernet veth),
`server` (server's veth), `client-any` (client namespace, `-i any`, Linux
cooked SLL2).

Regenerate (root, Linux, tcpdump/haproxy/nginx/iptables installed):

    sudo .venv/bin/python -m rstscope.lab.make_samples samples/

Topology: client 192.0.2.2 ── fw ── rtr ── lb 198.51.100.10 ── srv 203.0.113.2
(initial TTLs: client 128, fw 255, rtr 64, lb 64, srv 64; the injector uses 64).

In the truth column, `#N` is the frame number in that capture.

| scenario | vantage | file | truth (frame emitter (origin, cause)) | what to look for |
|---|---|---|---|---|
"""


PROXY_BACKEND_HEAD = """\
# Full proxies failing toward their backend (lab samples)

haproxy (TCP mode, `option nolinger`) and nginx (TLS, `proxy_buffering off`)
in the lb slot of the default lab path (`docs/lab.md`), with a backend that
refuses the proxy's connection, never answers its SYN (connect timeout), or
aborts mid-response.  Labels are by provenance, like `samples/README.md`
describes.  These samples are kept out of the top-level golden and accuracy
set until the classifier names the proxy for them (issue 13, section 3).

Regenerate (root, Linux, haproxy and nginx installed):

    sudo .venv/bin/python -m rstscope.lab.make_samples samples/ --only haproxy-backend-refused \\
        haproxy-backend-connect-timeout haproxy-backend-abort nginx-backend-refused \\
        nginx-backend-connect-timeout nginx-backend-abort

| scenario | vantage | file | truth (frame emitter (origin, cause)) | what to look for |
|---|---|---|---|---|
"""


TWINS_HEAD = """\
# Everyday look-alikes of middlebox resets (lab samples)

Each of these RSTs is made by an endpoint, yet from one side it looks like a
scenario whose RST a middlebox made (`docs/lab.md`, "Calibration corpus"): a
closed port like a firewall's REJECT, a server closing before the client's late
data like a proxy whose backend aborted, a client on the server's own link timing
out like haproxy's `timeout server`.  The keep-alive races are in `samples/`.
Labels are by provenance, like `samples/README.md` describes.  These samples stay
out of the top-level golden and accuracy set; the calibration corpus's twin seeds
hold many runs of each.

Regenerate (root, Linux):

    sudo .venv/bin/python -m rstscope.lab.make_samples samples/ --only server-port-closed \\
        server-close-then-late-data lan-client-read-timeout-abort

| scenario | vantage | file | truth (frame emitter (origin, cause)) | what to look for |
|---|---|---|---|---|
"""


if __name__ == "__main__":
    main()
