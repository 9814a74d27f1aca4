"""``analyze --probe RESULT.json``: the measured hop as evidence for matching verdicts.

A passive verdict says who sent a RST from TTLs and timing, and often cannot
say *which* box (a firewall and a load balancer look alike from the wire).  A
probe run from the client side measured where the reset is made.  For every
reset on the probed target (address and port), this module compares the two:

* the probe's **sender** (a box on the path, or the endpoint's own stack)
  against the verdict's ``sender``;
* when the capture was taken at the client, the probe's **hop** against the
  verdict's ``sender_hops``: a box at probe hop *j* sends packets that cross
  *j - 1* routers to the client (the endpoint: ``endpoint_hops - 1``).

Agreement adds evidence with weight ``+AGREE_WEIGHT`` and raises confidence
by that much log-odds; when the verdict listed the probe's kind of box as its
alternative, the probe settles the origin (the box that owns the target
address is a load balancer, a transit box a firewall).  Disagreement adds the
same evidence with a negative weight and lowers confidence: a probe never
raises a verdict it contradicts.  A probe that found no reset (silent drop,
no reset, unreachable) adds context only (weight 0).
"""

from __future__ import annotations

import ipaddress
import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rstscope.core.records import Evidence, FlowRecord, ResetRecord
from rstscope.core.vocab import Origin
from rstscope.errors import InputMissingError, UsageError
from rstscope.probe.model import ProbeResult, result_from_dict

#: Log-odds a direct measurement of the resetting hop adds (or removes).
AGREE_WEIGHT = 2.0
#: Never claim certainty: the probe ran at another time than the capture.
MAX_CONFIDENCE = 0.97
_ENDPOINT_OUTCOMES = ("endpoint-reset", "endpoint-unknown-connection")


def load_probes(paths: Iterable[str]) -> list[ProbeResult]:
    """Read ``rstscope probe --format json`` outputs (one line errors on bad input)."""
    out = []
    for p in paths:
        try:
            doc = json.loads(Path(p).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise InputMissingError(f"--probe {p}: no such file") from None
        except OSError as exc:
            raise InputMissingError(f"--probe {p}: {exc.strerror}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"--probe {p}: not JSON ({exc.msg})") from None
        try:
            out.append(result_from_dict(doc))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"--probe {p}: not an rstscope probe result ({exc})") from None
    return out


def _norm(addr: str) -> str:
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return addr
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def _matching(reset: ResetRecord, probes: list[ProbeResult]) -> ProbeResult | None:
    src, dst = _norm(reset.src), _norm(reset.dst)
    for p in probes:
        a = _norm(p.address)
        if (src == a and reset.sport == p.port) or (dst == a and reset.dport == p.port):
            return p
    return None


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


@dataclass(frozen=True, slots=True)
class Judgement:
    """What a probe says about one reset: its summary (the record's ``probe``), the
    evidence item, and the refined confidence and origin."""

    probe: dict[str, Any]
    evidence: Evidence
    confidence: float
    origin: str


def judge(reset: ResetRecord, probe: ProbeResult, vantage: str | None) -> Judgement:
    """What the probe says about one reset: the evidence item and the refined fields."""
    a = probe.answer
    before = float(reset.confidence or 0.0)
    claim: str | None
    if a.outcome == "middlebox-reset":
        claim, hop = "middlebox", a.reset_hop
        where = "an on-path " if a.on_path else "a "
        value = f"{where}{a.box} at hop {hop}" + (f" ({a.reset_addr})" if a.reset_addr else "")
    elif a.outcome in _ENDPOINT_OUTCOMES:
        claim, hop = "server-endpoint", probe.endpoint_hops or a.reset_hop
        value = f"the endpoint's own stack at hop {hop}"
    else:
        claim, hop = None, None
        value = a.outcome
    sender = str(reset.sender)
    out: dict[str, Any] = {"outcome": a.outcome, "reset_hop": a.reset_hop, "box": a.box,
                           "verdict": a.verdict, "agrees": None}
    if claim is None:
        ev = Evidence(name="probe", value=value, expected="a RST drawn by the probe",
                      weight=0.0)
        return Judgement(out, ev, before, str(reset.origin))
    kind_ok = sender == claim
    hops_ok = True
    expected_hops = None if hop is None else hop - 1
    if vantage == "client" and reset.sender_hops is not None and expected_hops is not None:
        hops_ok = reset.sender_hops == expected_hops
    agrees = kind_ok and hops_ok
    weight = AGREE_WEIGHT if agrees else -AGREE_WEIGHT
    conf = _sigmoid(_logit(before) + weight)
    conf = round(min(conf, MAX_CONFIDENCE) if agrees else min(conf, before), 3)
    origin = str(reset.origin)
    if agrees and claim == "middlebox" and a.box in ("firewall", "load-balancer"):
        alts = [str(x[0]) for x in reset.alternatives]
        if a.box != origin and a.box in alts:
            origin = a.box
    out["agrees"] = agrees
    ev = Evidence(name="probe", value=value,
                  expected=f"{sender}" + (f", {reset.sender_hops} hops from the capture"
                                          if reset.sender_hops is not None else ""),
                  weight=weight)
    return Judgement(out, ev, conf, origin)


def apply_probes(resets: Sequence[ResetRecord], flows: Sequence[FlowRecord],
                 probes: list[ProbeResult]) -> list[tuple[ResetRecord, dict[str, Any] | None]]:
    """Each reset refined by the probe on its target (address and port), with the
    probe's summary; a reset no probe matched is returned as it was, with None."""
    vantage_of = {f.flow_id: f.vantage for f in flows}
    out: list[tuple[ResetRecord, dict[str, Any] | None]] = []
    for r in resets:
        p = _matching(r, probes)
        if p is None:
            out.append((r, None))
            continue
        j = judge(r, p, vantage_of.get(r.flow_id))
        alternatives = r.alternatives
        if j.origin != r.origin:
            alternatives = ((str(r.origin), "the passive verdict; the probe measured the "
                             "other kind of box"),
                            *(alt for alt in r.alternatives if alt[0] != j.origin))
        refined = replace(r, evidence=(*r.evidence, j.evidence), alternatives=alternatives,
                          confidence=j.confidence, origin=Origin(j.origin))
        out.append((refined, j.probe))
    return out
